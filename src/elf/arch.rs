//! Per-architecture facts the resolver needs and that no ELF file states:
//! the default library directories of glibc's ld.so, the ld.so.cache flags
//! it accepts, and what the `$LIB` and `$PLATFORM` dynamic string tokens
//! expand to. Keyed by ELF class and `e_machine`, so a 32-bit tool on a
//! 64-bit host is resolved with the 32-bit rules.

use goblin::elf::header::{EM_386, EM_AARCH64, EM_ARM, EM_PPC64, EM_RISCV, EM_S390, EM_X86_64};

use super::ldcache;

/// ELFCLASS32 / ELFCLASS64 (elf(5), `e_ident[EI_CLASS]`).
pub const ELFCLASS32: u8 = 1;
pub const ELFCLASS64: u8 = 2;

/// What ld.so of one architecture does that the ELF file does not say.
#[derive(Debug, Clone, Copy)]
pub struct Arch {
    /// The Debian multiarch triplet (`/usr/lib/<triplet>`).
    pub triplet: Option<&'static str>,
    /// The non-multiarch library directory name: `lib64` on 64-bit
    /// RPM-style systems, `lib` otherwise.
    pub libdir: &'static str,
    /// Values `$PLATFORM` (the kernel's AT_PLATFORM, which glibc on x86-64
    /// before 2.37 replaced by `haswell` or `xeon_phi` on CPUs that have those
    /// features) may take. The rescue system may boot on another CPU, so a
    /// `$PLATFORM` path element is searched with every value.
    pub platforms: &'static [&'static str],
    /// ld.so.cache `flags` values this ld.so accepts (`_dl_cache_check_flags`
    /// in glibc's `sysdeps/*/dl-cache.h`); empty means "any ELF libc6 entry".
    pub cache_flags: &'static [u32],
}

const UNKNOWN: Arch = Arch {
    triplet: None,
    libdir: "lib",
    platforms: &[],
    cache_flags: &[],
};

/// The rules for objects of `class` and `machine`.
pub fn arch(class: u8, machine: u16) -> Arch {
    use ldcache::*;
    match (class, machine) {
        (ELFCLASS64, EM_X86_64) => Arch {
            triplet: Some("x86_64-linux-gnu"),
            libdir: "lib64",
            platforms: &["x86_64", "haswell", "xeon_phi"],
            cache_flags: &[FLAG_X8664_LIB64 | FLAG_ELF_LIBC6],
        },
        // x32: 32-bit pointers on x86-64.
        (ELFCLASS32, EM_X86_64) => Arch {
            triplet: Some("x86_64-linux-gnux32"),
            libdir: "libx32",
            platforms: &["x86_64"],
            cache_flags: &[FLAG_X8664_LIBX32 | FLAG_ELF_LIBC6],
        },
        // The generic check accepts FLAG_ELF (1) and FLAG_ELF_LIBC6 (3).
        (ELFCLASS32, EM_386) => Arch {
            triplet: Some("i386-linux-gnu"),
            libdir: "lib32",
            platforms: &["i686", "i586", "i486", "i386"],
            cache_flags: &[FLAG_ELF, FLAG_ELF_LIBC6],
        },
        (ELFCLASS64, EM_AARCH64) => Arch {
            triplet: Some("aarch64-linux-gnu"),
            libdir: "lib64",
            platforms: &["aarch64"],
            cache_flags: &[FLAG_AARCH64_LIB64 | FLAG_ELF_LIBC6],
        },
        (ELFCLASS32, EM_ARM) => Arch {
            triplet: Some("arm-linux-gnueabihf"),
            libdir: "lib",
            platforms: &["v7l", "v6l", "v5l"],
            cache_flags: &[
                FLAG_ARM_LIBHF | FLAG_ELF_LIBC6,
                FLAG_ARM_LIBSF | FLAG_ELF_LIBC6,
                FLAG_ELF_LIBC6,
            ],
        },
        (ELFCLASS64, EM_PPC64) => Arch {
            triplet: Some("powerpc64le-linux-gnu"),
            libdir: "lib64",
            platforms: &["power8", "power9", "power10"],
            cache_flags: &[FLAG_POWERPC_LIB64 | FLAG_ELF_LIBC6],
        },
        (ELFCLASS64, EM_S390) => Arch {
            triplet: Some("s390x-linux-gnu"),
            libdir: "lib64",
            platforms: &["z13", "z14", "z15", "z16"],
            cache_flags: &[FLAG_S390_LIB64 | FLAG_ELF_LIBC6],
        },
        (ELFCLASS64, EM_RISCV) => Arch {
            triplet: Some("riscv64-linux-gnu"),
            libdir: "lib64",
            platforms: &["riscv64"],
            cache_flags: &[
                FLAG_RISCV_FLOAT_ABI_DOUBLE | FLAG_ELF_LIBC6,
                FLAG_RISCV_FLOAT_ABI_SOFT | FLAG_ELF_LIBC6,
            ],
        },
        _ => UNKNOWN,
    }
}

impl Arch {
    /// Whether an ld.so.cache entry with `flags` is one this ld.so would use.
    pub fn accepts_cache_flags(&self, flags: u32) -> bool {
        if self.cache_flags.is_empty() {
            flags & ldcache::FLAG_TYPE_MASK == ldcache::FLAG_ELF_LIBC6
        } else {
            self.cache_flags.contains(&flags)
        }
    }

    /// glibc's built-in search path (`ld.so --help` lists it as "system
    /// search path"): the multiarch directories on Debian, `lib64` on RPM
    /// systems, then `/lib` and `/usr/lib`. All candidates of every layout are
    /// listed; the ELF class/machine check rejects foreign libraries.
    pub fn default_dirs(&self) -> Vec<String> {
        let mut dirs = Vec::new();
        if let Some(t) = self.triplet {
            dirs.push(format!("/lib/{t}"));
            dirs.push(format!("/usr/lib/{t}"));
        }
        if self.libdir != "lib" {
            dirs.push(format!("/{}", self.libdir));
            dirs.push(format!("/usr/{}", self.libdir));
        }
        dirs.push("/lib".into());
        dirs.push("/usr/lib".into());
        dirs
    }
}
