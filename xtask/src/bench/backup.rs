//! `cargo xtask bench` (alone: `--backup-only`): backup and restore
//! throughput of mkrescue's built-in `archive` method against
//! `tar -I 'zstd -T2'` and `borg create` / `borg extract`, on the same
//! generated tree of about 1 GiB, in one run; `--write` puts the table
//! into the `bench:backup` section of BENCHMARKS.md.
//!
//! The tree ([`super::tree::generate`]) is deterministic (one seed) and shaped like a
//! server: many small config-like text files, documentation and source
//! text, semi-compressible "library" binaries, incompressible media and
//! blobs, a few big files (a database-like mix, a log), nested
//! directories, hard links and symlinks. It lives under
//! `target/bench/backup` (not /tmp: it is large) and is removed at the
//! end unless `--keep`.
//!
//! Every measured command ends with a sync of what it wrote (`sync -f`,
//! syncfs(2), on the output's filesystem), so each tool pays for putting
//! its bytes on the disk; the tree and archives fit the page cache, so
//! reads are warm for everyone. Restores (and the baseline's write) go to
//! a freshly made ext4 on a loop device of a file in the bench directory,
//! made again before each one: that is where recover restores (a new
//! file system), and it keeps the measurement away from the shared disk's
//! churn (ext4 skips inodes deleted in the last minutes when it allocates
//! new ones, `recently_deleted()` in fs/ext4/ialloc.c: on a disk where
//! trees are deleted all day, creating a file cost ~200 µs of kernel time
//! here). The restore goal's baseline is defined in [`BASELINE`].

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::measure::{self, Measure, loadavg, now_utc};
use super::tree::{Shape, Summary, generate, same, summarize};

const DIR: &str = "target/bench/backup";
/// The tree's seed: change it and the tree changes, keep it and every run
/// backs up the same bytes.
const SEED: u64 = 0x6d6b_7265_7363_7565;
/// Repetitions of the archive and tar measurements (the median is kept);
/// borg, several times slower, runs once.
const RUNS: usize = 5;

/// The restore goal's yardstick, as printed with the table.
const BASELINE: &str = "The baseline is what plain `cat` reaches with the same bytes: the time to read mkrescue's archive file to /dev/null (`cat ARCHIVE > /dev/null`) plus the time to write the tree's file data back to disk as one file (`cat` of every regular file of the tree, each hard-linked file once, into one file on the freshly made restore file system, then `sync` of that file, fsync(2)); its MB/s is the tree's data bytes over the sum of the two times (median of each). Each run of the baseline follows a restore of the archive, so a change of load on the shared machine meets both. Restore goal: archive restore ≥ 80% of it. Every restore, and the baseline's write, goes to a new ext4 (`mkfs.ext4` on a loop device of a file in target/bench/backup, made again before each), as in recover.";

/// What the backup section measures.
pub struct Opts {
    /// Size of the generated tree (MiB of file data, about).
    pub mib: u64,
    /// Keep the tree, the archives and the restored trees.
    pub keep: bool,
}

/// Runs the section; returns its text for BENCHMARKS.md (heading
/// included).
pub fn run(bin: &Path, o: &Opts) -> Result<String> {
    let load = loadavg();
    let dir = PathBuf::from(DIR);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let abs = std::fs::canonicalize(&dir)?;
    check_space(&abs, o.mib)?;
    let bin = std::fs::canonicalize(bin).with_context(|| format!("{}", bin.display()))?;
    let result = measure_all(&bin, &abs, o, &load);
    if o.keep {
        eprintln!("==> kept {}", abs.display());
    } else {
        let _ = std::fs::remove_dir_all(&abs);
    }
    result
}

/// Roughly: the tree, three archives, one restored tree and the baseline
/// file at once.
fn check_space(dir: &Path, mib: u64) -> Result<()> {
    let need = (mib * 5) << 20;
    let free = crate::util::free_bytes(dir)?;
    if free < need {
        bail!(
            "{}: {} MiB free, the backup bench needs about {} MiB (pass a smaller --backup-mib)",
            dir.display(),
            free >> 20,
            need >> 20
        );
    }
    Ok(())
}

/// The file system restores go to: ext4 on a loop device of a sparse file,
/// made anew by [`Scratch::fresh`], unmounted on drop.
struct Scratch {
    img: PathBuf,
    mnt: PathBuf,
    bytes: u64,
    mounted: bool,
}

impl Scratch {
    fn new(dir: &Path, bytes: u64) -> Scratch {
        Scratch {
            img: dir.join("restore-fs.img"),
            mnt: dir.join("restore-fs"),
            bytes,
            mounted: false,
        }
    }

