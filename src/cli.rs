//! Command-line types (clap derive). Parsing only: `src/commands/` turns
//! these into the configuration and plain option structs; nothing below
//! the command layer sees them.

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{BackupMethod, Compression, ModulePolicy, Output};

/// Exit codes, also printed at the end of `--help` and in the man page.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure at run time (I/O error, a tool failed, a USB device refused: mounted, in use, not
     removable; a backup target missing or not mounted)
  2  wrong command line (also a bad --target/--from URL)
  3  invalid configuration file (unknown key, wrong type, bad value)
  4  this machine lacks something the command needs (tool, kernel modules, compression support,
     a disk large enough to recover onto)
  5  a corrupt or unusable input file (e.g. a truncated ELF binary, a layout without /)
  6  the requested feature is not available in this version yet (recover of a layout holding
     storage it cannot recreate: ZFS, bcache, multipath, ...; `layout show` lists it)
  7  no saved layout (layout check|show, recover): run `mkrescue layout save`
  8  a disk or file system could not be probed (layout save|check)
  9  drill: the host was not recovered in the VM (recover failed or the recovered system did
     not boot)
`layout check` exits 0 when the layout is unchanged, 1 when it changed, 7 or 8.";

/// `ValueEnum` for the configuration's enums, here so that `config.rs`
/// needs no clap: each variant's command-line name (the same as its name
/// in the TOML files) and help.
macro_rules! value_enum {
    ($t:ident { $($v:ident => $name:literal: $help:literal),+ $(,)? }) => {
        impl ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($t::$v),+]
            }
            fn to_possible_value(&self) -> Option<PossibleValue> {
                let (name, help) = match self {
                    $($t::$v => ($name, $help)),+
                };
                let p = PossibleValue::new(name);
                Some(if help.is_empty() { p } else { p.help(help) })
            }
        }
    };
}

value_enum!(Output {
    Initramfs => "initramfs": "kernel + initrd (DIR/vmlinuz, DIR/initrd.img)",
    Iso => "iso": "hybrid ISO for BIOS and UEFI",
    Usb => "usb": "USB disk image or device",
    Pxe => "pxe": "PXE tree for a TFTP/HTTP server",
    Obdr => "obdr": "HP One-Button Disaster Recovery tape",
});

value_enum!(ModulePolicy {
    Host => "host": "modules loaded on the host plus what its block and network devices need",
    StorageNet => "storage-net": "storage, network, filesystem and crypto drivers (works on new hardware)",
    All => "all": "every module of the kernel",
});

value_enum!(Compression {
    Zstd => "zstd": "",
    Xz => "xz": "",
    Gzip => "gzip": "",
    None => "none": "",
});

value_enum!(BackupMethod {
    Archive => "archive": "built-in archive: pax tar, zstd, sha256 manifest",
    Rsync => "rsync": "rsync -aHAX over ssh into dated snapshots",
    Borg => "borg": "the borg CLI",
});

#[derive(Debug, Parser)]
#[command(
    name = "mkrescue",
    version,
    about = "Bare-metal disaster recovery: build a bootable rescue system of this host",
    long_about = "mkrescue records this server's disk layout, backs up its files and builds a \
bootable rescue system cloned from the host (kernel, modules, tools with their libraries). \
Without a subcommand it builds the rescue system.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(flatten)]
    pub build: BuildArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Read this configuration file after /etc/mkrescue/site.toml and local.toml
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory holding site.toml and local.toml
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/etc/mkrescue",
        hide = true
    )]
    pub config_dir: PathBuf,

    /// Treat this directory as the host's `/` (tests and chroots)
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/",
        env = "MKRESCUE_ROOT",
        hide = true
    )]
    pub root: PathBuf,

    /// More output: -v lists steps, -vv every file and external command
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Machine-readable output on stdout: the report of a build, backup,
    /// restore or recover; dump, backup list, verify, layout show
    #[arg(long, global = true)]
    pub json: bool,
}

/// Options of the default command: build the rescue system.
#[derive(Debug, Args, Clone, Default, PartialEq)]
pub struct BuildArgs {
    /// What to build
    #[arg(long, value_enum, value_name = "KIND")]
    pub output: Option<Output>,

    /// initramfs, iso: the directory to write into (default build.out_dir);
    /// usb, pxe and obdr write only where their own flags say
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Kernel to put into the rescue system (default: newest in /boot with modules)
    #[arg(long, value_name = "KVER")]
    pub kernel_version: Option<String>,

