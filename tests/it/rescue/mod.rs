//! The rescue image of this machine, and what it carries for the backup
//! method.

mod borg;
mod image;
