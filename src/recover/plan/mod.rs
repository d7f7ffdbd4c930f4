//! The plan: the layout turned into ordered steps, each one exact command.
//!
//! Every step says which devices it needs and which it makes (a partition
//! needs its disk's table, an md array its members, a PV its device, a VG
//! its PVs, an LV its VG, a file system its device); steps are ordered by
//! that graph, keeping the layout's order where the graph allows, and the
//! plan is refused before step one when something can never be made.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use anyhow::Result;

use crate::error::{Code, fail};
use crate::layout::{Layout, LvKind, Table, part_path};

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

/// Options that shape the plan.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// udevd runs: no need to tell device-mapper to make its own nodes.
    pub udev: bool,
    /// Key file for `cryptsetup` (else `--key-file -` reads the terminal).
    pub key_file: Option<String>,
    /// Scratch directory for LVM metadata and mount points.
    pub work_dir: String,
    /// Size in bytes of each target disk; a target bigger than its source
    /// disk gets its last partition grown to the end when `grow` is set.
    pub target_sizes: BTreeMap<String, u64>,
    pub grow: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// The number of the partition to grow onto a bigger target: the one that
/// ends last, when the target has room beyond the source disk's size. A
/// logical partition of an MBR extended partition is never grown (its
/// container would have to grow first).
fn grown_partition(d: &crate::layout::Disk, target_size: Option<u64>, grow: bool) -> Option<u32> {
    let target_size = target_size?;
    if !grow || target_size <= d.size {
        return None;
    }
    let last = d.partitions.iter().max_by_key(|p| p.start + p.size)?;
    let extended = ["05", "0f", "85"];
    if d.table == Table::Msdos && (last.number > 4 || extended.contains(&last.type_.as_str())) {
        return None;
    }
    Some(last.number)
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

fn s(x: impl Into<String>) -> String {
    x.into()
}

/// Source device path → target device path, for the mapped disks and their
/// partitions (md arrays, LVM and LUKS mappings keep their names).
pub fn device_map(layout: &Layout, map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut dev = BTreeMap::new();
    for d in &layout.disks {
        if let Some(t) = map.get(&d.path) {
            dev.insert(d.path.clone(), t.clone());
            for p in &d.partitions {
                dev.insert(p.path.clone(), part_path(t, p.number));
            }
        }
    }
    dev
}

/// Builds the plan for `layout` onto the mapped disks (source → target).
pub fn plan(layout: &Layout, map: &BTreeMap<String, String>, opt: &Options) -> Result<Plan> {
    let dev = device_map(layout, map);
    let name = |p: &str| dev.get(p).cloned().unwrap_or_else(|| p.to_string());
    let lvm_env: Vec<(String, String)> = if opt.udev {
        Vec::new()
    } else {
        // No udevd in the rescue system: device-mapper makes its nodes
        // itself (lvm2 WHATS_NEW 2.02.99: DM_DISABLE_UDEV).
        vec![(s("DM_DISABLE_UDEV"), s("1"))]
    };
    let mut steps: Vec<Step> = Vec::new();

    for d in &layout.disks {
        let Some(t) = map.get(&d.path) else { continue };
        steps.push(Step {
            id: format!("wipe {t}"),
            what: format!("erase signatures on {t} (was {})", d.path),
            env: vec![],
            argv: vec![s("wipefs"), s("--all"), s("--force"), t.clone()],
            stdin: None,
            needs: vec![],
            makes: vec![format!("blank:{t}")],
        });
        if d.table == Table::None {
            steps.last_mut().expect("just pushed").makes.push(t.clone());
            continue;
        }
        // sfdisk(8) script: exact starts and sizes in sectors, the table's
        // and each partition's GUID, names and attributes.
        let mut script = String::new();
        let _ = writeln!(
            script,
            "label: {}",
            if d.table == Table::Gpt { "gpt" } else { "dos" }
        );
        if let Some(id) = &d.disk_id {
            let _ = writeln!(script, "label-id: {id}");
        }
        let _ = writeln!(script, "unit: sectors");
        if d.logical_sector_size != 512 {
            let _ = writeln!(script, "sector-size: {}", d.logical_sector_size);
        }
        let mut makes = vec![t.clone()];
        let grown = grown_partition(d, opt.target_sizes.get(t).copied(), opt.grow);
        for p in &d.partitions {
            let node = part_path(t, p.number);
            let mut fields = vec![format!("start={}", p.start)];
            if Some(p.number) != grown {
                fields.push(format!("size={}", p.size));
            }
            // Without size= sfdisk(8) gives the partition all the space up to
            // the next one or the end of the disk (before the backup GPT).
            fields.push(format!("type={}", p.type_));
            if let Some(u) = &p.uuid {
                fields.push(format!("uuid={u}"));
            }
            if let Some(n) = &p.name {
                fields.push(format!("name=\"{}\"", n.replace('"', "")));
            }
            if let Some(a) = &p.attrs {
                fields.push(format!("attrs=\"{a}\""));
            }
            if d.table == Table::Msdos && p.flags.contains(&crate::layout::Flag::Boot) {
                fields.push(s("bootable"));
            }
            let _ = writeln!(script, "{node} : {}", fields.join(", "));
            makes.push(node);
        }
        let what = match grown {
            Some(n) => format!(
                "partition table of {} on {t} (partition {n} grown to the end of the bigger disk)",
                d.path
            ),
            None => format!("partition table of {} on {t}", d.path),
        };
        steps.push(Step {
            id: format!("partition {t}"),
            what,
            env: vec![],
            argv: vec![
                s("sfdisk"),
                s("--quiet"),
                s("--wipe"),
                s("always"),
                t.clone(),
            ],
            stdin: Some(script),
            needs: vec![format!("blank:{t}")],
            makes,
        });
    }

    for m in &layout.md {
        let members: Vec<String> = m.devices.iter().map(|d| name(d)).collect();
        let spares: Vec<String> = m.spares.iter().map(|d| name(d)).collect();
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
            argv.push(format!("--name={n}"));
        }
        if let Some(c) = m.chunk_kib {
            argv.push(format!("--chunk={c}K"));
        }
        if let Some(l) = &m.layout {
            argv.push(format!("--layout={l}"));
        }
        // The recorded size, so the array is exactly as big as on the host:
        // mdadm picks a larger data offset on a bigger member, which would
        // make the array (and the PV on it) smaller than the volumes it held.
        if let Some(k) = component_kib(&m.level, m.raid_devices, m.size) {
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
        if !spares.is_empty() {
            argv.push(format!("--spare-devices={}", spares.len()));
        }
        // mdadm creates the node itself when no udev runs.
        argv.extend(members.iter().cloned());
        argv.extend(spares.iter().cloned());
        steps.push(Step {
            id: format!("md {}", m.path),
            what: format!("{} array {} of {}", m.level, m.path, members.join(" ")),
            env: vec![],
            argv,
            stdin: None,
            needs: members.iter().chain(&spares).cloned().collect(),
            makes: vec![m.path.clone()],
        });
    }

    for x in &layout.luks {
        let d = name(&x.device);
        let key = opt.key_file.clone().unwrap_or_else(|| s("-"));
        let mut argv = vec![
            s("cryptsetup"),
            s("luksFormat"),
            s("--batch-mode"),
            format!("--type=luks{}", x.version),
            format!("--uuid={}", x.uuid),
            format!("--cipher={}", x.cipher),
            format!("--key-size={}", x.key_bits),
            format!("--pbkdf={}", x.pbkdf),
        ];
        if let Some(lb) = &x.label {
            argv.push(format!("--label={lb}"));
        }
        argv.extend([format!("--key-file={key}"), d.clone()]);
        steps.push(Step {
            id: format!("luks {d}"),
            what: format!("LUKS{} container on {d}", x.version),
            env: lvm_env.clone(),
            argv,
            stdin: None,
            needs: vec![d.clone()],
            makes: vec![format!("luks:{d}")],
        });
        steps.push(Step {
            id: format!("open {}", x.mapper),
            what: format!("open {d} as {}", x.mapper),
            env: lvm_env.clone(),
            argv: vec![
                s("cryptsetup"),
                s("open"),
                format!("--key-file={key}"),
                d.clone(),
                s(x.mapper_name()),
            ],
            stdin: None,
            needs: vec![format!("luks:{d}")],
            makes: vec![x.mapper.clone()],
        });
    }

    for pv in &layout.lvm.pvs {
        let d = name(&pv.device);
        steps.push(Step {
            id: format!("pv {d}"),
            what: format!("LVM physical volume on {d}"),
            env: lvm_env.clone(),
            argv: vec![
                s("lvm"),
                s("pvcreate"),
                s("--yes"),
                // Twice: a re-created md array or LUKS container may still
                // show the old PV label of the VG it belonged to.
                s("--force"),
                s("--force"),
                format!("--uuid={}", pv.uuid),
                // --uuid needs one of the two: the layout holds all we need.
                s("--norestorefile"),
                format!("--dataalignment={}b", pv.pe_start),
                d.clone(),
            ],
            stdin: None,
            needs: vec![d.clone()],
            makes: vec![format!("pv:{d}")],
        });
    }
    for vg in &layout.lvm.vgs {
        let pvs: Vec<String> = vg.pvs.iter().map(|p| name(p)).collect();
        let mut argv = vec![
            s("lvm"),
            s("vgcreate"),
            s("--yes"),
            format!("--physicalextentsize={}b", vg.extent_size),
            vg.name.clone(),
        ];
        argv.extend(pvs.iter().cloned());
        steps.push(Step {
            id: format!("vg {}", vg.name),
            what: format!("volume group {} on {}", vg.name, pvs.join(" ")),
            env: lvm_env.clone(),
            argv,
            stdin: None,
            needs: pvs.iter().map(|p| format!("pv:{p}")).collect(),
            makes: vec![format!("vg:{}", vg.name)],
        });
        let lvs: Vec<_> = layout.lvm.lvs.iter().filter(|l| l.vg == vg.name).collect();
        // Pools before their thin volumes.
        let mut ordered: Vec<_> = lvs
            .iter()
            .filter(|l| !matches!(l.kind, LvKind::Thin { .. }))
            .collect();
        ordered.extend(lvs.iter().filter(|l| matches!(l.kind, LvKind::Thin { .. })));
        let mut made = Vec::new();
        for lv in ordered {
            let mut argv = vec![s("lvm"), s("lvcreate"), s("--yes")];
            if !matches!(lv.kind, LvKind::Thin { .. }) {
                // mkfs follows; lvcreate refuses --zero for thin volumes.
                argv.push(s("--zero=n"));
            }
            let mut needs = vec![format!("vg:{}", vg.name)];
            match &lv.kind {
                LvKind::Linear => {
                    argv.push(format!("--size={}b", lv.size));
                }
                LvKind::Striped {
                    stripes,
                    stripe_size,
                } => argv.extend([
                    format!("--size={}b", lv.size),
                    format!("--stripes={stripes}"),
                    format!("--stripesize={}k", stripe_size / 1024),
                ]),
                LvKind::Mirror { mirrors } => argv.extend([
                    format!("--size={}b", lv.size),
                    s("--type=mirror"),
                    format!("--mirrors={}", mirrors.saturating_sub(1)),
                ]),
                LvKind::Raid1 { mirrors } => argv.extend([
                    format!("--size={}b", lv.size),
                    s("--type=raid1"),
                    format!("--mirrors={}", mirrors.saturating_sub(1)),
                ]),
                LvKind::ThinPool {
                    chunk_size,
                    metadata_size,
                } => argv.extend([
                    s("--type=thin-pool"),
                    format!("--size={}b", lv.size),
                    format!("--chunksize={}k", chunk_size / 1024),
                    format!("--poolmetadatasize={}b", metadata_size),
                    // thin_check may be absent in the rescue system; the
                    // pool is new and empty.
                    s("--config=global{thin_check_executable=\"\"}"),
                ]),
                LvKind::Thin { pool } => {
                    argv.extend([
                        format!("--virtualsize={}b", lv.size),
                        format!("--thinpool={}/{pool}", vg.name),
                        s("--config=global{thin_check_executable=\"\"}"),
                    ]);
                    needs.push(format!("lvnew:/dev/{}/{pool}", vg.name));
                }
            }
            argv.extend([format!("--name={}", lv.name), vg.name.clone()]);
            steps.push(Step {
                id: format!("lv {}", lv.path()),
                what: format!("logical volume {}", lv.path()),
                env: lvm_env.clone(),
                argv,
                stdin: None,
                needs,
                makes: vec![format!("lvnew:{}", lv.path())],
            });
            made.push(lv);
        }
        // lvcreate cannot take a VG or LV UUID: rewrite them in the VG's
        // metadata and restore it (vgcfgbackup(8), vgcfgrestore(8)).
        let file = format!("{}/{}.vg", opt.work_dir, vg.name);
        let mut sed = vec![
            s("sed"),
            s("-i"),
            // The VG's own id is the first id line of the file.
            s("-e"),
            format!(
                "0,/^\\tid = /s/^\\tid = \"[^\"]*\"/\\tid = \"{}\"/",
                vg.uuid
            ),
        ];
        for lv in &made {
            sed.extend([
                s("-e"),
                format!(
                    "/^\\tlogical_volumes {{/,/^\\t}}/{{/^\\t\\t{} {{$/,/^\\t\\t\\tid = /s/id = \"[^\"]*\"/id = \"{}\"/}}",
                    lv.name, lv.uuid
                ),
            ]);
        }
        sed.push(file.clone());
        let all_new: Vec<String> = made.iter().map(|l| format!("lvnew:{}", l.path())).collect();
        let thin = made
            .iter()
            .any(|l| matches!(l.kind, LvKind::Thin { .. } | LvKind::ThinPool { .. }));
        let vgname = &vg.name;
        let mut seq: Vec<(String, String, Vec<String>)> = vec![
            (
                format!("vgcfgbackup {vgname}"),
                format!("save the metadata of {vgname}"),
                vec![
                    s("lvm"),
                    s("vgcfgbackup"),
                    format!("--file={file}"),
                    vgname.clone(),
                ],
            ),
            (
                format!("uuids {vgname}"),
                format!("put the recorded VG and LV UUIDs into {file}"),
                sed,
            ),
            (
                format!("deactivate {vgname}"),
                format!("deactivate {vgname} for the restore"),
                vec![s("lvm"), s("vgchange"), s("--activate=n"), vgname.clone()],
            ),
        ];
        let mut restore = vec![s("lvm"), s("vgcfgrestore")];
        if thin {
            // vgcfgrestore refuses thin pools without --force; this pool was
            // created a moment ago, so its metadata matches.
            restore.push(s("--force"));
        }
        restore.extend([format!("--file={file}"), vgname.clone()]);
        seq.push((
            format!("vgcfgrestore {vgname}"),
            format!("restore {vgname} with the recorded UUIDs"),
            restore,
        ));
        seq.push((
            format!("activate {vgname}"),
            format!("activate {vgname}"),
            vec![
                s("lvm"),
                s("vgchange"),
                s("--activate=y"),
                s("--config=global{thin_check_executable=\"\"}"),
                vgname.clone(),
            ],
        ));
        let mut prev = all_new;
        prev.push(format!("vg:{vgname}"));
        for (i, (id, what, argv)) in seq.into_iter().enumerate() {
            let last = i == 4;
            let tag = format!("vgstep{i}:{vgname}");
            steps.push(Step {
                id,
                what,
                env: if argv[0] == "lvm" {
                    lvm_env.clone()
                } else {
                    Vec::new()
                },
                argv,
                stdin: None,
                needs: prev.clone(),
                makes: if last {
                    made.iter().map(|l| l.path()).collect()
                } else {
                    vec![tag.clone()]
                },
            });
            prev = vec![tag];
        }
    }

    for f in &layout.filesystems {
        let d = name(&f.device);
        let mut argv: Vec<String>;
        let uuid = f.uuid.clone();
        let label = f.label.clone();
        match f.fstype.as_str() {
            "ext2" | "ext3" | "ext4" => {
                argv = vec![format!("mkfs.{}", f.fstype), s("-F"), s("-q")];
                if let Some(u) = &uuid {
                    argv.push(format!("-U{u}"));
                }
                if let Some(lb) = &label {
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
            }
            "xfs" => {
                argv = vec![s("mkfs.xfs"), s("-f"), s("-q")];
                let mut meta = Vec::new();
                if let Some(u) = &uuid {
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
                if let Some(lb) = &label {
                    argv.push(format!("-L{lb}"));
                }
                // mkfs.xfs takes "-b size=4096" as two words.
                argv = argv
                    .into_iter()
                    .flat_map(|a| {
                        if a.starts_with('-') && a.contains(' ') {
                            let (x, y) = a.split_once(' ').expect("has a space");
                            vec![x.to_string(), y.to_string()]
                        } else {
                            vec![a]
                        }
                    })
                    .collect();
            }
            "btrfs" => {
                argv = vec![s("mkfs.btrfs"), s("-f"), s("-q")];
                if let Some(u) = &uuid {
                    argv.push(format!("--uuid={u}"));
                }
                if let Some(lb) = &label {
                    argv.push(format!("--label={lb}"));
                }
            }
            "vfat" => {
                argv = vec![s("mkfs.vfat")];
                let bits = f.vfat.as_ref().map(|v| v.fat_bits).unwrap_or(32);
                argv.push(format!("-F{bits}"));
                if let Some(u) = &uuid {
                    // vfat "UUID" is the volume id printed as XXXX-XXXX.
                    argv.push(format!("-i{}", u.replace('-', "")));
                }
                if let Some(lb) = &label {
                    argv.push(format!("-n{lb}"));
                }
            }
            "swap" => {
                argv = vec![s("mkswap")];
                if let Some(u) = &uuid {
                    argv.push(format!("--uuid={u}"));
                }
                if let Some(lb) = &label {
                    argv.push(format!("--label={lb}"));
                }
            }
            other => {
                return Err(fail(
                    Code::Input,
                    format!(
                        "{}: file system type `{other}` cannot be recreated",
                        f.device
                    ),
                ));
            }
        }
        argv.push(d.clone());
        steps.push(Step {
            id: format!("mkfs {d}"),
            what: format!("{} on {d}", f.fstype),
            env: vec![],
            argv,
            stdin: None,
            needs: vec![d.clone()],
            makes: vec![format!("fs:{d}")],
        });
        if let Some(b) = &f.btrfs
            && (!b.subvolumes.is_empty() || b.default_subvolume.is_some())
        {
            let mnt = format!(
                "{}/btrfs-{}",
                opt.work_dir,
                d.trim_start_matches("/dev/").replace('/', "-")
            );
            let mut prev = format!("fs:{d}");
            let mut push = |id: String, what: String, argv: Vec<String>, steps: &mut Vec<Step>| {
                let tag = format!("{id}:done");
                steps.push(Step {
                    id,
                    what,
                    env: vec![],
                    argv,
                    stdin: None,
                    needs: vec![prev.clone()],
                    makes: vec![tag.clone()],
                });
                prev = tag;
            };
            push(
                format!("mkdir {mnt}"),
                s("mount point for the subvolumes"),
                vec![s("mkdir"), s("-p"), mnt.clone()],
                &mut steps,
            );
            push(
                format!("mount {d}"),
                format!("mount the top level of {d}"),
                vec![
                    s("mount"),
                    s("-t"),
                    s("btrfs"),
                    s("-o"),
                    s("subvolid=5"),
                    d.clone(),
                    mnt.clone(),
                ],
                &mut steps,
            );
            for sv in &b.subvolumes {
                push(
                    format!("subvolume {d} {sv}"),
                    format!("subvolume {sv}"),
                    vec![
                        s("btrfs"),
                        s("-q"),
                        s("subvolume"),
                        s("create"),
                        format!("{mnt}/{sv}"),
                    ],
                    &mut steps,
                );
            }
            if let Some(def) = &b.default_subvolume {
                push(
                    format!("default subvolume {d}"),
                    format!("default subvolume {def}"),
                    vec![
                        s("btrfs"),
                        s("subvolume"),
                        s("set-default"),
                        format!("{mnt}/{def}"),
                    ],
                    &mut steps,
                );
            }
            push(
                format!("umount {d}"),
                format!("unmount {d}"),
                vec![s("umount"), mnt.clone()],
                &mut steps,
            );
        }
    }

    order(steps)
}

/// Orders the steps by what they need: each pass takes, in the given
/// order, the steps whose needs are met. What can never be met is named.
fn order(mut pending: Vec<Step>) -> Result<Plan> {
    let mut have: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let (ready, rest): (Vec<Step>, Vec<Step>) = pending
            .into_iter()
            .partition(|s| s.needs.iter().all(|n| have.contains(n)));
        if ready.is_empty() {
            let s = &rest[0];
            let missing: Vec<&String> = s.needs.iter().filter(|n| !have.contains(*n)).collect();
            return Err(fail(
                Code::Input,
                format!(
                    "the layout cannot be rebuilt: `{}` needs {} which nothing in the layout makes (is a disk unmapped or missing from the layout?)",
                    s.what,
                    missing
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for s in ready {
            have.extend(s.makes.iter().cloned());
            out.push(s);
        }
        pending = rest;
    }
    Ok(Plan { steps: out })
}

/// Shell quoting for the printed script.
pub fn quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

impl Step {
    /// The step as one shell command (with a here-document for stdin).
    pub fn shell(&self) -> String {
        let mut line: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(v)))
            .collect();
        line.extend(self.argv.iter().map(|a| quote(a)));
        let mut s = line.join(" ");
        if let Some(input) = &self.stdin {
            s.push_str(" <<'EOF'\n");
            s.push_str(input);
            s.push_str("EOF");
        }
        s
    }
}

impl Plan {
    /// The plan as a shell script a person can read (and run).
    pub fn script(&self, header: &str) -> String {
        let mut out = String::from("#!/bin/sh\n");
        for l in header.lines() {
            let _ = writeln!(out, "# {l}");
        }
        out.push_str("set -e\n");
        for (i, st) in self.steps.iter().enumerate() {
            let _ = writeln!(out, "\n# {}. {}", i + 1, st.what);
            let _ = writeln!(out, "{}", st.shell());
        }
        out
    }
}