    /// Which kernel modules to include
    #[arg(long, value_enum, value_name = "POLICY")]
    pub modules: Option<ModulePolicy>,

    /// Compression of the initrd
    #[arg(long, value_enum, value_name = "ALGO")]
    pub compress: Option<Compression>,

    #[command(flatten)]
    pub media: MediaArgs,
}

/// Where `--output usb|pxe|obdr` write, and how carefully.
#[derive(Debug, Args, Clone, Default, PartialEq)]
pub struct MediaArgs {
    /// usb: write to this whole disk (e.g. /dev/sdb); everything on it is erased
    #[arg(long, value_name = "DEV", conflicts_with = "image")]
    pub device: Option<PathBuf>,

    /// usb: write a disk image file instead of a device
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,

    /// usb: size of the image file (e.g. 2G, 1500M; default 2G)
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,

    /// pxe: the TFTP/HTTP root to write into
    #[arg(long, value_name = "DIR")]
    pub pxe_root: Option<PathBuf>,

    /// pxe: also write pxelinux.cfg/default and grub/grub.cfg, so any machine
    /// that PXE-boots from this server gets this host's menu
    #[arg(long, requires = "pxe_root")]
    pub pxe_default: bool,

    /// obdr: the tape drive (non-rewinding, e.g. /dev/nst0)
    #[arg(long, value_name = "DEV", conflicts_with = "tape_file")]
    pub tape: Option<PathBuf>,

    /// obdr: write the tape's records to this file instead of a drive
    #[arg(long, value_name = "PATH")]
    pub tape_file: Option<PathBuf>,

    /// usb: write a device even if it is not removable, mounted or in use
    #[arg(long)]
    pub force: bool,

    /// Write nothing: print the files the build would write (sizes where
    /// known), the devices it would erase and the tools it would call
    #[arg(long)]
    pub dry_run: bool,

    /// Test builds only: the boot menu starts the rescue shell on the serial
    /// console after 1 s and powers off when it is ready
    #[arg(long, hide = true)]
    pub test_boot_rescue: bool,

    /// iso: put the newest archive backup of this host (at backup.target) onto the ISO
    #[arg(long)]
    pub iso_backup: bool,

