//! `mkrescue recover`: disk mapping, the plan and its executor.

mod estimate;
mod executor;
mod mapping;
mod plan;
