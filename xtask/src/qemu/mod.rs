//! `cargo xtask qemu ...`: the QEMU tests. [`mkrescue::vm`] is the one VM runner
//! every scenario starts QEMU through; each other module is one scenario
//! (or family of them) and depends on `vm`, never on a sibling scenario
//! except `runtime`, which runs `shares` as its sixth case.
//!
//! - [`boot`]: the initramfs of this host boots to the ready marker
//! - [`media`]: ISO, USB and PXE media under SeaBIOS and OVMF
//! - [`layout`]: disk layouts built, recovered and compared in a VM
//! - [`runtime`]: the rescue system's network, disks and SSH, checked from
//!   outside; [`rescue`] builds and boots its images, [`shares`] is its
//!   NFS/CIFS case
//! - [`fleet`]: three hosts of one OS in one PXE root share one base and
//!   each boots from it as itself (issue 23)
//! - [`e2e`]: the whole disaster cycle of a Debian server

pub mod boot;
pub mod e2e;
pub mod fleet;
pub mod layout;
pub mod media;
pub mod rescue;
pub mod runtime;
pub mod shares;
