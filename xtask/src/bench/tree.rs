//! The backup benchmark's tree: generated deterministically from a seed
//! and shaped like a server ([`generate`]), and what a restored copy must
//! match ([`summarize`], [`same`]).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// What a restored tree must match, per relative path.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Entry {
    kind: char,
    size: u64,
    mode: u32,
    uid: u32,
    mtime: i64,
}

pub struct Summary {
    entries: BTreeMap<PathBuf, Entry>,
    /// Regular files, each inode once (relative paths).
    pub unique_files: Vec<PathBuf>,
    pub data_bytes: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Names beyond an inode's first.
    pub hardlinks: u64,
}

pub fn summarize(root: &Path) -> Result<Summary> {
    let mut s = Summary {
        entries: BTreeMap::new(),
        unique_files: Vec::new(),
        data_bytes: 0,
        files: 0,
        dirs: 0,
        symlinks: 0,
        hardlinks: 0,
    };
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).with_context(|| format!("{}", p.display()))?;
        let rel = p.strip_prefix(root)?.to_path_buf();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            s.dirs += 1;
            let mut kids: Vec<PathBuf> = std::fs::read_dir(&p)?
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()?;
            kids.sort();
            stack.extend(kids.into_iter().rev());
            'd'
        } else if ft.is_symlink() {
            s.symlinks += 1;
            'l'
        } else if ft.is_file() {
            if seen.insert((m.dev(), m.ino())) {
                s.files += 1;
                s.data_bytes += m.len();
                s.unique_files.push(rel.clone());
            } else {
                s.hardlinks += 1;
            }
            'f'
        } else {
            '?'
        };
        s.entries.insert(
            rel,
            Entry {
                kind,
                size: if kind == 'f' { m.len() } else { 0 },
                mode: if kind == 'l' { 0 } else { m.mode() & 0o7777 },
                uid: m.uid(),
                mtime: if kind == 'f' { m.mtime() } else { 0 },
            },
        );
    }
    Ok(s)
}

/// The first difference between the source and a restored tree.
pub fn same(want: &Summary, got: &Summary) -> std::result::Result<(), String> {
    for (p, w) in &want.entries {
        match got.entries.get(p) {
            None => return Err(format!("{} missing", p.display())),
            Some(g) if g != w => return Err(format!("{}: {g:?}, expected {w:?}", p.display())),
            _ => {}
        }
    }
    if let Some(p) = got.entries.keys().find(|p| !want.entries.contains_key(*p)) {
        return Err(format!("{} is extra", p.display()));
    }
    if got.hardlinks != want.hardlinks {
        return Err(format!(
            "{} hard links, expected {}",
            got.hardlinks, want.hardlinks
        ));
    }
    Ok(())
}

/// SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014): small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// Incompressible bytes.
    fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        let start = out.len();
        out.resize(start + n, 0);
        for c in out[start..].chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// Text: lines of words from a fixed vocabulary with a skewed (Zipf-like)
/// choice, numbers and punctuation, so zstd finds about the ratio it finds
/// in documentation and logs (3-4×), not the 100× of repeated lines.
struct Text {
    words: Vec<Vec<u8>>,
}

impl Text {
    fn new(rng: &mut Rng) -> Text {
        let words = (0..4096)
            .map(|_| {
                let n = rng.range(2, 11) as usize;
                (0..n).map(|_| b'a' + rng.below(26) as u8).collect()
            })
            .collect();
        Text { words }
    }

    /// About `n` bytes of text (whole lines; at least one).
    fn fill(&self, rng: &mut Rng, out: &mut Vec<u8>, n: usize, log: bool) {
        let end = out.len() + n;
        let mut clock = rng.range(1_600_000_000, 1_700_000_000);
        while out.len() < end {
            if log {
                clock += rng.below(5);
                out.extend_from_slice(
                    format!(
                        "{clock}.{:03} srv{}[{}]: ",
                        rng.below(1000),
                        rng.below(8),
                        rng.range(100, 40000)
                    )
                    .as_bytes(),
                );
            }
            let k = rng.range(4, 14);
            for i in 0..k {
                let u = rng.below(1 << 16);
                // u² / 2^20: index 0..4096, small ones far more often.
                let w = &self.words[((u * u) >> 20) as usize];
                out.extend_from_slice(w);
                match rng.below(16) {
                    0 => out.extend_from_slice(format!(" {}", rng.below(100_000)).as_bytes()),
                    1 if i + 1 < k => out.extend_from_slice(b","),
                    _ => {}
                }
                out.push(if i + 1 == k { b'\n' } else { b' ' });
            }
        }
    }
}

