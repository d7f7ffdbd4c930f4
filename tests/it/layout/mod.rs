//! The disk layout: capture from real tool output, and the saved file.

mod capture;
mod file;
mod probe;
mod unsupported;
