//! What PID 1 of the rescue system needs from the kernel about processes:
//! the umask, reaping children, a login shell's session and controlling
//! terminal, and sync + reboot(2).

use std::os::unix::process::CommandExt;

/// umask(2).
pub fn set_umask(mask: libc::mode_t) {
    // SAFETY: umask(2) takes a plain integer and cannot fail.
    unsafe { libc::umask(mask) };
}

/// waitpid(-1): waits for any child (including orphans re-parented to PID
/// 1); returns its pid (negative when there are no children) and the raw
/// status for `libc::WIFEXITED` and friends.
pub fn wait_any() -> (i32, i32) {
    let mut status = 0;
    // SAFETY: waitpid with a valid status pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
    (pid, status)
}

/// Makes the child of `cmd` the leader of a new session (setsid(2)) with
/// its stdin as controlling terminal (TIOCSCTTY, tty_ioctl(4)): job control
/// and Ctrl-C work in a rescue shell on a console.
pub fn own_session_with_stdin_tty(cmd: &mut std::process::Command) {
    // SAFETY: only async-signal-safe calls (setsid, ioctl) run between fork
    // and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY, 1) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// sync(2), then reboot(2) with `how` (`RB_POWER_OFF`, `RB_AUTOBOOT`,
/// `RB_HALT_SYSTEM`). Returns only when reboot(2) failed (it needs
/// CAP_SYS_BOOT); the error is in `errno`.
pub fn sync_and_reboot(how: libc::c_int) {
    // SAFETY: sync(2) and reboot(2) take no pointers.
    unsafe {
        libc::sync();
        libc::reboot(how);
    }
}
