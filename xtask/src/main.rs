//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo
//! does (rust-analyzer's xtask pattern).
//!
//! - `deps`: install the Debian packages the build and tests need
//! - `rescue`: build a rescue image of this machine and boot it in QEMU
//! - `ci`: fmt, clippy, tests, the QEMU scenarios and the e2e matrix
//!   (what `.ci/run` calls; `--plan` lists it)
//! - `qemu boot`: boot the built initramfs in QEMU and wait for the marker
//! - `qemu media`: build the ISO/USB/PXE media and boot each in QEMU
//! - `qemu runtime`: the rescue system's network, disks and SSH in QEMU
//! - `qemu layout`: build disk layouts in a VM, recover them, compare
//! - `qemu fleet`: three hosts in one PXE root share one base and each boots
//!   as itself (issue 23)
//! - `qemu e2e`: the whole disaster cycle of a Debian server (issue 7)
//! - `dist`: man pages and shell completions
//! - `deb`: the Debian package (target/deb), checked with dpkg-deb -c and lintian
//! - `bench`: mkrescue against dracut, mkinitramfs and ReaR; backup and
//!   restore against tar+zstd and borg
//!
//! Modules: `ci` (the plan, the budget, the table of times), `qemu/` (one file
//! or folder per scenario, on the product's VM runner `mkrescue::vm`), `bench/`,
//! `deb`, `deps`, `dist`, `util` (helpers all of them share).

mod bench;
mod ci;
mod deb;
mod deps;
mod dist;
mod qemu;
mod util;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Xtask {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the Debian packages needed to build, test and boot (apt-get)
    Deps,
    /// Build a rescue initramfs of this machine and boot it in QEMU
    Rescue {
        /// Where the image goes
        #[arg(long, default_value = "target/rescue")]
        out: PathBuf,
    },
    /// Everything CI checks: fmt, clippy, tests, the QEMU scenarios and
    /// the e2e disaster matrix; a table of minutes at the end (also in
    /// target/ci-times.json)
    Ci {
        /// Print the steps and e2e variants this run would run, one per
        /// line, without running them
        #[arg(long)]
        plan: bool,
        /// Every e2e variant of the matrix, none rotated out
        #[arg(long)]
        all: bool,
        /// Which e2e variants: one (raid1-lvm iso bios), matrix (the core
        /// ones and the rest as the 80-minute budget allows, rotated by
        /// commit), all [default: matrix, or $MKRESCUE_CI_E2E]
        #[arg(long, value_name = "SET")]
        e2e: Option<String>,
    },
    /// QEMU tests
    Qemu {
        #[command(subcommand)]
        what: QemuCmd,
    },
    /// Man pages (section 8, one per command) and shell completions into
    /// target/dist
    Dist,
    /// The Debian package target/deb/mkrescue_VERSION_amd64.deb, checked
    /// (dpkg-deb -c, lintian)
    Deb,
    /// Compare build time, memory and size with dracut, mkinitramfs and ReaR;
    /// backup and restore throughput with tar+zstd and borg
    Bench {
        /// Skip ReaR (it takes minutes)
        #[arg(long)]
        no_rear: bool,
        /// Write the results into BENCHMARKS.md
        #[arg(long)]
        write: bool,
        /// Only boot mkrescue's image and ReaR's to ready under TCG (no build comparison)
        #[arg(long)]
        boot_only: bool,
        /// Skip booting the images
        #[arg(long, conflicts_with = "boot_only")]
        no_boot: bool,
        /// ReaR ISO to boot (default: the one `bench` built in target/bench/rear-out)
        #[arg(long, value_name = "ISO")]
        rear_iso: Option<PathBuf>,
        /// Only backup and restore: the built-in archive against tar+zstd and borg
        #[arg(long, conflicts_with_all = ["boot_only", "no_boot"])]
        backup_only: bool,
        /// Size of the generated backup tree, MiB of file data
        #[arg(long, value_name = "MIB", default_value_t = 1024)]
        backup_mib: u64,
        /// Keep the backup tree, archives and restored trees in target/bench/backup
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Subcommand)]
enum QemuCmd {
    /// Build the initramfs and boot it until the ready marker
    Boot,
    /// Boot the rescue system with a disk and a NIC; check udev, DHCP,
    /// static network, bond/bridge/VLAN, modprobe and mkrescue over SSH
    Runtime {
        /// Only this scenario (dhcp, static, net=dhcp, bond, iso-backup)
        #[arg(long)]
        only: Option<String>,
    },
    /// Build the ISO, USB, PXE media and boot each (SeaBIOS and OVMF) until the marker
    Media {
        /// Only this boot (iso-cdrom-bios, iso-cdrom-uefi, iso-disk-bios,
        /// iso-cdrom-uefi-secureboot, usb-bios, usb-uefi, pxe-bios, pxe-uefi,
        /// pxe-ipxe-bios)
        #[arg(long)]
        only: Option<String>,
    },
    /// Build layouts on blank disks in a VM, recover them, compare
    Layout {
        /// Only this scenario (gpt-esp-ext4-swap, raid1-lvm, raid1-lvm-mapped, restore-md-lvm, luks-lvm-btrfs, lvm-thin, capture-fixtures)
        #[arg(long)]
        only: Option<String>,
        /// Use this mkrescue binary instead of building the release one
        #[arg(long)]
        bin: Option<PathBuf>,
    },
    /// Three hosts of one OS (roots over this machine's /usr, each its own
    /// hostname, user, addresses; one with jq) built into one PXE root: one
    /// base, small host layers; each PXE-booted and checked to be itself
    Fleet {
        /// Then copy the built hosts up to N hosts (own names and MACs) and
        /// report the tree's size (BENCHMARKS.md's fleet table)
        #[arg(long, value_name = "N")]
        simulate: Option<usize>,
        /// Build and check the tree only, boot nothing
        #[arg(long)]
        no_boot: bool,
    },
    /// The whole disaster cycle: a Debian server on RAID1 + LVM is backed
    /// up, its disks replaced by blank ones, recovered unattended, booted
    /// and compared (report in target/qemu/e2e-report.json)
    E2e {
        /// Use this mkrescue binary instead of building the release one
        #[arg(long)]
        bin: Option<PathBuf>,
        /// raid1-lvm (default), luks-lvm, dracut-sdboot (a Debian 13
        /// server with systemd-boot, dracut and btrfs subvolumes; UEFI
        /// only), bios-mbr (one MBR disk, made under BIOS: recover it with
        /// --firmware uefi) or uefi-gpt (one GPT disk, UEFI-only GRUB, made
        /// under UEFI: recover it with --firmware bios)
        #[arg(long, default_value = "raid1-lvm")]
        scenario: String,
        /// The Debian release the server is installed as: bookworm
        /// (Debian 12) or trixie (Debian 13); its directories, logs and
        /// reports are named SCENARIO-trixie
        #[arg(long, default_value = "bookworm")]
        suite: String,
        /// Start at this phase (provision, before, recover, after,
        /// degraded), reusing the disks of the earlier ones
        #[arg(long, default_value = "provision")]
        from: String,
        /// How recover boots the rescue system: iso (CD-ROM) or pxe
        /// (QEMU's TFTP)
        #[arg(long, default_value = "iso")]
        boot: String,
        /// Firmware of the recover, after and degraded VMs: bios or uefi
        /// (OVMF)
        #[arg(long, default_value = "bios")]
        firmware: String,
        /// The replacement disks differ from the server's (issue 18): a
        /// comma list of smaller (60% of the server's disk size) and nvme
        /// (on NVMe); a variant of its own (names end in -smaller-nvme)
        #[arg(long, default_value = "")]
        disks: String,
        /// The replacement machine's NIC: new-mac (another MAC than the
        /// server's; names end in -newmac) or same
        #[arg(long, default_value = "same")]
        nic: String,
    },
    /// The e2e variants' phase table (recover's phases against its
    /// estimate, recover / restore, the boots after) as Markdown, from the
    /// reports in target/qemu/e2e-report-*.json
    E2eTable {
        /// Directory of the reports (another clone's target/qemu)
        #[arg(long, default_value = "target/qemu")]
        dir: PathBuf,
    },
}

