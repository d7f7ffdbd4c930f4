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
    let mut dirs = std::collections::BTreeSet::new();
    for sv in &b.subvolumes {
        // A subvolume nested in a plain directory of another (@/srv/e2e in
        // @, whose srv is a directory): the directory first. The restore
        // gives it its owner, mode and times later.
        if let Some((parent, _)) = sv.rsplit_once('/')
            && !b.subvolumes.iter().any(|o| o == parent)
            && dirs.insert(parent)
        {
            chain.push(Step::new(
                format!("subvolume dir {d} {parent}"),
                format!("directory {parent} for subvolume {sv}"),
                vec![s("mkdir"), s("-p"), format!("{mnt}/{parent}")],
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.argv.join(" ")).collect()
    }

    /// A subvolume nested in a plain directory of its parent (the
    /// dracut-sdboot server's @/srv/e2e) gets that directory made first;
    /// one nested directly in another subvolume needs none. Each step
    /// needs the one before.
    #[test]
    fn nested_subvolumes_get_their_parent_directory() {
        let b = BtrfsInfo {
            subvolumes: vec![
                "@".into(),
                "@home".into(),
                "@/srv/e2e".into(),
                "@home/alice".into(),
                "@/srv/other".into(),
            ],
            default_subvolume: Some("@".into()),
        };
        let opt = Options {
            udev: true,
            key_file: None,
            work_dir: "/run/w".into(),
            target_sizes: Default::default(),
            resize: crate::config::Resize::None,
        };
        let steps = subvolumes(&b, "/dev/vda3", &opt);
        let m = "/run/w/btrfs-vda3";
        assert_eq!(
            argv(&steps),
            [
                format!("mkdir -p {m}"),
                format!("mount -t btrfs -o subvolid=5 /dev/vda3 {m}"),
                format!("btrfs -q subvolume create {m}/@"),
                format!("btrfs -q subvolume create {m}/@home"),
                format!("mkdir -p {m}/@/srv"),
                format!("btrfs -q subvolume create {m}/@/srv/e2e"),
                format!("btrfs -q subvolume create {m}/@home/alice"),
                format!("btrfs -q subvolume create {m}/@/srv/other"),
                format!("btrfs subvolume set-default {m}/@"),
                format!("umount {m}"),
            ]
        );
        assert_eq!(steps[0].needs, ["fs:/dev/vda3"]);
        for w in steps.windows(2) {
            assert_eq!(w[1].needs, w[0].makes);
        }
    }
}
