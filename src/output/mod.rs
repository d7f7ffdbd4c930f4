//! Output writers: turn the Manifest into the files an admin carries to the
//! dead machine. `initramfs` writes DIR/vmlinuz, DIR/initrd.img,
//! DIR/manifest.json and DIR/SHA256SUMS; `media` builds the iso, usb, pxe
//! and obdr outputs on top of it (the usb, pxe and obdr ones from a scratch
//! copy in TMPDIR), with boot menus rendered by `bootcfg`. Every output ends
//! with a SHA256SUMS beside it that `mkrescue verify DIR` checks. `dryrun`
//! says what a build would write and call, writing nothing. `pxeprune` is
//! the recovery server's side of the PXE tree (`mkrescue pxe prune`).

pub mod bootcfg;
pub mod dryrun;
pub mod initramfs;
pub mod iso;
pub mod isobackup;
pub mod media;
pub mod obdr;
pub mod pxe;
pub mod pxeprune;
pub mod pxeupload;
pub mod secureboot;
pub mod stamp;
pub mod sums;
pub mod tools;
pub mod usb;
