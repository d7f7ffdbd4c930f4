//! md RAID: each array created by `mdadm --create` on its members' new
//! names, with the recorded UUID, name, level, chunk, layout and size, so
//! that what was on it fits again. Arrays keep their layout names.

use super::fit::Fit;
use super::{DeviceMap, Step, s};
use crate::layout::{Layout, MdArray};

/// One `mdadm --create` per array, in layout order, at the size `fit`
/// chose (else the recorded one).
pub(super) fn steps(layout: &Layout, dev: &DeviceMap, fit: &Fit) -> Vec<Step> {
    layout
        .md
        .iter()
        .map(|m| create(m, dev, fit.md.get(&m.path).copied().unwrap_or(m.size)))
        .collect()
}

fn create(m: &MdArray, dev: &DeviceMap, size: u64) -> Step {
    let members: Vec<String> = m.devices.iter().map(|d| dev.target(d)).collect();
    let spares: Vec<String> = m.spares.iter().map(|d| dev.target(d)).collect();
    let mut argv = vec![
        s("mdadm"),
        s("--create"),
        m.path.clone(),
        s("--run"),
        format!("--level={}", m.level),
        format!("--metadata={}", m.metadata),
        format!("--uuid={}", m.uuid),
        format!("--raid-devices={}", m.raid_devices),
    ];
    if let Some(n) = &m.name {
        argv.extend(name_args(n));
    }
    if let Some(c) = m.chunk_kib {
        argv.push(format!("--chunk={c}K"));
    }
    if let Some(l) = &m.layout {
        argv.push(format!("--layout={l}"));
    }
    // The recorded size (or the fitted one), so the array is exactly as big
    // as on the host: mdadm picks a larger data offset on a bigger member,
    // which would make the array (and the PV on it) smaller than the
    // volumes it held.
    if let Some(k) = component_kib(&m.level, m.raid_devices, size) {
        argv.push(format!("--size={k}K"));
    }
    // ...and where the data starts: mdadm's default offset depends on the
    // member's size, and with --size a bigger default would not fit.
    if let Some(o) = m.data_offset_sectors.filter(|o| *o > 0 && o % 2 == 0)
        && matches!(m.metadata.as_str(), "1.1" | "1.2")
    {
        argv.push(format!("--data-offset={}K", o / 2));
    }
    argv.push(format!(
        "--bitmap={}",
        m.bitmap.as_deref().unwrap_or("none")
    ));
    if assume_clean(&m.level) {
        argv.push(s("--assume-clean"));
    }
    if !spares.is_empty() {
        argv.push(format!("--spare-devices={}", spares.len()));
    }
    // mdadm creates the node itself when no udev runs.
    argv.extend(members.iter().cloned());
    argv.extend(spares.iter().cloned());
    let mut step = Step::new(
        format!("md {}", m.path),
        format!("{} array {} of {}", m.level, m.path, members.join(" ")),
        argv,
    );
    step.needs = members.iter().chain(&spares).cloned().collect();
    step.makes = vec![m.path.clone()];
    step
}

/// Whether the array is created without its initial resync. The members
/// are partitions recover has just made, and everything the restored system
/// will read from the array is written through it first (mkfs, pvcreate,
/// the restore), so no block is read that the members disagree on:
///
/// - **raid1, raid10**: every copy of a block is written by the same write,
///   so skipping the resync is safe, and it frees the disks for the restore
///   (a resync of two 1 TB members reads and writes 2 TB while the restore
///   runs). A later `check` may count mismatches in blocks never written
///   since; `repair` or the next full write clears them.
/// - **raid4, raid5, raid6**: no. A partial-stripe write computes parity
///   from the blocks on disk (read-modify-write); with stale blocks that
///   parity is wrong, and a member lost later rebuilds garbage.
/// - **raid0, linear**: there is no redundancy and so no resync to skip.
pub(super) fn assume_clean(level: &str) -> bool {
    matches!(level, "raid1" | "raid10")
}

/// Size of each member's used part in KiB for `mdadm --size`, from the
/// array's size; none for levels where --size means nothing (raid0) or the
/// arithmetic depends on the layout (raid10).
fn component_kib(level: &str, devices: u32, array_bytes: u64) -> Option<u64> {
    let data_disks = match level {
        "raid1" => 1,
        "raid4" | "raid5" => devices.checked_sub(1)?,
        "raid6" => devices.checked_sub(2)?,
        _ => return None,
    } as u64;
    if data_disks == 0 || array_bytes == 0 {
        return None;
    }
    Some(array_bytes / 1024 / data_disks)
}

/// `--homehost` and `--name` that make mdadm store the recorded name as it
/// was. A v1 superblock's name is `HOMEHOST:NAME` as `mdadm --detail`
/// shows it, but mdadm 4.3 and later (Debian 13 has 4.4) refuse a
/// `--name` that is not a POSIX portable name ("Value ... cannot be set
/// as name. Reason: Not POSIX compatible.", mdadm.c's set_name check), so
/// the host part goes to `--homehost`: mdadm then writes
/// `HOMEHOST:NAME` (super1.c, init_super1), on 4.2 as on 4.4. A recorded
/// name without a colon was stored without a homehost; `--homehost=<none>`
/// (mdadm(8)) keeps the rescue system's own host name from being put in
/// front of it.
fn name_args(recorded: &str) -> Vec<String> {
    match recorded.split_once(':') {
        Some((host, name)) if !host.is_empty() && !name.is_empty() => {
            vec![format!("--homehost={host}"), format!("--name={name}")]
        }
        _ => vec![s("--homehost=<none>"), format!("--name={recorded}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The e2e server's array name as mdadm 4.4 of Debian 13 takes it.
    #[test]
    fn a_recorded_homehost_goes_to_homehost() {
        assert_eq!(
            name_args("e2e-server:0"),
            ["--homehost=e2e-server", "--name=0"]
        );
        assert_eq!(name_args("data"), ["--homehost=<none>", "--name=data"]);
        // Nothing before or after the colon: left to mdadm as recorded.
        assert_eq!(name_args(":0"), ["--homehost=<none>", "--name=:0"]);
    }
}
