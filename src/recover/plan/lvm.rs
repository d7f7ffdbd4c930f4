//! LVM: physical volumes with their recorded UUIDs, then each volume group
//! and its logical volumes (pools before their thin volumes). lvcreate
//! cannot take a UUID, so the VG's metadata is saved, given the recorded VG
//! and LV UUIDs, and restored. VGs and LVs keep their layout names.

use super::fit::Fit;
use super::{DeviceMap, Options, Step, dm_env, s};
use crate::layout::{Layout, Lv, LvKind, Pv, Vg};

/// Keeps lvm from running thin_check, which the rescue system may lack; a
/// pool made a moment ago is empty and needs no check.
const NO_THIN_CHECK: &str = "--config=global{thin_check_executable=\"\"}";

/// Every PV first, then each VG with its LVs and its UUID restore.
pub(super) fn steps(layout: &Layout, dev: &DeviceMap, opt: &Options, fit: &Fit) -> Vec<Step> {
    let env = dm_env(opt);
    let mut steps: Vec<Step> = layout
        .lvm
        .pvs
        .iter()
        .map(|pv| pv_create(pv, dev, &env))
        .collect();
    for vg in &layout.lvm.vgs {
        steps.push(vg_create(vg, dev, &env));
        let made = creation_order(layout, vg);
        steps.extend(made.iter().map(|lv| {
            let size = fit.lvs.get(&lv.path()).copied().unwrap_or(lv.size);
            lv_create(vg, lv, size, &env)
        }));
        steps.extend(uuid_restore(vg, &made, opt, &env));
    }
    steps
}

fn pv_create(pv: &Pv, dev: &DeviceMap, env: &[(String, String)]) -> Step {
    let d = dev.target(&pv.device);
    let mut step = Step::new(
        format!("pv {d}"),
        format!("LVM physical volume on {d}"),
        vec![
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
    );
    step.env = env.to_vec();
    step.needs = vec![d.clone()];
    step.makes = vec![format!("pv:{d}")];
    step
}

fn vg_create(vg: &Vg, dev: &DeviceMap, env: &[(String, String)]) -> Step {
    let pvs: Vec<String> = vg.pvs.iter().map(|p| dev.target(p)).collect();
    let mut argv = vec![
        s("lvm"),
        s("vgcreate"),
        s("--yes"),
        format!("--physicalextentsize={}b", vg.extent_size),
        vg.name.clone(),
    ];
    argv.extend(pvs.iter().cloned());
    let mut step = Step::new(
        format!("vg {}", vg.name),
        format!("volume group {} on {}", vg.name, pvs.join(" ")),
        argv,
    );
    step.env = env.to_vec();
    step.needs = pvs.iter().map(|p| format!("pv:{p}")).collect();
    step.makes = vec![format!("vg:{}", vg.name)];
    step
}

/// The LVs of `vg` in the order lvcreate needs them: pools before their
/// thin volumes, the layout's order otherwise.
fn creation_order<'a>(layout: &'a Layout, vg: &Vg) -> Vec<&'a Lv> {
    let is_thin = |l: &Lv| matches!(l.kind, LvKind::Thin { .. });
    let lvs: Vec<&Lv> = layout.lvm.lvs.iter().filter(|l| l.vg == vg.name).collect();
    let mut ordered: Vec<&Lv> = lvs.iter().copied().filter(|l| !is_thin(l)).collect();
    ordered.extend(lvs.iter().copied().filter(|l| is_thin(l)));
    ordered
}

