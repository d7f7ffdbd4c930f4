//! Helpers shared between test modules: running the binary and comparing
//! trees (`backup`), an initrd fixture and reference tools (`image`),
//! command checks for the media tests (`media`), a real OpenSSH server
//! (`sshd`).

pub mod backup;
pub mod image;
pub mod media;
pub mod sshd;
