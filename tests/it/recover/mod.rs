//! `mkrescue recover`: disk mapping, the plan and its executor.

mod executor;
mod mapping;
mod plan;
