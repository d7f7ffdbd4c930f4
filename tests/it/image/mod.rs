//! The initrd writer: cpio newc read back by independent readers, the
//! compressors, and what it refuses.

mod compress;
mod cpio;
mod errors;