    /// A new, empty, mounted file system; returns its mount point.
    fn fresh(&mut self) -> Result<&Path> {
        self.unmount()?;
        let _ = std::fs::remove_file(&self.img);
        std::fs::File::create(&self.img)
            .and_then(|f| f.set_len(self.bytes))
            .with_context(|| format!("creating {}", self.img.display()))?;
        // Inode tables and journal written now (not by ext4lazyinit in
        // the background during the measurement); no discard of the file.
        quiet(
            Command::new("mkfs.ext4")
                .args([
                    "-q",
                    "-F",
                    "-E",
                    "lazy_itable_init=0,lazy_journal_init=0,nodiscard",
                ])
                .arg(&self.img),
        )?;
        std::fs::create_dir_all(&self.mnt)?;
        quiet(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&self.img)
                .arg(&self.mnt),
        )
        .context("mounting the restore file system (the backup bench needs root)")?;
        self.mounted = true;
        Ok(&self.mnt)
    }

    fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            quiet(Command::new("umount").arg(&self.mnt))?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.unmount().is_err() {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        let _ = std::fs::remove_file(&self.img);
    }
}

/// Runs a set-up command; its failure is an error with its stderr.
fn quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// What the archive and tar+zstd commands of a tree are made of.
struct Setup<'a> {
    bin: &'a Path,
    /// `--root` of the backup...
    root: &'a Path,
    /// ...and the path below it backed up ("": all of it), which is the
    /// tree tar archives.
    path: &'a str,
    archive: &'a Path,
    tar_file: &'a Path,
    /// Synced after a create.
    out: &'a Path,
    /// Restored into.
    dest: &'a Path,
    conf: &'a Path,
}

impl Setup<'_> {
    /// archive create and restore, tar+zstd create and restore: run with
    /// `sh -c` so a sync can follow each.
    fn commands(&self) -> [String; 4] {
        let q = |p: &Path| shell_quote(p);
        let tree = match self.path {
            "" => self.root.to_path_buf(),
            p => self.root.join(p.trim_start_matches('/')),
        };
        let path = if self.path.is_empty() {
            String::new()
        } else {
            format!(" {}", self.path)
        };
        [
            format!(
                "{} backup --root {} --target file://{} --quiet --config-dir {}{path} && sync -f {}",
                q(self.bin),
                q(self.root),
                q(self.archive),
                q(self.conf),
                q(self.out)
            ),
            format!(
                "{} restore --from file://{} --to {} --quiet --config-dir {} && sync -f {}",
                q(self.bin),
                q(self.archive),
                q(self.dest),
                q(self.conf),
                q(self.dest)
            ),
            format!(
                "tar -C {} -I 'zstd -T2' -cf {} . && sync -f {}",
                q(&tree),
                q(self.tar_file),
                q(self.out)
            ),
            format!(
                "tar -C {} -I 'zstd -T2' -xf {} && sync -f {}",
                q(self.dest),
                q(self.tar_file),
                q(self.dest)
            ),
        ]
    }
}

/// Makes `p` an empty directory.
fn fresh(p: &Path) -> Result<()> {
    if p.exists() {
        std::fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))?;
    }
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))
}

/// One tool's create and restore.
struct Row {
    name: &'static str,
    create: Measure,
    restore: Measure,
    archive_bytes: u64,
    note: String,
    create_cmd: String,
    restore_cmd: String,
}