/// `lvcreate` of `lv` at `size` bytes (the recorded or the fitted size).
fn lv_create(vg: &Vg, lv: &Lv, size: u64, env: &[(String, String)]) -> Step {
    let mut argv = vec![s("lvm"), s("lvcreate"), s("--yes")];
    if !matches!(lv.kind, LvKind::Thin { .. }) {
        // mkfs follows; lvcreate refuses --zero for thin volumes.
        argv.push(s("--zero=n"));
    }
    let mut needs = vec![format!("vg:{}", vg.name)];
    match &lv.kind {
        LvKind::Linear => {
            argv.push(format!("--size={}b", size));
        }
        LvKind::Striped {
            stripes,
            stripe_size,
        } => argv.extend([
            format!("--size={}b", size),
            format!("--stripes={stripes}"),
            format!("--stripesize={}k", stripe_size / 1024),
        ]),
        LvKind::Mirror { mirrors } => argv.extend([
            format!("--size={}b", size),
            s("--type=mirror"),
            format!("--mirrors={}", mirrors.saturating_sub(1)),
        ]),
        LvKind::Raid1 { mirrors } => argv.extend([
            format!("--size={}b", size),
            s("--type=raid1"),
            format!("--mirrors={}", mirrors.saturating_sub(1)),
        ]),
        LvKind::ThinPool {
            chunk_size,
            metadata_size,
        } => argv.extend([
            s("--type=thin-pool"),
            format!("--size={}b", size),
            format!("--chunksize={}k", chunk_size / 1024),
            format!("--poolmetadatasize={}b", metadata_size),
            s(NO_THIN_CHECK),
        ]),
        LvKind::Thin { pool } => {
            argv.extend([
                format!("--virtualsize={}b", size),
                format!("--thinpool={}/{pool}", vg.name),
                s(NO_THIN_CHECK),
            ]);
            needs.push(format!("lvnew:/dev/{}/{pool}", vg.name));
        }
    }
    argv.extend([format!("--name={}", lv.name), vg.name.clone()]);
    let mut step = Step::new(
        format!("lv {}", lv.path()),
        format!("logical volume {}", lv.path()),
        argv,
    );
    step.env = env.to_vec();
    step.needs = needs;
    step.makes = vec![format!("lvnew:{}", lv.path())];
    step
}

/// lvcreate cannot take a VG or LV UUID: save the VG's metadata, rewrite
/// the UUIDs in it, and restore it (vgcfgbackup(8), vgcfgrestore(8)). A
/// chain of five steps; the last one makes the LVs.
fn uuid_restore(vg: &Vg, made: &[&Lv], opt: &Options, env: &[(String, String)]) -> Vec<Step> {
    let file = format!("{}/{}.vg", opt.work_dir, vg.name);
    let vgname = &vg.name;
    let thin = made
        .iter()
        .any(|l| matches!(l.kind, LvKind::Thin { .. } | LvKind::ThinPool { .. }));
    let mut restore = vec![s("lvm"), s("vgcfgrestore")];
    if thin {
        // vgcfgrestore refuses thin pools without --force; this pool was
        // created a moment ago, so its metadata matches.
        restore.push(s("--force"));
    }
    restore.extend([format!("--file={file}"), vgname.clone()]);
    let mut chain = vec![
        Step::new(
            format!("vgcfgbackup {vgname}"),
            format!("save the metadata of {vgname}"),
            vec![
                s("lvm"),
                s("vgcfgbackup"),
                format!("--file={file}"),
                vgname.clone(),
            ],
        ),
        Step::new(
            format!("uuids {vgname}"),
            format!("put the recorded VG and LV UUIDs into {file}"),
            sed_uuids(vg, made, &file),
        ),
        Step::new(
            format!("deactivate {vgname}"),
            format!("deactivate {vgname} for the restore"),
            vec![s("lvm"), s("vgchange"), s("--activate=n"), vgname.clone()],
        ),
        Step::new(
            format!("vgcfgrestore {vgname}"),
            format!("restore {vgname} with the recorded UUIDs"),
            restore,
        ),
        Step::new(
            format!("activate {vgname}"),
            format!("activate {vgname}"),
            vec![
                s("lvm"),
                s("vgchange"),
                s("--activate=y"),
                s(NO_THIN_CHECK),
                vgname.clone(),
            ],
        ),
    ];
    // Each step needs the one before; the first needs the VG and every LV
    // created in it, and the last makes the LVs under their real names.
    let mut prev: Vec<String> = made.iter().map(|l| format!("lvnew:{}", l.path())).collect();
    prev.push(format!("vg:{vgname}"));
    let last = chain.len() - 1;
    for (i, step) in chain.iter_mut().enumerate() {
        let tag = format!("vgstep{i}:{vgname}");
        if step.argv[0] == "lvm" {
            step.env = env.to_vec();
        }
        step.needs = std::mem::replace(&mut prev, vec![tag.clone()]);
        step.makes = if i == last {
            made.iter().map(|l| l.path()).collect()
        } else {
            vec![tag]
        };
    }
    chain
}

/// `sed` putting the recorded VG UUID and the UUIDs of the LVs `made` into
/// the metadata `file` vgcfgbackup wrote.
fn sed_uuids(vg: &Vg, made: &[&Lv], file: &str) -> Vec<String> {
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
    for lv in made {
        sed.extend([
            s("-e"),
            format!(
                "/^\\tlogical_volumes {{/,/^\\t}}/{{/^\\t\\t{} {{$/,/^\\t\\t\\tid = /s/id = \"[^\"]*\"/id = \"{}\"/}}",
                lv.name, lv.uuid
            ),
        ]);
    }
    sed.push(file.to_string());
    sed
}
