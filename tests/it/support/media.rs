//! Helpers shared by the media tests.

use std::process::Output;

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
