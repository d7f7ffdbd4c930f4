//! btrfs subvolumes: after mkfs.btrfs, the top level is mounted on a
//! scratch directory, the recorded subvolumes are created (parents first,
//! as the layout lists them), the default one is set, and it is unmounted.

use super::{Options, Step, s};
use crate::layout::BtrfsInfo;

/// The subvolume steps of the btrfs `b` made on `d`: a chain, each step
/// needing the one before and the first the file system. None when the
/// file system has no subvolumes and its top level is the default.
pub(super) fn subvolumes(b: &BtrfsInfo, d: &str, opt: &Options) -> Vec<Step> {
    if b.subvolumes.is_empty() && b.default_subvolume.is_none() {
        return Vec::new();
    }
    let mnt = format!(
        "{}/btrfs-{}",
        opt.work_dir,
        d.trim_start_matches("/dev/").replace('/', "-")
    );
    let mut chain = vec![
        Step::new(
            format!("mkdir {mnt}"),
            s("mount point for the subvolumes"),
            vec![s("mkdir"), s("-p"), mnt.clone()],
        ),
        Step::new(
            format!("mount {d}"),
            format!("mount the top level of {d}"),
            vec![
                s("mount"),
                s("-t"),
                s("btrfs"),
                s("-o"),
                s("subvolid=5"),
                s(d),
                mnt.clone(),
            ],
        ),
    ];
    for sv in &b.subvolumes {
        chain.push(Step::new(
            format!("subvolume {d} {sv}"),
            format!("subvolume {sv}"),
            vec![
                s("btrfs"),
                s("-q"),
                s("subvolume"),
                s("create"),
                format!("{mnt}/{sv}"),
            ],
        ));
    }
    if let Some(def) = &b.default_subvolume {
        chain.push(Step::new(
            format!("default subvolume {d}"),
            format!("default subvolume {def}"),
            vec![
                s("btrfs"),
                s("subvolume"),
                s("set-default"),
                format!("{mnt}/{def}"),
            ],
        ));
    }
    chain.push(Step::new(
        format!("umount {d}"),
        format!("unmount {d}"),
        vec![s("umount"), mnt.clone()],
    ));
    let mut prev = format!("fs:{d}");
    for step in &mut chain {
        let tag = format!("{}:done", step.id);
        step.needs = vec![std::mem::replace(&mut prev, tag.clone())];
        step.makes = vec![tag];
    }
    chain
}
