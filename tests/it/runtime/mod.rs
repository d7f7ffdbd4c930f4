//! The rescue system's runtime: what the build puts in for it, and the
//! network it brings up.

mod build;
mod network;
