//! Small facts about the OS and the few system calls std does not offer.
//!
//! This is the leaf every other folder may use and which uses none of them:
//! the host name, whether a file is executable, shell quoting, civil dates,
//! free space, mountinfo, and the syscalls (xattrs, holes, `syncfs`,
//! `mount`, `reboot`, the tape ioctl, terminal echo). It is the only module
//! allowed `unsafe` (the crate root denies `unsafe_code` everywhere else);
//! each call carries a SAFETY comment. Where std covers a case
//! (`IsTerminal`, `std::os::unix::fs`), std is used instead.

#![allow(unsafe_code)]

pub mod block;
pub mod dirfd;
pub mod fs;
pub mod host;
pub mod mount;
pub mod process;
pub mod shell;
pub mod tape;
pub mod term;
pub mod time;

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `path` as a C string for a syscall; a NUL byte inside is an error.
pub(crate) fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Whether `p` is a regular file executable by someone (follows symlinks).
pub fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether an executable `name` is found in one of the `PATH` directories.
pub fn in_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| is_executable(&d.join(name))))
}

/// Bytes free for an unprivileged writer in the file system of `dir`
/// (statvfs(3): `f_bavail` blocks of `f_frsize` bytes).
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    let c = cpath(dir)?;
    // SAFETY: statvfs is plain data that the call fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` is writable.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Bytes in use in the file system of `dir`: all blocks less the free
/// ones, root's reserve counted as free (statvfs(3): `(f_blocks - f_bfree)`
/// blocks of `f_frsize` bytes), what `df` shows as "Used".
pub fn used_bytes(dir: &Path) -> io::Result<u64> {
    let c = cpath(dir)?;
    // SAFETY: statvfs is plain data that the call fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` is writable.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.f_blocks as u64).saturating_sub(st.f_bfree as u64) * st.f_frsize as u64)
}

/// glibc's fnmatch(3) without flags: the oracle `kmod::glob`'s own matcher
/// is tested against (kmod calls glibc's).
#[cfg(test)]
pub fn libc_fnmatch(pattern: &str, text: &str) -> bool {
    let (Ok(p), Ok(t)) = (CString::new(pattern), CString::new(text)) else {
        return false;
    };
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    unsafe { libc::fnmatch(p.as_ptr(), t.as_ptr(), 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables() {
        assert!(is_executable(Path::new("/bin/sh")));
        assert!(!is_executable(Path::new("/etc/passwd")));
        assert!(!is_executable(Path::new("/nonexistent/x")));
        assert!(!is_executable(Path::new("/bin")));
    }

    #[test]
    fn free_space_of_tmp() {
        assert!(free_bytes(Path::new("/tmp")).unwrap() > 0);
        assert!(free_bytes(Path::new("/nonexistent/dir")).is_err());
    }
}