/// Binary-like bytes (libraries, executables): runs of zeros, runs of
/// small values (tables, code with a skewed opcode mix) and random runs;
/// zstd -3 shrinks it about 1.5-2×.
fn binary(rng: &mut Rng, out: &mut Vec<u8>, n: usize) {
    let end = out.len() + n;
    while out.len() < end {
        let run = (rng.range(16, 512) as usize).min(end - out.len());
        match rng.below(10) {
            0..=2 => out.resize(out.len() + run, 0),
            3 | 4 => rng.fill(out, run),
            _ => {
                let base = rng.below(256) as u8;
                for _ in 0..run {
                    let v = rng.next();
                    out.push(base.wrapping_add((v & 0x0f) as u8 & (v >> 8) as u8));
                }
            }
        }
    }
}

/// What [`generate`] made.
pub struct Shape {
    pub files: u64,
    pub data_bytes: u64,
    pub hardlinks: u64,
    pub symlinks: u64,
    pub dirs: u64,
    /// One line per part of the tree.
    pub parts: Vec<String>,
}

/// Writes the tree: about `mib` MiB of file data, the same bytes, names,
/// modes, owners and times for the same seed.
pub fn generate(root: &Path, mib: u64, seed: u64) -> Result<Shape> {
    let mut rng = Rng(seed);
    let text = Text::new(&mut rng);
    // Every count scales with the size; the proportions stay.
    let sc = |n: u64| ((n * mib).div_ceil(1024)).max(1);
    let mut shape = Shape {
        files: 0,
        data_bytes: 0,
        hardlinks: 0,
        symlinks: 0,
        dirs: 0,
        parts: Vec::new(),
    };
    let mut buf = Vec::with_capacity(8 << 20);
    let mut made: Vec<PathBuf> = Vec::new();
    let mkdir = |p: &Path, shape: &mut Shape| -> Result<()> {
        if !p.exists() {
            std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
            shape.dirs += 1;
        }
        Ok(())
    };
    let put = |path: &Path,
               data: &[u8],
               mode: u32,
               uid: u32,
               rng: &mut Rng,
               shape: &mut Shape,
               made: &mut Vec<PathBuf>|
     -> Result<()> {
        std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        if uid != 0 {
            std::os::unix::fs::chown(path, Some(uid), Some(uid))?;
        }
        let t = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(rng.range(1_500_000_000, 1_760_000_000));
        std::fs::File::options()
            .write(true)
            .open(path)?
            .set_modified(t)?;
        shape.files += 1;
        shape.data_bytes += data.len() as u64;
        made.push(path.to_path_buf());
        Ok(())
    };
    let part = |shape: &mut Shape, what: String, before: (u64, u64)| {
        shape.parts.push(format!(
            "{what}: {} files, {:.0} MiB",
            shape.files - before.0,
            (shape.data_bytes - before.1) as f64 / 1048576.0
        ));
    };

    // etc: many small config-like files in nested directories.
    let b = (shape.files, shape.data_bytes);
    for i in 0..sc(6000) {
        let d = root.join(format!("etc/conf{}/sub{}", i % 300, i % 7));
        mkdir(&d, &mut shape)?;
        buf.clear();
        let n = rng.range(100, 6000) as usize;
        text.fill(&mut rng, &mut buf, n, false);
        let mode = if i % 10 == 0 { 0o600 } else { 0o644 };
        put(
            &d.join(format!("file{i}.conf")),
            &buf,
            mode,
            0,
            &mut rng,
            &mut shape,
            &mut made,
        )?;
    }
    part(&mut shape, "config-like text, 100 B-6 KiB".into(), b);
    // Source code: small text files, owned by a user.
    let b = (shape.files, shape.data_bytes);
    for i in 0..sc(8000) {
        let d = root.join(format!("home/dev/src/proj{}/mod{}", i % 40, i % 25));
        mkdir(&d, &mut shape)?;
        buf.clear();
        let n = rng.range(1 << 10, 32 << 10) as usize;
        text.fill(&mut rng, &mut buf, n, false);
        put(
            &d.join(format!("unit{i}.rs")),
            &buf,
            0o644,
            1000,
            &mut rng,
            &mut shape,
            &mut made,
        )?;
    }
    part(&mut shape, "source-like text, 1-32 KiB".into(), b);
    // Documentation: text, 4-256 KiB.
    let b = (shape.files, shape.data_bytes);
    for i in 0..sc(1500) {
        let d = root.join(format!("usr/share/doc/pkg{}", i % 200));
        mkdir(&d, &mut shape)?;
        buf.clear();
        let n = rng.range(4 << 10, 256 << 10) as usize;
        text.fill(&mut rng, &mut buf, n, false);
        put(
            &d.join(format!("doc{i}.txt")),
            &buf,
            0o644,
            0,
            &mut rng,
            &mut shape,
            &mut made,
        )?;
    }
    part(&mut shape, "documentation text, 4-256 KiB".into(), b);
    // Libraries: binary-like, 16 KiB-1 MiB, each with a soname symlink.
    let b = (shape.files, shape.data_bytes);
    let lib = root.join("usr/lib/x86_64-linux-gnu");
    mkdir(&lib, &mut shape)?;
    for i in 0..sc(400) {
        buf.clear();
        let n = rng.range(16 << 10, 1 << 20) as usize;
        binary(&mut rng, &mut buf, n);
        let name = format!("libbench{i}.so.1.0");
        put(
            &lib.join(&name),
            &buf,
            0o755,
            0,
            &mut rng,
            &mut shape,
            &mut made,
        )?;
        std::os::unix::fs::symlink(&name, lib.join(format!("libbench{i}.so.1")))?;
        shape.symlinks += 1;
    }
    part(&mut shape, "library-like binaries, 16 KiB-1 MiB".into(), b);
    // Media: incompressible, 1-6 MiB.
    let b = (shape.files, shape.data_bytes);
    let media = root.join("home/user/photos");
    mkdir(&media, &mut shape)?;
    for i in 0..sc(60) {
        buf.clear();
        let n = rng.range(1 << 20, 6 << 20) as usize;
        rng.fill(&mut buf, n);
        put(
            &media.join(format!("img{i}.jpg")),
            &buf,
            0o640,
            1001,
            &mut rng,
            &mut shape,
            &mut made,
        )?;
    }
    part(&mut shape, "incompressible media, 1-6 MiB".into(), b);
    // Big files, written in 8 MiB pieces: a database-like mix of text
    // pages and random pages, a random blob, a log.
    let b = (shape.files, shape.data_bytes);
    let db = root.join("var/lib/db");
    mkdir(&db, &mut shape)?;
    mkdir(&root.join("var/backups"), &mut shape)?;
    mkdir(&root.join("var/log"), &mut shape)?;
    let big = [
        ("var/lib/db/big.db", sc(160), 0u8),
        ("var/backups/blob.bin", sc(96), 1),
        ("var/log/syslog", sc(40), 2),
    ];
    for (name, size_mib, kind) in big {
        let path = root.join(name);
        let mut f = std::fs::File::create(&path)?;
        let mut left = size_mib << 20;
        while left > 0 {
            let piece = left.min(8 << 20) as usize;
            left -= piece as u64;
            buf.clear();
            match kind {
                0 => {
                    // 16 KiB pages, half text, half random.
                    while buf.len() < 8 << 20 {
                        if rng.below(2) == 0 {
                            let end = buf.len() + (16 << 10);
                            text.fill(&mut rng, &mut buf, 16 << 10, false);
                            buf.truncate(end);
                        } else {
                            rng.fill(&mut buf, 16 << 10);
                        }
                    }
                }
                1 => rng.fill(&mut buf, 8 << 20),
                _ => text.fill(&mut rng, &mut buf, 8 << 20, true),
            }
            buf.truncate(piece);
            std::io::Write::write_all(&mut f, &buf)?;
            shape.data_bytes += buf.len() as u64;
        }
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_750_000_000))?;
        shape.files += 1;
    }
    part(
        &mut shape,
        "big files (database-like mix, random blob, log)".into(),
        b,
    );
    // Hard links: some files get a second name in another directory.
    let links = root.join("srv/links");
    mkdir(&links, &mut shape)?;
    for i in 0..sc(300) {
        let from = &made[rng.below(made.len() as u64) as usize];
        let to = links.join(format!("link{i}"));
        if !to.exists() {
            std::fs::hard_link(from, &to)?;
            shape.hardlinks += 1;
        }
    }
    // Symlinks: relative into the tree, absolute, dangling.
    let alt = root.join("etc/alternatives");
    mkdir(&alt, &mut shape)?;
    for i in 0..sc(1100) {
        let target = match i % 3 {
            0 => {
                let t = &made[rng.below(made.len() as u64) as usize];
                format!("../../{}", t.strip_prefix(root)?.display())
            }
            1 => format!("/usr/bin/tool{}", rng.below(500)),
            _ => format!("missing{i}"),
        };
        std::os::unix::fs::symlink(target, alt.join(format!("alt{i}")))?;
        shape.symlinks += 1;
    }
    // A few empty directories (mount points, spools).
    for d in ["mnt/data", "var/spool/empty", "srv/www"] {
        mkdir(&root.join(d), &mut shape)?;
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_tree_is_the_same_for_the_same_seed() {
        let t = tempfile_dir("a");
        let u = tempfile_dir("b");
        let a = generate(&t, 8, 7).unwrap();
        let b = generate(&u, 8, 7).unwrap();
        assert_eq!(a.data_bytes, b.data_bytes);
        let (sa, sb) = (summarize(&t).unwrap(), summarize(&u).unwrap());
        assert!(same(&sa, &sb).is_ok());
        assert!(sa.hardlinks > 0 && sa.symlinks > 0 && sa.files > 100);
        for f in sa.unique_files.iter().take(50) {
            assert_eq!(
                std::fs::read(t.join(f)).unwrap(),
                std::fs::read(u.join(f)).unwrap()
            );
        }
        // Another seed, other bytes.
        let v = tempfile_dir("c");
        generate(&v, 8, 8).unwrap();
        let sv = summarize(&v).unwrap();
        assert!(same(&sa, &sv).is_err());
        for d in [t, u, v] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("xtask-bench-backup-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn text_compresses_like_text_and_noise_does_not() {
        let mut rng = Rng(1);
        let t = Text::new(&mut rng);
        let mut v = Vec::new();
        t.fill(&mut rng, &mut v, 1 << 20, false);
        let z = zstd_ratio(&v);
        assert!((2.0..8.0).contains(&z), "text ratio {z}");
        let mut n = Vec::new();
        rng.fill(&mut n, 1 << 20);
        assert!(zstd_ratio(&n) < 1.01);
        let mut b = Vec::new();
        binary(&mut rng, &mut b, 1 << 20);
        let z = zstd_ratio(&b);
        assert!((1.3..4.0).contains(&z), "binary ratio {z}");
    }

    fn zstd_ratio(v: &[u8]) -> f64 {
        let mut c = Command::new("zstd")
            .args(["-3", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut i = c.stdin.take().unwrap();
        let data = v.to_vec();
        let w = std::thread::spawn(move || std::io::Write::write_all(&mut i, &data));
        let out = c.wait_with_output().unwrap();
        w.join().unwrap().unwrap();
        v.len() as f64 / out.stdout.len() as f64
    }
}
