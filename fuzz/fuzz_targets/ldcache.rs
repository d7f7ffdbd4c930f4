//! Our ld.so.cache reader on arbitrary bytes; every entry it returns must
//! be usable by the lookup index.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cache) = mkrescue::elf::ldcache::parse(data) {
        for e in cache.entries() {
            assert!(cache.lookup(&e.key).any(|x| x == e));
        }
    }
});