    /// pxe: then push the tree to the recovery server with rsync over ssh
    /// (ssh://[USER@]HOST[:PORT]/DIR; never deletes other hosts' files there)
    #[arg(long, value_name = "URL", requires = "pxe_root")]
    pub pxe_upload: Option<String>,
    /// Test builds only: the boot menu starts entry ID (e.g.
    /// `recover-auto-serial`) after 1 s and powers off when it is done
    #[arg(
        long,
        hide = true,
        value_name = "ID",
        conflicts_with = "test_boot_rescue"
    )]
    pub test_boot_entry: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective configuration and the detected host facts
    Dump(DumpArgs),
    /// Back up the files (see also backup list and backup verify)
    ///
    /// Each backup is named HOST-YYYYMMDDTHHMMSS.ffffffZ (UTC, to the
    /// microsecond; rsync snapshots: the stamp), so two started in the same
    /// second both stay. A local target must exist and be mounted: it is
    /// never created (exit 1).
    Backup(BackupArgs),
    /// Restore a backup into a directory (what recover runs)
    Restore(RestoreArgs),
    /// Check the files listed in DIR/SHA256SUMS (what every build writes)
    Verify(VerifyArgs),
    /// PID 1 of the rescue system (started by the kernel as /init)
    #[command(hide = true)]
    Init,
    /// Record, print or compare the disk layout
    Layout(LayoutArgs),
    /// Rebuild the disks from a saved layout (run inside the rescue system)
    ///
    /// Disks may differ in size from the host's. A smaller disk is used when
    /// the data fits: partitions, md arrays, LVs and the file systems made
    /// on them shrink, never below the used bytes `layout save` recorded
    /// plus a margin (max(10%, 256 MiB) and the file system's own needs);
    /// swap may shrink down to 128 MiB; what holds no recorded usage (an
    /// ESP, bios_grub, a file system that was not mounted) keeps its size.
    /// A bigger disk is used as `[recover] resize` says: "last" (default)
    /// grows the last partition, "proportional" grows everything that holds
    /// data in proportion, "none" keeps the recorded sizes. Every size that
    /// differs is shown by --dry-run (`# size partition /dev/sda3: 5.8 GiB
    /// -> 3.4 GiB`) and listed in the report. A disk too small for the data
    /// is refused before anything is written, naming both sizes (exit 4).
    Recover(RecoverArgs),
    /// Predict how long recovering this host takes, per phase (on the host,
    /// or in the rescue system before recover)
    Estimate(EstimateArgs),
    /// Recover this host into a VM from its rescue ISO, layout and backup,
    /// and boot the result: the proof that they bring it back
    ///
    /// Boots the ISO's kernel and initrd in QEMU with `mkrescue.recover=auto`
    /// on blank sparse disks shaped from the layout (same sizes and serials,
    /// NVMe where the host had NVMe), waits for recover to finish, then boots
    /// the recovered disks until a login prompt on the serial console
    /// (ttyS0: the host needs a getty there). Prints each phase with its
    /// time beside the estimate recover made beforehand, and keeps the
    /// report in /var/lib/mkrescue/drills/ (`mkrescue drill list`).
    ///
    /// Isolation: the drill never writes to the backup or to any real disk,
    /// and the VMs have no network card. Backup disks (--backup-disk) are
    /// attached copy-on-write (QEMU snapshot=on: the file or device is opened
    /// read-only, the guest's writes go to a temporary overlay); the VM's
    /// own disks are new files under --work. The first boot of the recovered
    /// disks is copy-on-write too, so --keep keeps them as recover left
    /// them. No root needed: QEMU runs as the calling user. KVM is used
    /// when /dev/kvm opens and runs a guest kernel, TCG otherwise; the
    /// report says which and why.
    Drill(DrillArgs),
    /// On a backup server: take a host's backups append-only over ssh
    ///
    /// Put it in front of the host's key in ~backup/.ssh/authorized_keys:
    ///
    ///   command="mkrescue serve --append-only /srv/backup/web1",restrict ssh-ed25519 AAAA... root@web1
    ///
    /// The host's `ssh://backup@server/srv/backup/web1` archive target then
    /// adds, lists and reads backups through it, and can never delete,
    /// truncate, overwrite or rename one, nor write outside DIR. Each backup
    /// becomes visible only once complete and checked against its manifest.
    /// Any other command asked with the key (a shell, rsync, scp, sftp) is
    /// refused. Prune on the server with `mkrescue prune DIR`.
    Serve(ServeArgs),
    /// On a backup server: delete old backups by keep_daily / keep_monthly
    ///
    /// Keeps the newest backup, the newest of each of the last keep_daily
    /// days and of each of the last keep_monthly months, per host and set
    /// of backed-up paths (the same rule as the host's own), and deletes
    /// temporary files of uploads cut off over a day ago. Incomplete
    /// backups and unreadable manifests are left alone. Prints the pruned
    /// names on stdout. Exit 0: done (also when nothing was due); 1: a file
    /// could not be deleted; 2: DIR is not a directory; 5: a manifest could
    /// not be read (that backup was left alone, the rest pruned).
    Prune(PruneArgs),
    /// On a recovery server: manage the PXE tree hosts build into
    Pxe(PxeArgs),
}

#[derive(Debug, Args, Clone)]
pub struct PxeArgs {
    #[command(subcommand)]
    pub action: PxeAction,
}

#[derive(Debug, Subcommand, Clone)]
pub enum PxeAction {
    /// Remove the bases and kernels no host menu refers to any more
    ///
    /// Bases (mkrescue/base/SHA256.img) and kernels are shared by the hosts
    /// of one OS and kernel and stay when a host moves to a new one. This
    /// reads every menu (pxelinux.cfg/*, grub/grub.cfg*,
    /// mkrescue/hosts/*/boot.ipxe), removes the bases and kernels none
    /// names and their lines of DIR/SHA256SUMS, and warns about files a
    /// menu names that are missing. One changed within the last hour is
    /// kept (a build may not have written its menus yet). Exit 0: done
    /// (also when nothing was unreferenced); 1: a file could not be read or
    /// removed; 2: DIR is not a PXE root.
    Prune {
        /// The TFTP/HTTP root the hosts' `--output pxe --pxe-root` or
        /// `--pxe-upload` write into
        #[arg(long, value_name = "DIR")]
        pxe_root: PathBuf,
        /// Print what would be removed; remove nothing
        #[arg(long)]
        dry_run: bool,
    },
}