fn measure_all(bin: &Path, abs: &Path, o: &Opts, load: &str) -> Result<String> {
    let tree = abs.join("tree");
    let t = Instant::now();
    let shape = generate(&tree, o.mib, SEED)?;
    eprintln!(
        "==> generated {} ({:.0} MiB of data, {} files) in {:.1}s",
        tree.display(),
        shape.data_bytes as f64 / 1048576.0,
        shape.files,
        t.elapsed().as_secs_f64()
    );
    sync_fs(abs)?;
    let want = summarize(&tree)?;
    let data = want.data_bytes;
    let out = abs.join("out");
    // Room for the tree twice over plus ext4's own tables.
    let mut scratch = Scratch::new(abs, data * 2 + (512 << 20));
    let dest = scratch.mnt.join("restored");
    let empty_conf = abs.join("no-config");
    std::fs::create_dir_all(&empty_conf)?;

    let q = |p: &Path| shell_quote(p);
    let tar_file = out.join("tar/tree.tar.zst");
    let [mk_create, mk_restore, tar_create, tar_restore] = Setup {
        bin,
        root: &tree,
        path: "",
        archive: &out.join("archive"),
        tar_file: &tar_file,
        out: &out,
        dest: &dest,
        conf: &empty_conf,
    }
    .commands();
    let repo = out.join("borg");
    let borg_create = format!(
        "cd {} && borg create --compression zstd,3 {}::bench . && sync -f {}",
        q(&tree),
        q(&repo),
        q(&out)
    );
    let borg_restore = format!(
        "cd {} && borg extract {}::bench && sync -f {}",
        q(&dest),
        q(&repo),
        q(&dest)
    );

    // The baseline: read the archive, write the tree's bytes back.
    let list = abs.join("files.list");
    let mut l = Vec::new();
    for f in &want.unique_files {
        l.extend_from_slice(f.as_os_str().as_bytes());
        l.push(0);
    }
    std::fs::write(&list, l)?;
    let base_file = scratch.mnt.join("baseline.bin");
    let write_cmd = format!(
        "cd {} && xargs -0 cat < {} > {} && sync {}",
        q(&tree),
        q(&list),
        q(&base_file),
        q(&base_file)
    );
    let mut read_cmd = String::new();
    let mut reads = Vec::new();
    let mut writes = Vec::new();

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let steal0 = steal_secs();
    // archive, the baseline and tar in turns, so a burst of load on the
    // shared machine hits all of them rather than one.
    let mut runs: [(Vec<Measure>, Vec<Measure>); 2] = Default::default();
    let mut sizes = [0u64; 2];
    for i in 0..RUNS {
        for (k, (create, restore, name)) in [
            (&mk_create, &mk_restore, "archive"),
            (&tar_create, &tar_restore, "tar+zstd"),
        ]
        .into_iter()
        .enumerate()
        {
            let stored = out.join(if k == 0 { "archive" } else { "tar" });
            fresh(&stored)?;
            sync_fs(abs)?;
            runs[k].0.push(measure(
                &format!("{name} create {}", i + 1),
                &mut sh(create),
            )?);
            sizes[k] = dir_bytes(&stored)?;
            scratch.fresh()?;
            std::fs::create_dir(&dest)?;
            sync_fs(abs)?;
            runs[k].1.push(measure(
                &format!("{name} restore {}", i + 1),
                &mut sh(restore),
            )?);
            if i == 0
                && let Err(e) = same(&want, &summarize(&dest)?)
            {
                notes.push(format!("{name}: restored tree differs: {e}"));
            }
            if k == 0 {
                read_cmd = format!(
                    "cat {} > /dev/null",
                    q(&find_archive(&out.join("archive"))?)
                );
                scratch.fresh()?;
                sync_fs(abs)?;
                reads.push(measure(
                    &format!("baseline read {}", i + 1),
                    &mut sh(&read_cmd),
                )?);
                writes.push(measure(
                    &format!("baseline write {}", i + 1),
                    &mut sh(&write_cmd),
                )?);
            }
        }
    }
    let steal = steal_secs().map(|b| b - steal0.unwrap_or(b));
    // Each restore against the baseline run right after it: how much of
    // the spread is the machine's.
    let paired: Vec<String> = ar_pairs(&runs[0].1, &reads, &writes);
    notes.push(format!(
        "archive restore × baseline, run by run (each restore with the baseline run after it): {}{}",
        paired.join(", "),
        match steal {
            Some(st) => format!(
                "; CPU time the host took from this machine (steal) during these runs: {st:.1} s"
            ),
            None => String::new(),
        }
    ));
    let [(ac, ar), (tc, tr)] = runs;
    rows.push(Row {
        name: "archive",
        create: median(ac),
        restore: median(ar),
        archive_bytes: sizes[0],
        note: format!(
            "mkrescue built-in, zstd level 3 on one thread per core, sha256 and XXH3-128 of every file (XXH3 checked again on restore), archive writeback started while writing, restore syncs every 128 MiB and at its end; median of {RUNS}"
        ),
        create_cmd: mk_create.clone(),
        restore_cmd: mk_restore.clone(),
    });
    rows.push(Row {
        name: "tar+zstd",
        create: median(tc),
        restore: median(tr),
        archive_bytes: sizes[1],
        note: format!("GNU tar, zstd -T2 (level 3); median of {RUNS}"),
        create_cmd: tar_create.clone(),
        restore_cmd: tar_restore.clone(),
    });

    // borg: once (it is the slow one), a fresh unencrypted repository.
    fresh(&repo)?;
    std::fs::remove_dir(&repo)?;
    let borg_env = |c: &mut Command| {
        c.env("BORG_BASE_DIR", abs.join("borg-home"))
            .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
            .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes");
    };
    let mut init = Command::new("borg");
    init.args(["init", "--encryption=none"]).arg(&repo);
    borg_env(&mut init);
    let st = init
        .status()
        .context("cannot start borg (apt-get install borgbackup)")?;
    if !st.success() {
        bail!("borg init {} failed ({st})", repo.display());
    }
    sync_fs(abs)?;
    let mut c = sh(&borg_create);
    borg_env(&mut c);
    let create = measure("borg create", &mut c)?;
    scratch.fresh()?;
    std::fs::create_dir(&dest)?;
    sync_fs(abs)?;
    let mut c = sh(&borg_restore);
    borg_env(&mut c);
    let restore = measure("borg extract", &mut c)?;
    if let Err(e) = same(&want, &summarize(&dest)?) {
        notes.push(format!("borg: restored tree differs: {e}"));
    }
    rows.push(Row {
        name: "borg",
        create,
        restore,
        archive_bytes: dir_bytes(&repo)?,
        note: format!(
            "borg {}, `--compression zstd,3` (its default is lz4), unencrypted repository, one thread; one run",
            tool_version("borg", "--version")
        ),
        create_cmd: borg_create.clone(),
        restore_cmd: borg_restore.clone(),
    });

    let inc = Incremental {
        bin,
        abs,
        empty_conf: &empty_conf,
        want: &want,
        repo: &repo,
        borg_env: &borg_env,
    }
    .measure(&mut scratch)?;
    drop(scratch);
    let small = small_files(bin, abs, &empty_conf)?;

    let (read, write) = (median(reads), median(writes));
    let mut text = render(&rows, &read, &write, &want, &shape, data, load, &notes);
    text.push_str(&inc);
    text.push_str(&small);
    let cmds = format!(
        "\nCommands (`$B` is target/bench/backup; each timed from start to end, sync included; `borg` with `BORG_BASE_DIR` in the bench directory):\n\n{}- baseline read: `{read_cmd}`\n- baseline write: `{write_cmd}`\n",
        rows.iter()
            .map(|r| format!(
                "- {} create: `{}`\n- {} restore: `{}`\n",
                r.name, r.create_cmd, r.name, r.restore_cmd
            ))
            .collect::<String>()
    );
    // Shorter and the same on every machine: $B for the bench directory.
    let root = std::fs::canonicalize(".")?;
    let cmds = cmds
        .replace(&abs.display().to_string(), "$B")
        .replace(&format!("{}/", root.display()), "");
    let section = format!(
        "## Backup and restore: archive vs tar+zstd vs borg\n\nProduced by `cargo xtask bench --write` (or `--backup-only --write`) on {} (this section is replaced on each run).\n\n{text}{cmds}",
        now_utc()
    );
    Ok(section)
}

