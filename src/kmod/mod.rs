//! Kernel modules: parses the module indexes of one kernel
//! (`/lib/modules/KVER/modules.{dep,alias,softdep,builtin}`), selects modules
//! by policy with their dependencies and softdeps, and finds the firmware
//! they name. Hands on a [`Selection`] of host paths.

mod glob;

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::config::ModulePolicy;

/// What the host's hardware needs, read from /proc and /sys.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostModules {
    /// Names of loaded modules (/proc/modules).
    pub loaded: Vec<String>,
    /// modalias strings of block and network devices and their parents.
    pub modaliases: Vec<String>,
}

impl HostModules {
    /// Reads `root/proc/modules` and the modalias files under `root/sys`.
    pub fn detect(root: &Path) -> Result<Self> {
        let _ = root;
        todo!("kmod::HostModules::detect")
    }
}

/// The modules and firmware chosen for the image.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Selection {
    /// Absolute host paths of the chosen module files (.ko, .ko.xz, .ko.zst).
    pub modules: Vec<PathBuf>,
    /// The kernel's module index files (modules.dep, .bin, ...) to copy so
    /// that modprobe works in the rescue system.
    pub index_files: Vec<PathBuf>,
    /// Absolute host paths of firmware files named by chosen modules.
    pub firmware: Vec<PathBuf>,
    /// Firmware named by a chosen module but not present on the host.
    pub firmware_missing: Vec<String>,
}

/// The module indexes of one kernel.
#[derive(Debug)]
pub struct ModuleIndex {
    dir: PathBuf,
}

impl ModuleIndex {
    /// Loads `modules_dir` (`/lib/modules/KVER`).
    pub fn load(modules_dir: &Path) -> Result<Self> {
        Ok(ModuleIndex {
            dir: modules_dir.to_path_buf(),
        })
    }

    /// Chooses modules by `policy`, plus `extra` by name, each with its
    /// dependencies and softdeps; with `firmware`, looks up the firmware
    /// they name under `firmware_dirs`.
    pub fn select(
        &self,
        policy: ModulePolicy,
        host: &HostModules,
        extra: &[String],
        firmware_dirs: &[PathBuf],
    ) -> Result<Selection> {
        let _ = (&self.dir, policy, host, extra, firmware_dirs);
        todo!("kmod::ModuleIndex::select")
    }
}
