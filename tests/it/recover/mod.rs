//! `mkrescue recover`: disk and NIC mapping, the plan and its executor,
//! the network rewrite.

mod estimate;
mod executor;
mod firmware;
mod fit;
mod initrd_patch;
mod mapping;
mod nic;
mod plan;