/// The incremental measures of issue 22: a full backup in incremental
/// mode, 1% of the files changed, the incremental (beside borg's second
/// run on the same change); then six more incrementals and the restore of
/// the chain of eight against the restore of its full backup alone.
struct Incremental<'a> {
    bin: &'a Path,
    abs: &'a Path,
    empty_conf: &'a Path,
    want: &'a Summary,
    repo: &'a Path,
    borg_env: &'a dyn Fn(&mut Command),
}

/// Chain restores against the full one: links in the chain.
const CHAIN: usize = 8;

impl Incremental<'_> {
    fn measure(&self, scratch: &mut Scratch) -> Result<String> {
        let q = |p: &Path| shell_quote(p);
        let conf = self.abs.join("incremental-config");
        std::fs::create_dir_all(&conf)?;
        std::fs::write(
            conf.join("local.toml"),
            "[backup]\nmode = \"incremental\"\n",
        )?;
        let stored = self.abs.join("out/incremental");
        std::fs::create_dir_all(&stored)?;
        // The tree is /tree below --root: the state directory
        // (ROOT/var/cache/mkrescue) stays outside it.
        let create = format!(
            "{} backup --root {} --target file://{} --quiet --config-dir {} /tree && sync -f {}",
            q(self.bin),
            q(self.abs),
            q(&stored),
            q(&conf),
            q(&stored)
        );
        let tree = self.abs.join("tree");
        sync_fs(self.abs)?;
        let full = measure("incremental mode: full", &mut sh(&create))?;
        let full_bytes = dir_bytes(&stored)?;
        let full_manifest = manifest_bytes(&stored)?;
        let changed = change_files(&tree, &self.want.unique_files, 0)?;
        sync_fs(self.abs)?;
        let inc = measure("incremental mode: 1% changed", &mut sh(&create))?;
        let inc_bytes = dir_bytes(&stored)? - full_bytes;
        let inc_manifest = manifest_bytes(&stored)? - full_manifest;
        let borg_before = dir_bytes(self.repo)?;
        let mut c = sh(&format!(
            "cd {} && borg create --compression zstd,3 {}::second . && sync -f {}",
            q(&tree),
            q(self.repo),
            q(self.repo)
        ));
        (self.borg_env)(&mut c);
        let borg = measure("borg create, 1% changed", &mut c)?;
        let borg_bytes = dir_bytes(self.repo)? - borg_before;
        for k in 2..CHAIN {
            change_files(&tree, &self.want.unique_files, k)?;
            let mut c = sh(&create);
            let st = c.status()?;
            if !st.success() {
                bail!("incremental {k} failed ({st})");
            }
        }
        let first = std::fs::read_dir(&stored)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".tar.zst") && !n.contains('_'))
            .min()
            .context("no full backup")?;
        let full_name = first.trim_end_matches(".tar.zst");
        let dest = scratch.mnt.join("restored");
        let restore = |archive: &str| {
            format!(
                "{} restore --from file://{} --to {} --quiet --config-dir {}{archive} && sync -f {}",
                q(self.bin),
                q(&stored),
                q(&dest),
                q(self.empty_conf),
                q(&dest)
            )
        };
        scratch.fresh()?;
        std::fs::create_dir(&dest)?;
        sync_fs(self.abs)?;
        let full_restore = measure(
            "restore of the full backup alone",
            &mut sh(&restore(&format!(" --archive {full_name}"))),
        )?;
        let full_data = summarize(&dest.join("tree"))?.data_bytes;
        scratch.fresh()?;
        std::fs::create_dir(&dest)?;
        sync_fs(self.abs)?;
        let chain_restore = measure(
            &format!("restore of the chain of {CHAIN}"),
            &mut sh(&restore("")),
        )?;
        let got = summarize(&dest.join("tree"))?;
        let same_tree = same(&summarize(&tree)?, &got);
        let mib = |b: u64| b as f64 / 1048576.0;
        let full_rate = full_data as f64 / 1e6 / full_restore.wall;
        let chain_rate = got.data_bytes as f64 / 1e6 / chain_restore.wall;
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let t = inc.wall / full.wall;
        let b = inc_bytes as f64 / full_bytes as f64;
        let r = chain_rate / full_rate;
        Ok(format!(
            "\n### Incremental archives (issue 22)\n\n\
`backup.mode = \"incremental\"`: a full backup of the tree, then {changed} files (1%, every 100th) get 64 bytes appended and a second backup runs; borg's second `borg create` (files cache warm) on the same change. Then {} more incrementals (another 1% each) and the restore of the chain of {CHAIN} against the restore of its full backup alone, each onto a fresh ext4. One run each.\n\n\
| | full | incremental | incremental / full | borg, second run |\n|---|---:|---:|---:|---:|\n\
| create (s) | {:.2} | {:.2} | {t:.3} | {:.2} |\n\
| stored (MiB), archive and manifest | {:.1} | {:.2} | {b:.4} | {:.2} |\n\
| of which manifest (MiB) | {:.2} | {:.3} | {:.3} | - |\n\n\
| restore | s | MB/s |\n|---|---:|---:|\n\
| full backup alone | {:.2} | {full_rate:.0} |\n\
| chain of {CHAIN} (full + {} incrementals) | {:.2} | {chain_rate:.0} |\n\n\
Goals (issue 22):\n\n\
- incremental with 1% changed ≤ 10% of the full's time: {:.1}%: {}\n\
- and ≤ 10% of its size: {:.2}%: {}\n\
- chain restore ≥ 80% of the full's restore rate: {:.0}%: {}\n\
- the chain restores the newest tree: {}\n",
            CHAIN - 2,
            full.wall,
            inc.wall,
            borg.wall,
            mib(full_bytes),
            mib(inc_bytes),
            mib(borg_bytes),
            mib(full_manifest),
            mib(inc_manifest),
            inc_manifest as f64 / full_manifest.max(1) as f64,
            full_restore.wall,
            CHAIN - 1,
            chain_restore.wall,
            t * 100.0,
            verdict(t <= 0.1),
            b * 100.0,
            verdict(b <= 0.1),
            r * 100.0,
            verdict(r >= 0.8),
            match same_tree {
                Ok(()) => "yes".to_string(),
                Err(e) => format!("NO: {e}"),
            }
        ))
    }
}

