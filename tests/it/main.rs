//! mkrescue's integration tests, in one binary: it links once instead of
//! once per file. A module per area of the tool, the helpers several areas
//! share in `support/`, checks over the whole repository in `tidy`.
//!
//! Many tests need root, loop devices, a kernel in /boot or Debian packages
//! (`cargo xtask deps`); each module's doc says which. One area or one test:
//! `cargo test --test it backup::`, `cargo test --test it recover::plan::`.

mod backup;
mod cli;
mod drill;
mod elf;
mod image;
mod kmod;
mod layout;
mod media;
mod package;
mod recover;
mod rescue;
mod runtime;
mod support;
mod tidy;