fn main() -> Result<()> {
    let x = Xtask::parse();
    util::cd_workspace_root()?;
    match x.cmd {
        Cmd::Deps => deps::install(),
        Cmd::Rescue { out } => {
            deps::install()?;
            qemu::boot::build_and_boot(&out)
        }
        Cmd::Ci { plan, all, e2e } => ci::ci(plan, ci::E2eSet::choose(all, e2e.as_deref())?),
        Cmd::Qemu {
            what: QemuCmd::Boot,
        } => {
            deps::install()?;
            qemu::boot::build_and_boot(&PathBuf::from("target/qemu/initramfs"))
        }
        Cmd::Qemu {
            what: QemuCmd::Runtime { only },
        } => {
            deps::install()?;
            qemu::runtime::run(only.as_deref())
        }
        Cmd::Qemu {
            what: QemuCmd::Media { only },
        } => {
            deps::install()?;
            qemu::media::run(only.as_deref())
        }
        Cmd::Qemu {
            what: QemuCmd::Layout { only, bin },
        } => {
            deps::install()?;
            let all: Vec<&qemu::layout::Scenario> = qemu::layout::SCENARIOS
                .iter()
                .chain(qemu::layout::EXTRA)
                .chain(std::iter::once(&qemu::layout::FIXTURES))
                .collect();
            let which: Vec<&qemu::layout::Scenario> = match only.as_deref() {
                Some(name) => {
                    let s: Vec<_> = all.into_iter().filter(|s| s.name == name).collect();
                    anyhow::ensure!(!s.is_empty(), "no layout scenario named {name}");
                    s
                }
                None => qemu::layout::SCENARIOS.iter().collect(),
            };
            qemu::layout::run(&which, bin.as_deref())
        }
        Cmd::Qemu {
            what:
                QemuCmd::E2e {
                    bin,
                    scenario,
                    suite,
                    from,
                    boot,
                    firmware,
                    disks,
                    nic,
                },
        } => {
            let variant = qemu::e2e::Variant::parse(&boot, &firmware)?.moved(&disks, &nic)?;
            let suite = qemu::e2e::Suite::parse(&suite)?;
            deps::install()?;
            qemu::e2e::run(bin.as_deref(), &scenario, suite, &from, variant)
        }
        Cmd::Qemu {
            what: QemuCmd::Fleet { simulate, no_boot },
        } => {
            deps::install()?;
            qemu::fleet::run(simulate, no_boot)
        }
        Cmd::Qemu {
            what: QemuCmd::E2eTable { dir },
        } => {
            print!(
                "{}",
                qemu::e2e::table::markdown(&qemu::e2e::table::columns(&dir)?)
            );
            Ok(())
        }
        Cmd::Dist => dist::generate(&PathBuf::from("target/dist")).map(drop),
        Cmd::Deb => deb::build().map(drop),
        Cmd::Bench {
            no_rear,
            write,
            boot_only,
            no_boot,
            rear_iso,
            backup_only,
            backup_mib,
            keep,
        } => {
            deps::install()?;
            bench::run(&bench::Opts {
                with_rear: !no_rear,
                write,
                boot_only,
                no_boot,
                rear_iso,
                backup_only,
                backup: bench::backup::Opts {
                    mib: backup_mib,
                    keep,
                },
            })
        }
    }
}