/// The second tree of issue 22: this many small text files...
const SMALL_FILES: usize = 200_000;
/// ...in directories of this many.
const SMALL_PER_DIR: usize = 1000;
/// Runs of each small-files measure (the median is kept).
const SMALL_RUNS: usize = 3;

/// Writes [`SMALL_FILES`] text files of 20 B to 1 KiB (words of a small
/// vocabulary, so they compress like configuration and mail) under
/// `root`, deterministically; returns their bytes.
fn generate_small(root: &Path) -> Result<u64> {
    const WORDS: &[&str] = &[
        "the",
        "server",
        "config",
        "value",
        "true",
        "false",
        "port",
        "host",
        "user",
        "mail",
        "from",
        "to",
        "subject",
        "date",
        "received",
        "path",
        "/usr/lib",
        "include",
        "option",
        "0",
        "1",
        "42",
        "8080",
        "localhost",
        "=",
        "#",
        "\n",
        "error",
        "warning",
        "info",
    ];
    let mut x: u64 = SEED | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut bytes = 0u64;
    for d in 0..SMALL_FILES.div_ceil(SMALL_PER_DIR) {
        let dir = root.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for f in 0..SMALL_PER_DIR.min(SMALL_FILES - d * SMALL_PER_DIR) {
            let len = 20 + (next() % 1005) as usize;
            let mut text = String::with_capacity(len + 16);
            while text.len() < len {
                text.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
                text.push(' ');
            }
            text.truncate(len);
            std::fs::write(dir.join(format!("f{f:04}.txt")), &text)?;
            bytes += len as u64;
        }
    }
    Ok(bytes)
}

