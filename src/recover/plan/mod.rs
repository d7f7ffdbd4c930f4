//! The plan: the layout turned into ordered steps, each one exact command.
//!
//! Every step says which devices it needs and which it makes (a partition
//! needs its disk's table, an md array its members, a PV its device, a VG
//! its PVs, an LV its VG, a file system its device); steps are ordered by
//! that graph, keeping the layout's order where the graph allows, and the
//! plan is refused before step one when something can never be made.
//!
//! One planner per layer, bottom up, all sharing one `DeviceMap`:
//! `tables` (wipe and partition the mapped disks), `md` (RAID arrays),
//! `luks` (containers and their mappings), `lvm` (PVs, VGs, LVs and
//! their UUIDs), `fs` (file systems and swap) with `btrfs` subvolumes;
//! the sizes of partitions, arrays and LVs on disks of another size come
//! from `fit`, worked out before any step;
//! then `order` sorts the steps and `script` prints them. The mounts
//! of the rebuilt tree are planned apart, in `recover::mount`.
//!
//! Before any of them, `firmware` adds to the layout what the firmware
//! of this machine needs and the layout lacks (an ESP, a bios_grub
//! partition, GPT for MBR); recover plans, mounts and finalizes that
//! converted layout.

mod btrfs;
pub mod firmware;
pub mod fit;
mod fs;
mod luks;
mod lvm;
mod md;
mod order;
mod script;
mod tables;

use std::collections::BTreeMap;

use anyhow::Result;

use crate::config::Resize;
use crate::layout::{Disk, Layout, part_path};

pub use script::quote;

/// One command of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Stable name, the checkpoint key (`partition /dev/vda`).
    pub id: String,
    /// What it does, for the script's comment and the report.
    pub what: String,
    /// Environment assignments in front of the command.
    pub env: Vec<(String, String)>,
    pub argv: Vec<String>,
    /// Text fed on stdin (an sfdisk script).
    pub stdin: Option<String>,
    /// Devices (or `vg:NAME`) that must exist before.
    pub needs: Vec<String>,
    /// Devices (or `vg:NAME`) that exist after.
    pub makes: Vec<String>,
}

impl Step {
    /// A step with no environment and no stdin that needs and makes
    /// nothing yet; the layer fills in the rest.
    fn new(id: String, what: String, argv: Vec<String>) -> Step {
        Step {
            id,
            what,
            env: Vec::new(),
            argv,
            stdin: None,
            needs: Vec::new(),
            makes: Vec::new(),
        }
    }
}

/// Options that shape the plan.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// udevd runs: no need to tell device-mapper to make its own nodes.
    pub udev: bool,
    /// Key file for `cryptsetup` (else `--key-file -` reads the terminal).
    pub key_file: Option<String>,
    /// Scratch directory for LVM metadata and mount points.
    pub work_dir: String,
    /// Size in bytes of each target disk: a smaller one gets the layout
    /// fitted onto it ([`fit`]), a bigger one is used as `resize` says.
    pub target_sizes: BTreeMap<String, u64>,
    pub resize: Resize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Every size chosen that differs from the layout (old -> new).
    pub sizes: Vec<fit::Change>,
}

/// Layout device path → device path on this machine, shared by the layer
/// planners. The partition-table layer adds each mapped disk and its
/// partitions (named by the target disk's kernel naming); md arrays, LUKS
/// mappings and LVs keep their layout names, so the layers above only
/// read it. A device it does not hold keeps its name: one on an unmapped
/// disk then needs something nothing makes, and the ordering names it.
#[derive(Debug, Clone, Default)]
struct DeviceMap(BTreeMap<String, String>);

impl DeviceMap {
    /// Records that disk `d` of the layout becomes `target`, and its
    /// partitions the target's partitions of the same numbers.
    fn add_disk(&mut self, d: &Disk, target: &str) {
        self.0.insert(d.path.clone(), target.to_string());
        for p in &d.partitions {
            self.0.insert(p.path.clone(), part_path(target, p.number));
        }
    }

    /// The device on this machine for the layout's `dev`.
    fn target(&self, dev: &str) -> String {
        self.0.get(dev).cloned().unwrap_or_else(|| dev.to_string())
    }
}

/// Source device path → target device path, for the mapped disks and their
/// partitions (md arrays, LVM and LUKS mappings keep their names).
pub fn device_map(layout: &Layout, map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut dev = DeviceMap::default();
    for d in &layout.disks {
        if let Some(t) = map.get(&d.path) {
            dev.add_disk(d, t);
        }
    }
    dev.0
}

/// Builds the plan for `layout` onto the mapped disks (source → target):
/// each layer's steps, bottom up, then ordered by what they need.
/// A disk too small for the data is refused here, before any step.
pub fn plan(layout: &Layout, map: &BTreeMap<String, String>, opt: &Options) -> Result<Plan> {
    let fit = fit::fit(layout, map, &opt.target_sizes, opt.resize)?;
    let mut dev = DeviceMap::default();
    let mut steps = tables::steps(layout, map, &fit, &mut dev);
    steps.extend(md::steps(layout, &dev, &fit));
    steps.extend(luks::steps(layout, &dev, opt));
    steps.extend(lvm::steps(layout, &dev, opt, &fit));
    steps.extend(fs::steps(layout, &dev, opt)?);
    let mut p = order::order(steps)?;
    p.sizes = fit.changes;
    Ok(p)
}

/// The environment of device-mapper commands (cryptsetup, lvm).
fn dm_env(opt: &Options) -> Vec<(String, String)> {
    if opt.udev {
        Vec::new()
    } else {
        // No udevd in the rescue system: device-mapper makes its nodes
        // itself (lvm2 WHATS_NEW 2.02.99: DM_DISABLE_UDEV).
        vec![(s("DM_DISABLE_UDEV"), s("1"))]
    }
}

fn s(x: impl Into<String>) -> String {
    x.into()
}
