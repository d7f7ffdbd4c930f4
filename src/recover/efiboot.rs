//! The firmware's boot entries as efibootmgr(8) prints them: `BootCurrent`,
//! `BootOrder` and one `Boot####` line per entry (UEFI spec 2.9, 3.1.3
//! "Load Options": the variables are `Boot####`, `BootOrder` a list of
//! their 16-bit numbers, `BootCurrent` the one that started this boot).
//!
//! Owns parsing that text and building a new order; finalize uses it to
//! add an entry for every copy of the ESP (each RAID1 member boots through
//! its own entry when the other disk is gone), the e2e harness to check
//! which entry booted the recovered system.

/// One `Boot####` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    pub num: u16,
    /// `*` after the number: LOAD_OPTION_ACTIVE.
    pub active: bool,
    pub label: String,
    /// The device path as efibootmgr renders it (with `-v`, followed by the
    /// optional data), empty when it printed none.
    pub path: String,
}

/// What `efibootmgr` / `efibootmgr -v` printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootVars {
    pub current: Option<u16>,
    pub order: Vec<u16>,
    pub entries: Vec<BootEntry>,
}

impl BootVars {
    pub fn entry(&self, num: u16) -> Option<&BootEntry> {
        self.entries.iter().find(|e| e.num == num)
    }

    /// The entry that started this boot.
    pub fn current_entry(&self) -> Option<&BootEntry> {
        self.current.and_then(|n| self.entry(n))
    }

    /// Entries whose label is exactly `label`.
    pub fn with_label(&self, label: &str) -> Vec<u16> {
        self.entries
            .iter()
            .filter(|e| e.label == label)
            .map(|e| e.num)
            .collect()
    }
}

fn hex4(s: &str) -> Option<u16> {
    (s.len() == 4)
        .then(|| u16::from_str_radix(s, 16).ok())
        .flatten()
}

/// Parses efibootmgr's output (versions 15 to 18: `BootXXXX* LABEL\tPATH`,
/// the path left out by some versions without `-v`). Lines it does not know
/// (Timeout, BootNext, MirroredPercentage...) are skipped.
pub fn parse(text: &str) -> BootVars {
    let mut v = BootVars::default();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("BootCurrent:") {
            v.current = hex4(rest.trim());
        } else if let Some(rest) = line.strip_prefix("BootOrder:") {
            v.order = rest
                .trim()
                .split(',')
                .filter_map(|n| hex4(n.trim()))
                .collect();
        } else if let Some(rest) = line.strip_prefix("Boot")
            && let Some(num) = rest.get(..4).and_then(hex4)
        {
            let rest = &rest[4..];
            let (active, rest) = match rest.strip_prefix('*') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            // `Boot0004* label`, inactive `Boot0003  label`.
            let rest = rest.trim_start();
            let (label, path) = rest.split_once('\t').unwrap_or((rest, ""));
            v.entries.push(BootEntry {
                num,
                active,
                label: label.trim_end().to_string(),
                path: path.trim().to_string(),
            });
        }
    }
    v
}

/// `order` with `add` placed right after `first` (at the front when
/// `first` is not in it), each number once, as efibootmgr's `--bootorder`
/// takes it: `0004,0005,0001`. Right after, not at the end: when `first`'s
/// disk is gone the firmware tries the next entry, and further down there
/// may be one that never returns (OVMF's EFI shell waits at its prompt).
pub fn order_arg(order: &[u16], first: Option<u16>, add: &[u16]) -> String {
    let rest: Vec<u16> = order.iter().copied().filter(|n| !add.contains(n)).collect();
    let at = first
        .and_then(|f| rest.iter().position(|n| *n == f))
        .map_or(0, |i| i + 1);
    let mut all: Vec<u16> = Vec::with_capacity(rest.len() + add.len());
    for n in rest[..at].iter().chain(add).chain(&rest[at..]) {
        if !all.contains(n) {
            all.push(*n);
        }
    }
    all.iter()
        .map(|n| format!("{n:04X}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// efibootmgr -v of the recovered e2e server under OVMF
    /// (tests/fixtures/efiboot/README.md).
    const AFTER: &str = include_str!("../../tests/fixtures/efiboot/ovmf-after-recover.txt");

    #[test]
    fn current_order_and_entries() {
        let v = parse(AFTER);
        assert_eq!(v.current, Some(3));
        assert_eq!(v.order, [3, 4, 0, 2, 1, 5, 6, 7, 8, 9]);
        assert_eq!(v.entries.len(), 10);
        let cur = v.current_entry().unwrap();
        assert_eq!(cur.label, "debian");
        assert!(cur.active);
        assert!(
            cur.path.ends_with("/File(\\EFI\\debian\\grubx64.efi)"),
            "{}",
            cur.path
        );
        // A label with a trailing blank (OVMF's DVD entry) and -v's
        // optional data after the path.
        let dvd = v.entry(1).unwrap();
        assert_eq!(dvd.label, "UEFI QEMU DVD-ROM QM00005");
        assert!(
            dvd.path
                .starts_with("PciRoot(0x0)/Pci(0x1f,0x2)/Sata(2,65535,0)")
        );
        assert_eq!(v.entry(2).unwrap().label, "EFI Internal Shell");
        assert_eq!(v.with_label("debian"), [3]);
        assert_eq!(v.with_label("debian ESP2"), [4]);
        // An inactive entry has a blank where the `*` would be.
        let off = parse("Boot0002  EFI Internal Shell\tFvVol(x)/FvFile(y)\n");
        assert!(!off.entries[0].active);
        assert_eq!(off.entries[0].label, "EFI Internal Shell");
    }

    #[test]
    fn without_paths_and_on_a_bios_machine() {
        // Older versions print no path without -v.
        let v = parse("BootCurrent: 000A\nBootOrder: 000A\nBoot000A* debian\n");
        assert_eq!(v.current_entry().unwrap().label, "debian");
        assert_eq!(v.entry(10).unwrap().path, "");
        // No EFI variables: efibootmgr prints an error, nothing parses.
        let none = parse("EFI variables are not supported on this system.\n");
        assert_eq!(none, BootVars::default());
        assert!(none.current_entry().is_none());
    }

    #[test]
    fn new_entries_go_right_after_the_first_disks_entry() {
        // debian (4), DVD (1), shell (3): the second disk's entry before
        // the shell.
        assert_eq!(order_arg(&[4, 1, 3], Some(4), &[5]), "0004,0005,0001,0003");
        assert_eq!(
            order_arg(&[1, 4, 3], Some(4), &[5, 6]),
            "0001,0004,0005,0006,0003"
        );
        // Already in the order (a rerun): moved, not doubled.
        assert_eq!(order_arg(&[4, 3, 5], Some(4), &[5]), "0004,0005,0003");
        // No first entry: to the front.
        assert_eq!(order_arg(&[1, 3], None, &[0x1a]), "001A,0001,0003");
        assert_eq!(order_arg(&[1, 3], Some(9), &[2]), "0002,0001,0003");
        assert_eq!(order_arg(&[], None, &[2]), "0002");
    }
}
