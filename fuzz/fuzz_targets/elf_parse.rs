//! Our ELF/script reader on arbitrary bytes: any answer is fine, a panic,
//! an out-of-bounds read (ASan) or a huge allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mkrescue::elf::parse_bytes(data);
});