/// `mkrescue drill`.
#[derive(Debug, Args, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DrillArgs {
    #[command(subcommand)]
    pub action: Option<DrillAction>,
    /// The rescue ISO to boot (default: mkrescue.iso in build.out_dir)
    #[arg(long, value_name = "FILE")]
    pub iso: Option<PathBuf>,
    /// The layout the disks are shaped from
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/var/lib/mkrescue/layout.json"
    )]
    pub layout: PathBuf,
    /// A disk image or block device holding the backup, attached
    /// copy-on-write (repeat for several; added to drill.backup_disks)
    #[arg(long = "backup-disk", value_name = "IMG")]
    pub backup_disks: Vec<PathBuf>,
    /// Firmware of the VMs (auto: what this host boots with, or for
    /// another host's layout UEFI when it has an ESP and no BIOS boot
    /// partition)
    #[arg(long, value_enum, default_value = "auto")]
    pub firmware: DrillFirmware,
    /// Accelerator (auto: KVM when it runs a guest, else TCG)
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: DrillAccel,
    /// Where the VMs' disks and serial logs go (default drill.work, else
    /// /var/tmp/mkrescue-drill-HOST; the disks are removed at the end)
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Keep the recovered disks here as qcow2 images (and the UEFI
    /// variables), ready to run as a VM
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Format of the kept disks: qcow2, or raw (sparse files, also for
    /// `dd` onto a real disk)
    #[arg(long, value_name = "FORMAT", default_value = "qcow2", value_parser = ["qcow2", "raw"])]
    pub keep_format: String,
    /// Memory of the VMs (default drill.memory_mib, 2048)
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u32>,
    /// Seconds the rescue boot and recover may take
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub recover_timeout: u64,
    /// Seconds the recovered system may take to show its login prompt
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub boot_timeout: u64,
    /// The controller of the blank disks (auto: as the layout records them,
    /// NVMe for /dev/nvme*, virtio otherwise); nvme or virtio proves the
    /// rescue image recovers onto a machine with that controller
    #[arg(long, value_enum, default_value = "auto")]
    pub controller: DrillController,
    /// For tests of the drill: a shell command run between recover and the
    /// first boot, with the recovered disk images as arguments
    #[arg(long, value_name = "CMD", hide = true)]
    pub test_hook: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrillController {
    Auto,
    Virtio,
    Nvme,
}

#[derive(Debug, Subcommand, Clone)]
pub enum DrillAction {
    /// Print the drills kept in /var/lib/mkrescue/drills, oldest first
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrillFirmware {
    Auto,
    Bios,
    Uefi,
}

/// `recover --firmware`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecoverFirmware {
    /// What the rescue system booted with
    Auto,
    Bios,
    Uefi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrillAccel {
    Auto,
    Kvm,
    Tcg,
}

/// What a recovery rebuilds and restores, for `recover` and `estimate`.
#[derive(Debug, Args, Clone, Default)]
pub struct RecoveryFrom {
    /// Layout to rebuild
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/var/lib/mkrescue/layout.json"
    )]
    pub layout: PathBuf,
    /// Where the backup is (default: the location recorded in the rescue
    /// image, else backup.target)
    #[arg(long, visible_alias = "from", value_name = "URL")]
    pub restore_from: Option<String>,
    /// Which backup to restore (its name from `backup list`; default: the newest)
    #[arg(long, value_name = "NAME")]
    pub archive: Option<String>,
    /// age secret key of an encrypted backup: a FILE, file:///PATH or
    /// http(s):// URL (default: asked on the terminal)
    #[arg(long, value_name = "FILE|URL")]
    pub identity: Option<String>,
}

/// `mkrescue estimate`.
#[derive(Debug, Args, Clone)]
pub struct EstimateArgs {
    #[command(flatten)]
    pub recovery: RecoveryFrom,
    /// A whole site: this many hosts like this one, recovered one after
    /// another, with estimate.provision_seconds and post_work_seconds each
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub hosts: u32,
    /// No read probe of the backup and no write probe of a disk: only
    /// recorded rates
    #[arg(long)]
    pub no_probe: bool,
}

#[derive(Debug, Args, Clone)]
pub struct LayoutArgs {
    #[command(subcommand)]
    pub action: LayoutAction,
}

#[derive(Debug, Subcommand, Clone)]
pub enum LayoutAction {
    /// Capture the disk layout and write it (default /var/lib/mkrescue/layout.json)
    ///
    /// Storage recover cannot recreate is named, one warning per device,
    /// and recorded under `unsupported` in the file; the save still
    /// succeeds (exit 0), and recover refuses that layout (exit 6) before
    /// it touches a disk. That is: ZFS (pool members, zvols, datasets),
    /// bcache, dm-multipath, device-mapper outside LVM and LUKS (plain
    /// dm-crypt, dm-integrity, VDO, Stratis), LVM volumes other than linear,
    /// striped, mirror, raid1 and thin (cache, writecache, VDO, raid5/6/10),
    /// md RAID with external metadata (IMSM, DDF), btrfs over several
    /// devices, iSCSI, NBD, RBD and DRBD disks, a root file system on NFS
    /// or CIFS, mounted file systems other than ext2/3/4, xfs, btrfs, vfat
    /// and swap (except on removable disks), and partition tables other
    /// than GPT and MBR. The README's "What the layout cannot record" says
    /// what supporting each would take.
    Save {
        /// Write here instead
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Save even when a disk or file system cannot be probed, recording
        /// it as unknown (else that is an error, exit 8)
        #[arg(long)]
        allow_partial: bool,
    },
    /// Print a saved layout as a tree (or the live one with --live)
    Show {
        /// Layout file to read
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Capture and show the current layout instead of a saved one
        #[arg(long)]
        live: bool,
    },
    /// Compare the current layout with the saved one: exit 0 unchanged, 1
    /// changed, 7 no saved layout, 8 a disk could not be probed
    ///
    /// With --rebuild (what the package's mkrescue-check.timer runs), a
    /// change, or no saved layout, is handled instead of reported: the
    /// rescue system is built as `mkrescue` builds it (build.output into
    /// build.out_dir), then the current layout is saved, and the
    /// differences and the build's result are mailed to backup.mail_to.
    /// Exit 0 when the build succeeded; a failed build keeps the old
    /// layout, so the next check tries again.
    Check {
        /// Layout file to compare with
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// On a change: rebuild the rescue system, save the layout and mail
        /// the differences to backup.mail_to
        #[arg(long)]
        rebuild: bool,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub recovery: RecoveryFrom,
    /// Print the plan as a shell script (with --json: as JSON) and change
    /// nothing; warns when this is not a rescue system or no backup source
    /// is known
    #[arg(long)]
    pub dry_run: bool,
    /// Map a disk of the layout to a disk of this machine (repeatable)
    #[arg(long, value_name = "SRC=DST")]
    pub map: Vec<String>,
    /// Map a NIC the rescue image recorded (name or MAC) to a NIC of this
    /// machine (name, predictable name or MAC), overriding the mapping by
    /// MAC, PCI slot and order (repeatable)
    ///
    /// Each recorded NIC goes to the NIC here with its MAC, else to the one
    /// in its PCI slot, else by order when exactly as many NICs are left on
    /// both sides. A NIC that cannot be mapped without a guess is a line in
    /// the report, never a failure: its configuration is left as it was.
    /// After the restore, the restored system's ifupdown, systemd-networkd,
    /// NetworkManager, netplan and udev-rule files that name a moved NIC are
    /// rewritten to its new MAC and to the name the restored system will
    /// give it: a name it pins to the old MAC (70-persistent-net.rules, a
    /// .link file, netplan set-name), else the kernel's with
    /// net.ifnames=0, else udev's predictable name (enp1s0). Originals go
    /// to /var/lib/mkrescue/recover-orig/ there. --dry-run prints the
    /// mapping; an unknown OLD or NEW stops recover before anything is
    /// written (exit 2).
    #[arg(long, value_name = "OLD=NEW")]
    pub map_nic: Vec<String>,
    /// The firmware this machine boots the recovered system with (default:
    /// recover.firmware, else auto: what the rescue system booted with)
    ///
    /// When it is UEFI and the layout has no ESP, each disk GRUB booted
    /// from by BIOS gets a 512 MiB EFI system partition (vfat, mounted at
    /// /boot/efi, a line in the restored /etc/fstab): from free space at
    /// the end of the disk, else by shrinking the partitions that can give
    /// room; an MBR disk stays MBR with a type 0xef partition unless all
    /// four primary slots are taken or the ESP would lie beyond 2 TiB, then
    /// it becomes GPT with its partition numbers kept. When it is BIOS and
    /// a GPT disk with an ESP has no bios_grub partition, it gets one. GRUB
    /// for that firmware is then installed whatever the host had; without
    /// its platform files in the restored system (or the rescue image)
    /// recover stops with the package to add. --dry-run shows each step.
    #[arg(long, value_enum, value_name = "auto|bios|uefi")]
    pub firmware: Option<RecoverFirmware>,
    /// Never ask: refuse when a decision is ambiguous
    #[arg(long)]
    pub unattended: bool,
    /// Only rebuild partitions, RAID, LVM, LUKS, file systems and swap
    #[arg(long)]
    pub layout_only: bool,
    /// Key file for LUKS containers (else the passphrase is asked)
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// With --dry-run: plan for the disks in FILE, the output of `lsblk
    /// --json --bytes -O` taken on the machine to recover onto, instead of
    /// this machine's disks (what sizes the plan would choose there)
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    pub lsblk: Option<PathBuf>,
    /// Where the checkpoints of finished steps are kept
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/run/mkrescue/recover-state",
        hide = true
    )]
    pub state: PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct DumpArgs {}

/// `mkrescue backup`: create a backup, or list / verify them.
#[derive(Debug, Args, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: Option<BackupAction>,

    #[command(flatten)]
    pub create: BackupCreateArgs,
}

