//! Initrd compressors and the check that the target kernel can unpack them.

use std::path::Path;

use anyhow::Result;

use crate::config::Compression;

/// Errors (exit code 4) when the kernel config at `kernel_config`
/// (`/boot/config-KVER`) lacks the `CONFIG_RD_*` option for `c`.
pub fn check_kernel_support(kernel_config: &Path, c: Compression) -> Result<()> {
    let _ = (kernel_config, c);
    todo!("image::compress::check_kernel_support")
}
