//! The plan as text: each step as one shell command, and the whole plan as
//! the script `recover --dry-run` prints.

use std::fmt::Write;

use super::{Plan, Step};
pub use crate::sys::shell::quote;

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
        for c in &self.sizes {
            let _ = writeln!(out, "# size {c}");
        }
        out.push_str("set -e\n");
        for (i, st) in self.steps.iter().enumerate() {
            let _ = writeln!(out, "\n# {}. {}", i + 1, st.what);
            let _ = writeln!(out, "{}", st.shell());
        }
        out
    }
}
