//! File systems and swap: each made by its mkfs with the recorded UUID,
//! label and the features that matter (ext block and inode size and feature
//! list, the xfs v5 features, the FAT size). Swap areas come in layout order
//! with the file systems, as the layout lists them together. btrfs
//! subvolumes follow their file system ([`super::btrfs`]).

use super::{DeviceMap, Options, Step, btrfs, s};
use crate::error::{Code, fail};
use crate::layout::{Filesystem, Layout};
use anyhow::Result;

/// One mkfs (or mkswap) per file system, each followed by its subvolume
/// steps; refused for a type nothing here can make.
pub(super) fn steps(layout: &Layout, dev: &DeviceMap, opt: &Options) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for f in &layout.filesystems {
        let d = dev.target(&f.device);
        let mut argv = match f.fstype.as_str() {
            "ext2" | "ext3" | "ext4" => ext(f),
            "xfs" => xfs(f),
            "btrfs" => mkfs_btrfs(f),
            "vfat" => vfat(f),
            "swap" => swap(f),
            other => {
                return Err(fail(
                    Code::Input,
                    format!(
                        "{}: file system type `{other}` cannot be recreated",
                        f.device
                    ),
                ));
            }
        };
        argv.push(d.clone());
        let mut step = Step::new(format!("mkfs {d}"), format!("{} on {d}", f.fstype), argv);
        step.needs = vec![d.clone()];
        step.makes = vec![format!("fs:{d}")];
        steps.push(step);
        if let Some(b) = &f.btrfs {
            steps.extend(btrfs::subvolumes(b, &d, opt));
        }
    }
    Ok(steps)
}

/// mke2fs(8) arguments, without the device.
fn ext(f: &Filesystem) -> Vec<String> {
    let mut argv = vec![format!("mkfs.{}", f.fstype), s("-F"), s("-q")];
    if let Some(u) = &f.uuid {
        argv.push(format!("-U{u}"));
    }
    if let Some(lb) = &f.label {
        argv.push(format!("-L{lb}"));
    }
    if let Some(e) = &f.ext {
        argv.push(format!("-b{}", e.block_size));
        argv.push(format!("-I{}", e.inode_size));
        // "none" clears mke2fs.conf's defaults, so the list is
        // exactly the recorded one (mke2fs(8) -O).
        let mut feats = vec![s("none")];
        feats.extend(e.features.iter().cloned());
        argv.push(format!("-O{}", feats.join(",")));
    }
    argv
}

/// mkfs.xfs(8) arguments, without the device.
fn xfs(f: &Filesystem) -> Vec<String> {
    let mut argv = vec![s("mkfs.xfs"), s("-f"), s("-q")];
    let mut meta = Vec::new();
    if let Some(u) = &f.uuid {
        meta.push(format!("uuid={u}"));
    }
    if let Some(x) = &f.xfs {
        let b = |v: bool| if v { 1 } else { 0 };
        meta.push(format!("crc={}", b(x.crc)));
        if x.crc {
            // These need v5 (crc=1) superblocks (mkfs.xfs(8)).
            meta.extend([
                format!("finobt={}", b(x.finobt)),
                format!("reflink={}", b(x.reflink)),
                format!("rmapbt={}", b(x.rmapbt)),
                format!("bigtime={}", b(x.bigtime)),
                format!("inobtcount={}", b(x.inobtcount)),
            ]);
        }
        argv.extend([
            format!("-b size={}", x.block_size),
            format!("-i size={},sparse={}", x.inode_size, b(x.sparse_inodes)),
            // Bytes: a `b` suffix would mean file system blocks (mkfs.xfs(8)).
            format!("-l size={}", x.log_size_blocks * x.block_size),
        ]);
    }
    if !meta.is_empty() {
        argv.push(format!("-m {}", meta.join(",")));
    }
    if let Some(lb) = &f.label {
        argv.push(format!("-L{lb}"));
    }
    // mkfs.xfs takes "-b size=4096" as two words.
    argv.into_iter()
        .flat_map(|a| {
            if a.starts_with('-') && a.contains(' ') {
                let (x, y) = a.split_once(' ').expect("has a space");
                vec![x.to_string(), y.to_string()]
            } else {
                vec![a]
            }
        })
        .collect()
}

/// mkfs.btrfs(8) arguments, without the device.
fn mkfs_btrfs(f: &Filesystem) -> Vec<String> {
    let mut argv = vec![s("mkfs.btrfs"), s("-f"), s("-q")];
    if let Some(u) = &f.uuid {
        argv.push(format!("--uuid={u}"));
    }
    if let Some(lb) = &f.label {
        argv.push(format!("--label={lb}"));
    }
    argv
}

/// mkfs.vfat(8) arguments, without the device.
fn vfat(f: &Filesystem) -> Vec<String> {
    let bits = f.vfat.as_ref().map(|v| v.fat_bits).unwrap_or(32);
    let mut argv = vec![s("mkfs.vfat"), format!("-F{bits}")];
    if let Some(u) = &f.uuid {
        // vfat "UUID" is the volume id printed as XXXX-XXXX.
        argv.push(format!("-i{}", u.replace('-', "")));
    }
    if let Some(lb) = &f.label {
        argv.push(format!("-n{lb}"));
    }
    argv
}

/// mkswap(8) arguments, without the device.
fn swap(f: &Filesystem) -> Vec<String> {
    let mut argv = vec![s("mkswap")];
    if let Some(u) = &f.uuid {
        argv.push(format!("--uuid={u}"));
    }
    if let Some(lb) = &f.label {
        argv.push(format!("--label={lb}"));
    }
    argv
}
