//! The terminal: echo off while a secret is typed or pasted.

/// Terminal echo off on stdin for as long as it lives (termios(3): ECHO),
/// restored in `Drop`. Does nothing when stdin is not a terminal.
pub struct NoEcho(Option<libc::termios>);

impl NoEcho {
    pub fn new() -> NoEcho {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return NoEcho(None);
            }
            let old = t;
            t.c_lflag &= !libc::ECHO;
            // ECHONL: the Enter still shows, so the operator sees it was taken.
            t.c_lflag |= libc::ECHONL;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return NoEcho(None);
            }
            NoEcho(Some(old))
        }
    }
}

impl Default for NoEcho {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            // SAFETY: restores the settings read in new().
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

/// A new pseudo-terminal pair (openpty(3)): the controlling side and the
/// terminal a program gets as its stdin, as at a console. (The tests paste
/// an age key through it.)
pub fn openpty() -> std::io::Result<(std::fs::File, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let (mut m, mut s) = (0, 0);
    // SAFETY: two valid out-pointers; name, termios and winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openpty returned two new descriptors that nothing else owns.
    unsafe {
        Ok((
            std::fs::File::from_raw_fd(m),
            std::os::fd::OwnedFd::from_raw_fd(s),
        ))
    }
}
