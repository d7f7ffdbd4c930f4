//! ELF dependency resolution: which files the dynamic loader opens to run a
//! program (interpreter, DT_NEEDED libraries found through RUNPATH/RPATH,
//! ld.so.cache, ld.so.conf and the default directories), plus libraries that
//! are dlopen'ed and `#!` interpreters of scripts. Hands on a set of host
//! paths; the Manifest turns them into image entries.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

/// A library that could not be found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Missing {
    /// The DT_NEEDED name (or dlopen name).
    pub name: String,
    /// The file that needs it.
    pub needed_by: PathBuf,
}

/// Everything the inputs need at run time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Closure {
    /// Absolute paths of the inputs and of every interpreter and library
    /// they load, as the loader names them (may be symlinks: the Manifest
    /// keeps the chain). Paths are as seen from the resolver's root: with
    /// root `/tmp/sysroot`, `/lib/libc.so.6` means `/tmp/sysroot/lib/libc.so.6`.
    pub files: BTreeSet<PathBuf>,
    /// Libraries that were needed but not found anywhere.
    pub missing: Vec<Missing>,
}

/// Resolves dependencies the way glibc's ld.so does on the host.
#[derive(Debug)]
pub struct Resolver {
    root: PathBuf,
}

impl Resolver {
    /// A resolver for the system below `root` (`/` for the host): reads
    /// `etc/ld.so.cache` and `etc/ld.so.conf` there.
    pub fn new(root: &Path) -> Result<Self> {
        Ok(Resolver {
            root: root.to_path_buf(),
        })
    }

    /// The closure of `inputs` (absolute paths as seen from root). A corrupt or
    /// truncated ELF is an error naming the file (exit code 5).
    pub fn resolve(&self, inputs: &[PathBuf]) -> Result<Closure> {
        let _ = (&self.root, inputs);
        todo!("elf::Resolver::resolve")
    }
}