/// The small-files measures of issue 22: archive against tar+zstd on a
/// tree of [`SMALL_FILES`] small text files (create, restore, stored
/// bytes, restore peak RSS), and an incremental with 1% of them changed.
fn small_files(bin: &Path, abs: &Path, empty_conf: &Path) -> Result<String> {
    let q = |p: &Path| shell_quote(p);
    let root = abs.join("small-root");
    let tree = root.join("small");
    let t = Instant::now();
    let data = generate_small(&tree)?;
    eprintln!(
        "==> generated {} ({SMALL_FILES} files, {:.0} MiB) in {:.1}s",
        tree.display(),
        data as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let want = summarize(&tree)?;
    let out = abs.join("out-small");
    // ext4 gives one inode per 16 KiB: room for 200k files and more.
    let mut scratch = Scratch::new(abs, 6 << 30);
    let dest = scratch.mnt.join("restored");
    let archive = out.join("archive");
    let tar_file = out.join("tar/small.tar.zst");
    let [mk_create, mk_restore, tar_create, tar_restore] = Setup {
        bin,
        root: &root,
        path: "/small",
        archive: &archive,
        tar_file: &tar_file,
        out: &out,
        dest: &dest,
        conf: empty_conf,
    }
    .commands();
    let mut runs: [(Vec<Measure>, Vec<Measure>); 2] = Default::default();
    let mut sizes = [0u64; 2];
    let mut manifest = 0;
    let mut notes = Vec::new();
    for i in 0..SMALL_RUNS {
        for (k, (create, restore, name)) in [
            (&mk_create, &mk_restore, "archive"),
            (&tar_create, &tar_restore, "tar+zstd"),
        ]
        .into_iter()
        .enumerate()
        {
            let stored = if k == 0 {
                archive.clone()
            } else {
                out.join("tar")
            };
            fresh(&stored)?;
            sync_fs(abs)?;
            runs[k].0.push(measure(
                &format!("small {name} create {}", i + 1),
                &mut sh(create),
            )?);
            sizes[k] = dir_bytes(&stored)?;
            if k == 0 {
                manifest = manifest_bytes(&stored)?;
            }
            scratch.fresh()?;
            std::fs::create_dir(&dest)?;
            sync_fs(abs)?;
            runs[k].1.push(measure(
                &format!("small {name} restore {}", i + 1),
                &mut sh(restore),
            )?);
            let got = if k == 0 {
                dest.join("small")
            } else {
                dest.clone()
            };
            if i == 0
                && let Err(e) = same(&want, &summarize(&got)?)
            {
                notes.push(format!("{name}: restored tree differs: {e}"));
            }
        }
    }
    // An incremental with 1% of the files changed.
    let conf = abs.join("incremental-config");
    let inc_out = out.join("incremental");
    fresh(&inc_out)?;
    let inc_create = format!(
        "{} backup --root {} --target file://{} --quiet --config-dir {} /small",
        q(bin),
        q(&root),
        q(&inc_out),
        q(&conf)
    );
    let st = sh(&inc_create).status()?;
    if !st.success() {
        bail!("the small tree's full backup in incremental mode failed ({st})");
    }
    let full_bytes = dir_bytes(&inc_out)?;
    let changed = change_files(&tree, &want.unique_files, 0)?;
    let inc = measure("small incremental, 1% changed", &mut sh(&inc_create))?;
    let inc_bytes = dir_bytes(&inc_out)? - full_bytes;
    drop(scratch);
    let [(ac, ar), (tc, tr)] = runs;
    let (ac, ar, tc, tr) = (median(ac), median(ar), median(tc), median(tr));
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mib = |b: u64| b as f64 / 1048576.0;
    let c = tc.wall / ac.wall;
    let r = tr.wall / ar.wall;
    let st = sizes[0] as f64 / sizes[1] as f64;
    let ib = inc_bytes as f64 / full_bytes as f64;
    let mut text = format!(
        "\n### {SMALL_FILES} small files (issue 22)\n\n\
A second generated tree: {SMALL_FILES} text files of 20 B to 1 KiB ({:.0} MiB of data) in directories of {SMALL_PER_DIR}. Each restore onto a fresh ext4; median of {SMALL_RUNS}.\n\n\
| tool | create (s) | restore (s) | stored (MiB) | of which manifest (MiB) | peak RSS create / restore (MiB) |\n|---|---:|---:|---:|---:|---:|\n\
| archive | {:.2} | {:.2} | {:.1} | {:.1} | {:.0} / {:.0} |\n\
| tar+zstd | {:.2} | {:.2} | {:.1} | - | {:.0} / {:.0} |\n\
| archive, incremental with {changed} files (1%) changed | {:.2} | - | {:.2} | - | {:.0} / - |\n\n\
Goals (issue 22):\n\n\
- create ≥ 1.0× tar+zstd: ×{c:.2}: {}\n\
- restore ≥ 1.0× tar: ×{r:.2}: {}\n\
- stored (archive and manifest) ≤ 1.5× tar+zstd: ×{st:.2}: {}\n\
- an incremental with 1% changed stores ≤ 10% of the full, manifest included: {:.2}%: {}\n",
        mib(data),
        ac.wall,
        ar.wall,
        mib(sizes[0]),
        mib(manifest),
        ac.max_rss_kib as f64 / 1024.0,
        ar.max_rss_kib as f64 / 1024.0,
        tc.wall,
        tr.wall,
        mib(sizes[1]),
        tc.max_rss_kib as f64 / 1024.0,
        tr.max_rss_kib as f64 / 1024.0,
        inc.wall,
        mib(inc_bytes),
        inc.max_rss_kib as f64 / 1024.0,
        verdict(c >= 1.0),
        verdict(r >= 1.0),
        verdict(st <= 1.5),
        ib * 100.0,
        verdict(ib <= 0.1),
    );
    for n in notes {
        text.push_str(&format!("- {n}\n"));
    }
    text.push_str(&format!(
        "\nCommands: `{mk_create}`, `{mk_restore}`, `{tar_create}`, `{tar_restore}`.\n"
    ));
    let cwd = std::fs::canonicalize(".")?;
    Ok(text
        .replace(&abs.display().to_string(), "$B")
        .replace(&format!("{}/", cwd.display()), ""))
}

/// Appends 64 bytes to every 100th file (starting at `round`), so a
/// round changes 1% of them; returns how many.
fn change_files(tree: &Path, files: &[PathBuf], round: usize) -> Result<usize> {
    use std::io::Write;
    let mut n = 0;
    for f in files.iter().skip(round).step_by(100) {
        let p = tree.join(f);
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .with_context(|| format!("changing {}", p.display()))?;
        w.write_all(&[b'x'; 64])?;
        n += 1;
    }
    Ok(n)
}

/// Bytes of the manifests in `dir`.
fn manifest_bytes(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().ends_with(".manifest.zst") {
            n += e.metadata()?.len();
        }
    }
    Ok(n)
}

