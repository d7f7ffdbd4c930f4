//! mkrescue: bare-metal disaster recovery for Linux servers.
//!
//! `main.rs` only parses the command line and dispatches to [`commands`];
//! each command hands plain data down the steps of the data flow: config
//! and host facts feed the rescue plan, which fills an [`image::Manifest`],
//! streamed into a cpio archive and written out by [`output`]. The data
//! flow, the rules the layout keeps and a one-line index of every module
//! are in `ARCHITECTURE.md` at the top of the repository:
//!
//! - [`cli`], [`commands`]: the command line and one file per command
//! - [`config`], [`error`], [`exec`], [`progress`], [`sys`]: configuration,
//!   exit codes, running tools, progress bars, OS facts and syscalls
//! - [`host`], [`elf`], [`kmod`], [`image`], [`rescue`], [`output`]: the build
//! - [`init`]: PID 1 of the rescue system
//! - [`layout`], [`recover`], [`backup`]: layout, recovery, file backup
//! - [`vm`], [`drill`]: the one QEMU runner; recovering the host into a VM

#![deny(unsafe_code)]

pub mod backup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod drill;
pub mod elf;
pub mod error;
pub mod estimate;
pub mod exec;
pub mod host;
pub mod image;
pub mod init;
pub mod kmod;
pub mod layout;
pub mod output;
pub mod progress;
pub mod recover;
pub mod rescue;
pub mod sys;
pub mod vm;
