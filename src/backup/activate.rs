//! Makes a local backup disk's file system visible in the rescue system
//! when it sits on md RAID or LVM: nothing assembles arrays or activates
//! volume groups there until someone asks, so the recorded file system
//! UUID is not found. [`next`] decides, from what `blkid` sees, the one
//! step that may bring it (assemble md, activate LVM) or why none can (a
//! LUKS container needs its key); [`super::source`] runs the steps and
//! looks again.

/// One block device as `blkid -o export` shows it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Probed {
    pub dev: String,
    /// TYPE: ext4, linux_raid_member, LVM2_member, crypto_LUKS...
    pub kind: String,
    pub uuid: String,
}

/// The devices in `blkid -c /dev/null -o export` output: blocks of
/// KEY=value lines, one per device, separated by empty lines (blkid(8),
/// "-o export").
pub fn probed(export: &str) -> Vec<Probed> {
    let mut out = Vec::new();
    let mut cur = Probed::default();
    for line in export.lines().chain(std::iter::once("")) {
        match line.split_once('=') {
            Some(("DEVNAME", v)) => cur.dev = v.to_string(),
            Some(("TYPE", v)) => cur.kind = v.to_string(),
            Some(("UUID", v)) => cur.uuid = v.to_string(),
            _ if line.trim().is_empty() => {
                let done = std::mem::take(&mut cur);
                if !done.dev.is_empty() {
                    out.push(done);
                }
            }
            _ => {}
        }
    }
    out
}

/// What to do next to reach a file system by UUID.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// These devices carry it.
    Found(Vec<String>),
    /// md members are there: `mdadm --assemble --scan`.
    AssembleMd,
    /// LVM physical volumes are there: `lvm vgchange -ay [VG]`, the VG
    /// the host had the file system on when its name is known.
    ActivateLvm(Option<String>),
    /// Only LUKS containers are left, which need a key.
    Luks(Vec<String>),
    /// Nothing here can carry it.
    Missing,
}

/// What has been tried already.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tried {
    pub md: bool,
    pub lvm: bool,
}

/// The next step towards file system `uuid`, which the host had on
/// `host_source` (e.g. `/dev/mapper/backup-lv`), given the devices `blkid`
/// sees now. md before LVM: a volume group on an array shows only once
/// the array is assembled.
pub fn next(devs: &[Probed], uuid: &str, host_source: &str, tried: Tried) -> Next {
    let found: Vec<String> = devs
        .iter()
        .filter(|d| d.uuid.eq_ignore_ascii_case(uuid) && !is_container(&d.kind))
        .map(|d| d.dev.clone())
        .collect();
    if !found.is_empty() {
        return Next::Found(found);
    }
    let has = |k: &str| devs.iter().any(|d| d.kind == k);
    if has("linux_raid_member") && !tried.md {
        return Next::AssembleMd;
    }
    if has("LVM2_member") && !tried.lvm {
        return Next::ActivateLvm(vg_of(host_source));
    }
    let luks: Vec<String> = devs
        .iter()
        .filter(|d| d.kind == "crypto_LUKS")
        .map(|d| d.dev.clone())
        .collect();
    if !luks.is_empty() {
        return Next::Luks(luks);
    }
    Next::Missing
}

/// Member devices carry their array's or volume group's UUID, not a file
/// system's.
fn is_container(kind: &str) -> bool {
    matches!(kind, "linux_raid_member" | "LVM2_member" | "crypto_LUKS")
}

