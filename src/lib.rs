//! mkrescue: bare-metal disaster recovery for Linux servers.
//!
//! The library holds every command; `main.rs` only parses the command line
//! and dispatches. The data flow is described in DESIGN.md: config and host
//! facts feed the rescue plan, which fills a [`image::Manifest`]; the
//! manifest is streamed into a cpio archive and written out by `output`.

#![deny(unsafe_code)]

pub mod backup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod elf;
pub mod error;
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
