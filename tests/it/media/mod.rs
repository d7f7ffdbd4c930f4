//! The boot media: boot menus, ISO, USB, PXE and OBDR tape.

mod bootcfg;
mod iso_extras;
mod obdr;
mod outputs;
mod pxe_fleet;
mod pxe_upload;
mod reproducible;
mod usb_device;