/// The volume group of a logical volume's device name: `/dev/VG/LV`, or
/// `/dev/mapper/VG-LV` where a `-` inside a name is doubled
/// (lvm(8), "VALID NAMES": device-mapper names escape `-` as `--`).
pub fn vg_of(source: &str) -> Option<String> {
    if let Some(dm) = source.strip_prefix("/dev/mapper/") {
        let b = dm.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'-' {
                if b.get(i + 1) == Some(&b'-') {
                    i += 2;
                    continue;
                }
                let vg = dm[..i].replace("--", "-");
                return (!vg.is_empty() && i + 1 < b.len()).then_some(vg);
            }
            i += 1;
        }
        return None;
    }
    let rest = source.strip_prefix("/dev/")?;
    let (vg, lv) = rest.split_once('/')?;
    let reserved = [
        "mapper", "md", "disk", "block", "bus", "char", "cpu", "input", "net", "pts",
    ];
    (!vg.is_empty() && !lv.is_empty() && !lv.contains('/') && !reserved.contains(&vg))
        .then(|| vg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `blkid -p -o export DEV` outputs captured in the QEMU layout
    /// scenarios (tests/fixtures/layout/README.md), joined as blkid prints
    /// several devices: an md member, the md array holding an LVM PV, a
    /// LUKS partition, and a logical volume's ext4.
    fn fixture(names: &[&str]) -> String {
        names
            .iter()
            .map(|n| {
                std::fs::read_to_string(format!(
                    "{}/tests/fixtures/layout/blkid-{n}.txt",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn uuid_of(names: &[&str], dev: &str) -> String {
        probed(&fixture(names))
            .into_iter()
            .find(|d| d.dev == dev)
            .unwrap()
            .uuid
    }

    #[test]
    fn blocks_of_several_devices_are_read() {
        let d = probed(&fixture(&["vdc3", "md0", "vde1"]));
        let kinds: Vec<(&str, &str)> = d
            .iter()
            .map(|p| (p.dev.as_str(), p.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("/dev/vdc3", "linux_raid_member"),
                ("/dev/md0", "LVM2_member"),
                ("/dev/vde1", "crypto_LUKS")
            ]
        );
        assert!(d.iter().all(|p| !p.uuid.is_empty()));
    }

    #[test]
    fn an_lv_on_raid_needs_md_then_lvm() {
        let all = ["vdc3", "vdd3", "md0", "mapper_vg0-home"];
        let fs = uuid_of(&all, "/dev/mapper/vg0-home");
        let src = "/dev/mapper/vg0-home";
        // Only the RAID members are visible at first.
        let t = Tried::default();
        let step = next(&probed(&fixture(&["vdc3", "vdd3"])), &fs, src, t);
        assert_eq!(step, Next::AssembleMd);
        // The array is there, holding a PV.
        let t = Tried {
            md: true,
            lvm: false,
        };
        let step = next(&probed(&fixture(&["vdc3", "vdd3", "md0"])), &fs, src, t);
        assert_eq!(step, Next::ActivateLvm(Some("vg0".into())));
        // The LV is active: found.
        let t = Tried {
            md: true,
            lvm: true,
        };
        assert_eq!(
            next(&probed(&fixture(&all)), &fs, src, t),
            Next::Found(vec!["/dev/mapper/vg0-home".into()])
        );
    }

    #[test]
    fn a_member_with_the_uuid_is_not_the_file_system() {
        // An md member reports the array's UUID; asking for it must not
        // "find" the member.
        let d = probed(&fixture(&["vdc3"]));
        let member_uuid = d[0].uuid.clone();
        assert_eq!(
            next(&d, &member_uuid, "/dev/md0", Tried::default()),
            Next::AssembleMd
        );
    }

    #[test]
    fn luks_is_reported_once_nothing_else_can_help() {
        let d = probed(&fixture(&["vdc3", "vde1"]));
        let t = Tried {
            md: true,
            lvm: true,
        };
        assert_eq!(
            next(
                &d,
                "0e7b2a6c-0000-0000-0000-000000000000",
                "/dev/mapper/backup",
                t
            ),
            Next::Luks(vec!["/dev/vde1".into()])
        );
        assert_eq!(next(&[], "x", "/dev/sdb1", t), Next::Missing);
        // Nothing to assemble or activate: no step is offered again.
        let plain = probed(&fixture(&["vdc1"]));
        assert_eq!(
            next(&plain, "x", "/dev/sdb1", Tried::default()),
            Next::Missing
        );
    }

    #[test]
    fn volume_group_names() {
        assert_eq!(vg_of("/dev/mapper/vg0-home").as_deref(), Some("vg0"));
        assert_eq!(vg_of("/dev/mapper/my--vg-my--lv").as_deref(), Some("my-vg"));
        assert_eq!(vg_of("/dev/backup/data").as_deref(), Some("backup"));
        assert_eq!(vg_of("/dev/mapper/cryptdata"), None);
        assert_eq!(vg_of("/dev/md/backup"), None);
        assert_eq!(vg_of("/dev/sdb1"), None);
    }
}
