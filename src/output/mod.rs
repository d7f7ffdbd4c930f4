//! Output writers: turn the Manifest into the files an admin carries to the
//! dead machine. `initramfs` writes DIR/vmlinuz, DIR/initrd.img,
//! DIR/manifest.json and DIR/SHA256SUMS; iso, usb, pxe and obdr build on it.

pub mod initramfs;
