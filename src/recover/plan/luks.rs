//! LUKS: each container formatted with its recorded UUID, cipher, key size
//! and PBKDF, then opened under its recorded `/dev/mapper` name, which is
//! the name the layers above it use.

use super::{DeviceMap, Options, Step, dm_env, s};
use crate::layout::{Layout, Luks};

/// `luksFormat` and `open` of every container, in layout order.
pub(super) fn steps(layout: &Layout, dev: &DeviceMap, opt: &Options) -> Vec<Step> {
    let mut steps = Vec::new();
    for x in &layout.luks {
        let d = dev.target(&x.device);
        let key = opt.key_file.clone().unwrap_or_else(|| s("-"));
        steps.push(format(x, &d, &key, opt));
        let mut open = Step::new(
            format!("open {}", x.mapper),
            format!("open {d} as {}", x.mapper),
            vec![
                s("cryptsetup"),
                s("open"),
                format!("--key-file={key}"),
                d.clone(),
                s(x.mapper_name()),
            ],
        );
        open.env = dm_env(opt);
        open.needs = vec![format!("luks:{d}")];
        open.makes = vec![x.mapper.clone()];
        steps.push(open);
    }
    steps
}

/// `cryptsetup luksFormat` of `x` on its new device `d`; `key` is the key
/// file (`-`: the terminal).
fn format(x: &Luks, d: &str, key: &str, opt: &Options) -> Step {
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
    argv.extend([format!("--key-file={key}"), d.to_string()]);
    let mut step = Step::new(
        format!("luks {d}"),
        format!("LUKS{} container on {d}", x.version),
        argv,
    );
    step.env = dm_env(opt);
    step.needs = vec![d.to_string()];
    step.makes = vec![format!("luks:{d}")];
    step
}
