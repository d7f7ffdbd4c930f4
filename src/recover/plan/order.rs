//! Ordering: the layers' steps sorted by what each needs and makes, the
//! layers' order kept where the graph allows; a need nothing makes refuses
//! the plan before step one.

use std::collections::BTreeSet;

use anyhow::Result;

use super::{Plan, Step};
use crate::error::{Code, fail};

/// Orders the steps by what they need: each pass takes, in the given
/// order, the steps whose needs are met. What can never be met is named.
pub(super) fn order(mut pending: Vec<Step>) -> Result<Plan> {
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
    Ok(Plan {
        steps: out,
        sizes: Vec::new(),
    })
}
