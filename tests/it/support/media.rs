//! Helpers shared by the media tests.

use std::process::{Command, Output};

/// `out` when the command succeeded; else a panic with its status and stderr.
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// mkrescue with no configuration, the host's modules, and the image epoch
/// of the built-in default (no `SOURCE_DATE_EPOCH` from the environment).
pub fn mkrescue(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args([
            "--config-dir",
            "/nonexistent-mkrescue-test",
            "--modules",
            "host",
        ])
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("running mkrescue")
}