/// Restore × baseline of each run: the baseline's time over the
/// restore's (the same bytes, so the ratio of their MB/s).
fn ar_pairs(restores: &[Measure], reads: &[Measure], writes: &[Measure]) -> Vec<String> {
    restores
        .iter()
        .zip(reads.iter().zip(writes))
        .map(|(r, (a, b))| format!("{:.2}", (a.wall + b.wall) / r.wall))
        .collect()
}

/// CPU time stolen by the hypervisor so far, all CPUs (the `steal`
/// column of /proc/stat, in USER_HZ = 100 ticks per second).
fn steal_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: f64 = cpu.split_whitespace().nth(8)?.parse().ok()?;
    Some(ticks / 100.0)
}

/// [`measure::measure`], printing the time of each run (the table
/// keeps the medians).
fn measure(name: &str, cmd: &mut Command) -> Result<Measure> {
    let m = measure::measure(name, cmd)?;
    eprintln!("==> {name}: {:.2} s", m.wall);
    Ok(m)
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

fn shell_quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// syncfs(2) of the filesystem holding `p`: what the previous step left
/// dirty is not charged to the next one.
fn sync_fs(p: &Path) -> Result<()> {
    crate::util::run("sync", &["-f", &p.to_string_lossy()])
}

fn median(mut v: Vec<Measure>) -> Measure {
    v.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    v.swap_remove(v.len() / 2)
}

fn tool_version(tool: &str, flag: &str) -> String {
    Command::new(tool)
        .arg(flag)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .last()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

fn find_archive(dir: &Path) -> Result<PathBuf> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.to_string_lossy().ends_with(".tar.zst") {
            return Ok(p);
        }
    }
    bail!("no *.tar.zst in {}", dir.display())
}