#[derive(Debug, Args, Clone, Default)]
pub struct BackupCreateArgs {
    /// Where the backup goes (default: backup.target in the configuration)
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// How to back up (default: backup.method)
    #[arg(long, value_enum, value_name = "METHOD")]
    pub method: Option<BackupMethod>,

    /// Print what would be done, write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// A full backup this time, even with backup.mode = "incremental" (it
    /// starts a new chain)
    #[arg(long)]
    pub full: bool,

    /// Directories to back up (default: backup.paths, i.e. /)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Subcommand, Clone)]
pub enum BackupAction {
    /// List the backups at the target
    List(BackupListArgs),
    /// Re-read a backup and check every file's sha256 (and XXH3-128) against its manifest
    Verify(BackupVerifyArgs),
}

#[derive(Debug, Args, Clone)]
pub struct BackupListArgs {
    /// Where the backups are (default: backup.target)
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// How the backups were made (default: backup.method)
    #[arg(long, value_enum, value_name = "METHOD")]
    pub method: Option<BackupMethod>,
}

#[derive(Debug, Args, Clone)]
pub struct BackupVerifyArgs {
    /// Where the backups are (default: backup.target)
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// Which backup (its name from `backup list`, or HOST-STAMP of an
    /// incremental; default: the newest); an incremental's whole chain is
    /// checked
    #[arg(long, value_name = "NAME")]
    pub archive: Option<String>,

