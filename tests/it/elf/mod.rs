//! The ELF reader and library resolver, on this machine's programs and on
//! sysroots built by gcc.

mod crosscheck;
mod host;
mod sysroot;