/// Bytes of all files below `dir` (what a tool stored).
fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p)?;
        if m.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        } else if m.is_file() {
            n += m.len();
        }
    }
    Ok(n)
}

#[allow(clippy::too_many_arguments)]
fn render(
    rows: &[Row],
    read: &Measure,
    write: &Measure,
    tree: &Summary,
    shape: &Shape,
    data: u64,
    load: &str,
    notes: &[String],
) -> String {
    let mbs = |secs: f64| data as f64 / 1e6 / secs;
    let tar = rows
        .iter()
        .find(|r| r.name == "tar+zstd")
        .map(|r| mbs(r.create.wall))
        .unwrap_or(f64::NAN);
    let base_secs = read.wall + write.wall;
    let base = mbs(base_secs);
    let mut s = format!(
        "Kernel {}, {} cores, load average (1 min) at the start: {load}.\n\n\
Tree: {:.0} MiB of file data ({} bytes) in {} files, {} directories, {} symlinks, {} extra hard-link names, generated by `xtask/src/bench/tree.rs` (seed {SEED:#x}):\n\n{}\n\n\
MB/s is 10^6 bytes of file data (each hard-linked file once) per wall second, sync included.\n\n\
| tool | create (s) | create MB/s | create × tar+zstd | restore (s) | restore MB/s | restore × baseline | stored (MiB) | data / stored | peak RSS create / restore (MiB) | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        kernel(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        data as f64 / 1048576.0,
        data,
        tree.files,
        tree.dirs,
        tree.symlinks,
        tree.hardlinks,
        shape
            .parts
            .iter()
            .map(|p| format!("- {p}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} / {:.0} | {} |\n",
            r.name,
            r.create.wall,
            mbs(r.create.wall),
            mbs(r.create.wall) / tar,
            r.restore.wall,
            mbs(r.restore.wall),
            mbs(r.restore.wall) / base,
            r.archive_bytes as f64 / 1048576.0,
            data as f64 / r.archive_bytes.max(1) as f64,
            r.create.max_rss_kib as f64 / 1024.0,
            r.restore.max_rss_kib as f64 / 1024.0,
            r.note
        ));
    }
    s.push_str(&format!(
        "| baseline (cat) | - | - | - | {base_secs:.2} | {base:.0} | 1.00 | - | - | - | read {:.2} s ({:.0} MB/s of archive) + write {:.2} s |\n",
        read.wall,
        rows.first().map(|r| r.archive_bytes as f64 / 1e6 / read.wall).unwrap_or(0.0),
        write.wall
    ));
    s.push_str(&format!("\n{BASELINE}\n\nGoals (issue 5):\n\n"));
    if let Some(a) = rows.iter().find(|r| r.name == "archive") {
        let c = mbs(a.create.wall) / tar;
        let r = mbs(a.restore.wall) / base;
        s.push_str(&format!(
            "- archive create ≥ tar+zstd: {:.0} vs {tar:.0} MB/s, ×{c:.2}: {}\n- archive restore ≥ 80% of the baseline: {:.0} vs {base:.0} MB/s, {:.0}%: {}\n",
            mbs(a.create.wall),
            if c >= 1.0 { "met" } else { "MISSED" },
            mbs(a.restore.wall),
            r * 100.0,
            if r >= 0.8 { "met" } else { "MISSED" }
        ));
    }
    for n in notes {
        s.push_str(&format!("- {n}\n"));
    }
    s
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}