    /// age secret key of an encrypted backup: a FILE, file:///PATH or
    /// http(s):// URL (default: asked on the terminal)
    #[arg(long, value_name = "FILE|URL")]
    pub identity: Option<String>,

    /// How the backups were made (default: backup.method)
    #[arg(long, value_enum, value_name = "METHOD")]
    pub method: Option<BackupMethod>,
}

/// `mkrescue restore --to DIR`.
#[derive(Debug, Args, Clone)]
pub struct RestoreArgs {
    /// Directory to restore into (the mounted target system in recover)
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,

    /// Where the backups are (default: backup.target)
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,

    /// Which backup (its name from `backup list`, or HOST-STAMP of an
    /// incremental; default: the newest); an incremental is restored with
    /// its chain, into exactly its tree
    #[arg(long, value_name = "NAME")]
    pub archive: Option<String>,

    /// age secret key of an encrypted backup: a FILE, file:///PATH or
    /// http(s):// URL (default: asked on the terminal)
    #[arg(long, value_name = "FILE|URL")]
    pub identity: Option<String>,

    /// How the backup was made (default: backup.method)
    #[arg(long, value_enum, value_name = "METHOD")]
    pub method: Option<BackupMethod>,
}

#[derive(Debug, Args, Clone)]
pub struct VerifyArgs {
    /// Output directory holding SHA256SUMS
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `mkrescue serve --append-only DIR`.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Refuse every delete, rename and overwrite (required: serve is only
    /// ever append-only; the flag says so in authorized_keys)
    #[arg(long, required = true)]
    pub append_only: bool,

    /// The directory this key's backups go into (must exist)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `mkrescue prune DIR`.
#[derive(Debug, Args, Clone)]
pub struct PruneArgs {
    /// The backup directory of one host (the DIR of its `mkrescue serve`)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Keep the newest backup of each of the last N days (default:
    /// backup.keep_daily, 7)
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<usize>,

    /// Keep the newest backup of each of the last N months (default:
    /// backup.keep_monthly, 12)
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<usize>,

    /// Print what would be deleted; delete nothing
    #[arg(long)]
    pub dry_run: bool,
}
