//! `mkrescue backup` and `restore`: the built-in archive, borg, rsync over
//! ssh, shares, encryption, excludes, damaged input and the report mail.

mod age;
mod borg;
mod damage;
mod excludes;
mod incremental;
mod mail;
mod naming;
mod roundtrip;
mod serve;
mod share;
mod source;
mod ssh;
mod subvolumes;
