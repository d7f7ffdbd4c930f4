//! `cargo xtask ci`: what `.ci/run` calls on a fresh clone (2 cores, a
//! hard 90-minute limit, 80 planned). The run is a plan of items, one line
//! each (`--plan` prints them without running anything): the checks (fmt,
//! clippy, tests), the QEMU scenarios, and the disaster matrix of
//! [`e2e::matrix::MATRIX`] (each scenario's server once, then its variants
//! from that one `before`).
//!
//! Which e2e variants run ([`E2eSet`], `--e2e`, or `MKRESCUE_CI_E2E` for a
//! `.ci/run` started without flags): `one` is raid1-lvm ISO BIOS (what CI
//! always ran), `matrix` the core variants plus whichever others fit the
//! budget, rotated by commit ([`select`]), `--all` everything.
//!
//! A failing item does not stop the run: the rest runs (a variant whose
//! server failed cannot), and the run fails at the end, every failure named
//! with its phase and serial log. Before each e2e item the run checks the
//! clock against the budget ([`Clock`]), so a slow machine skips what would
//! not fit instead of being killed at 90 minutes without a report. The
//! table of minutes is printed at the end and written to
//! target/ci-times.json.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::qemu::e2e::{self, matrix::Case};
use crate::{deb, deps, dist, qemu, util};

/// Minutes the whole run is planned to take; rotating variants start only
/// while the run is projected to end within it.
pub const BUDGET_MIN: f64 = 80.0;
/// CI kills the run at 90 minutes; a core item starts only while the run
/// is projected to end before this, so the table still gets written.
pub const HARD_MIN: f64 = 87.0;
/// Where the table goes.
pub const TIMES_JSON: &str = "target/ci-times.json";

/// Which e2e variants `cargo xtask ci` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum E2eSet {
    /// The first case only (raid1-lvm BIOS through `mkrescue drill`).
    One,
    /// The core variants, and the others as the budget allows (rotated).
    Matrix,
    /// Every variant of the matrix.
    All,
}

/// The default when neither `--e2e` nor `MKRESCUE_CI_E2E` says: the
/// matrix (issue 17: every recovery path on every change; the whole
/// matrix took about 68 minutes on a quiet 2-core machine, so nothing
/// rotates out today). `--e2e one` is the quick local run.
pub const DEFAULT_E2E: E2eSet = E2eSet::Matrix;

impl E2eSet {
    pub fn parse(s: &str) -> Result<E2eSet> {
        Ok(match s {
            "one" => E2eSet::One,
            "matrix" => E2eSet::Matrix,
            "all" => E2eSet::All,
            o => bail!("e2e set {o}: one of one, matrix, all"),
        })
    }

    /// `--all` wins, then `--e2e`, then MKRESCUE_CI_E2E, then
    /// [`DEFAULT_E2E`].
    pub fn choose(all: bool, flag: Option<&str>) -> Result<E2eSet> {
        if all {
            return Ok(E2eSet::All);
        }
        match flag {
            Some(f) => E2eSet::parse(f),
            None => match std::env::var("MKRESCUE_CI_E2E") {
                Ok(v) if !v.is_empty() => {
                    E2eSet::parse(&v).context("in the environment variable MKRESCUE_CI_E2E")
                }
                _ => Ok(DEFAULT_E2E),
            },
        }
    }
}

/// A step that is not part of the e2e matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Fmt,
    Clippy,
    Test,
    Dist,
    /// `cargo xtask deb`: packs the release binary `qemu boot` built and
    /// checks the package (dpkg-deb -c, lintian): 12 s on 2026-12-05
    /// with the release binary built (lintian 5 s of it).
    Deb,
    FreeTestBuilds,
    QemuBoot,
    QemuRuntime,
    QemuMedia,
    QemuLayout,
    /// `cargo xtask qemu fleet`: three builds into one PXE root and three
    /// PXE boots at once (SeaBIOS, 1 GiB, one vCPU each): on 2026-12-06,
    /// with the release binary already built (`qemu boot` builds it), 11 s
    /// of builds and 87 s of boots under load 5-8 from other builds; 142 s
    /// in all under load 9.
    QemuFleet,
    /// Waits for the e2e server's rootfs, built in the background.
    E2eRootfs,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Fmt => "cargo fmt --check",
            Step::Clippy => "cargo clippy",
            Step::Test => "cargo test",
            Step::Dist => "cargo xtask dist",
            Step::Deb => "cargo xtask deb",
            Step::FreeTestBuilds => "CI: free the test build's disk space",
            Step::QemuBoot => "qemu boot",
            Step::QemuRuntime => "qemu runtime",
            Step::QemuMedia => "qemu media",
            Step::QemuLayout => "qemu layout",
            Step::QemuFleet => "qemu fleet",
            Step::E2eRootfs => "e2e rootfs",
        }
    }

    /// Planning estimate in wall minutes on a quiet 2-core machine: the
    /// larger of the two fresh-clone CI runs of 2026-12-06 (5173314 and
    /// 08a4764, `../shared/tools/fresh-ci`), plus 15%. `qemu boot` builds
    /// the release binary the later steps use.
    pub fn minutes(self) -> f64 {
        match self {
            Step::Fmt | Step::Dist | Step::FreeTestBuilds | Step::E2eRootfs => 0.1,
            Step::Deb => 0.3,
            Step::Clippy => 2.3,
            Step::Test => 4.1,
            Step::QemuBoot => 3.2,
            Step::QemuRuntime => 2.5,
            Step::QemuMedia => 4.0,
            Step::QemuLayout => 2.9,
            Step::QemuFleet => 1.2,
        }
    }
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Step(Step),
    /// A scenario's server: provision and before.
    Server(&'static str),
    /// One variant's disaster half from its scenario's server.
    Variant(Case),
}

impl Item {
    /// The plan's and the table's line: `cargo clippy`, `e2e raid1-lvm
    /// server`, `e2e raid1-lvm iso bios`.
    pub fn name(&self) -> String {
        match self {
            Item::Step(s) => s.name().to_string(),
            Item::Server(sc) => format!("e2e {sc} server"),
            Item::Variant(c) => format!("e2e {}", c.name()),
        }
    }

    pub fn minutes(&self) -> f64 {
        match self {
            Item::Step(s) => s.minutes(),
            Item::Server(sc) => e2e::matrix::server_minutes(sc),
            Item::Variant(c) => c.minutes(),
        }
    }
}

/// The e2e cases of one run and the ones rotated out of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub run: Vec<Case>,
    /// Not in this run: (case, why).
    pub left: Vec<(Case, String)>,
    /// Every rotating case runs once in this many consecutive landings.
    pub period: usize,
}

/// Minutes of the e2e part: each scenario's server once, each case.
fn e2e_minutes(cases: &[Case]) -> f64 {
    let mut scenarios: Vec<&str> = cases.iter().map(|c| c.scenario).collect();
    scenarios.dedup();
    scenarios
        .iter()
        .map(|s| e2e::matrix::server_minutes(s))
        .sum::<f64>()
        + cases.iter().map(Case::minutes).sum::<f64>()
}

/// `cases` in the matrix's order (servers shared, core first within a
/// scenario).
fn in_matrix_order(matrix: &[Case], keep: impl Fn(&Case) -> bool) -> Vec<Case> {
    matrix.iter().filter(|c| keep(c)).copied().collect()
}

/// Which cases of `matrix` run at landing number `landing` (HEAD's
/// first-parent commit count) when the rest of the run takes `fixed`
/// minutes:
/// - `One`: the first case (raid1-lvm BIOS through `mkrescue drill`);
/// - `All`: every case;
/// - `Matrix`: every core case, and as many of the others as fit into
///   [`BUDGET_MIN`] in every rotation: `k` consecutive ones (cyclically,
///   in matrix order), the window starting at `landing * k`, so each runs
///   once in every `ceil(n / k)` consecutive landings. All of them when
///   they all fit.
pub fn select(matrix: &[Case], set: E2eSet, fixed: f64, landing: u64) -> Selection {
    let everything = |run: Vec<Case>, why: &str| {
        let left = matrix
            .iter()
            .filter(|c| !run.contains(c))
            .map(|c| (*c, why.to_string()))
            .collect();
        Selection {
            run,
            left,
            period: 1,
        }
    };
    match set {
        E2eSet::All => return everything(matrix.to_vec(), ""),
        E2eSet::One => {
            return everything(
                matrix.iter().take(1).copied().collect(),
                "not in `--e2e one` (`--e2e matrix` or `--all` runs it)",
            );
        }
        E2eSet::Matrix => {}
    }
    let fits = |extra: &[Case]| {
        let run = in_matrix_order(matrix, |c| c.core || extra.contains(c));
        fixed + e2e_minutes(&run) <= BUDGET_MIN
    };
    // A case that does not fit beside the core ones even alone never
    // rotates in (and would keep every other one out).
    let (rotating, too_big): (Vec<Case>, Vec<Case>) = in_matrix_order(matrix, |c| !c.core)
        .into_iter()
        .partition(|c| fits(&[*c]));
    let n = rotating.len();
    let window = |k: usize, start: usize| -> Vec<Case> {
        (0..k).map(|i| rotating[(start + i) % n]).collect()
    };
    // The largest k whose every window fits (windows differ: a rotating
    // case may bring its scenario's server along).
    let k = (0..=n)
        .rev()
        .find(|&k| k == 0 || (0..n).all(|s| fits(&window(k, s))))
        .unwrap_or(0);
    let chosen = if k == 0 || k == n {
        window(k, 0)
    } else {
        window(k, (landing as usize).wrapping_mul(k) % n)
    };
    let period = if k == 0 { 0 } else { n.div_ceil(k) };
    let run = in_matrix_order(matrix, |c| c.core || chosen.contains(c));
    let why = if k == 0 {
        format!("over the {BUDGET_MIN}-minute budget even without it: runs only with --all")
    } else {
        format!("rotated out at landing {landing}: runs once in every {period} landings")
    };
    let alone = |c: &Case| {
        let run = in_matrix_order(matrix, |d| d.core || d == c);
        format!(
            "{:.0} min with the core cases, over the {BUDGET_MIN}-minute budget: runs only with --all",
            fixed + e2e_minutes(&run)
        )
    };
    let left = matrix
        .iter()
        .filter(|c| !run.contains(c))
        .map(|c| {
            if too_big.contains(c) {
                (*c, alone(c))
            } else {
                (*c, why.clone())
            }
        })
        .collect();
    Selection { run, left, period }
}

/// The whole plan: the steps, then for each scenario its server and its
/// selected variants.
pub fn plan(sel: &Selection, in_ci: bool) -> Vec<Item> {
    let mut items: Vec<Item> = [Step::Fmt, Step::Clippy, Step::Test, Step::Dist]
        .into_iter()
        .map(Item::Step)
        .collect();
    if in_ci {
        items.push(Item::Step(Step::FreeTestBuilds));
    }
    items.extend(
        [
            Step::QemuBoot,
            Step::Deb,
            Step::QemuRuntime,
            Step::QemuMedia,
            Step::QemuLayout,
            Step::QemuFleet,
        ]
        .map(Item::Step),
    );
    if !sel.run.is_empty() {
        items.push(Item::Step(Step::E2eRootfs));
    }
    let mut last = None;
    for c in &sel.run {
        if last != Some(c.scenario) {
            items.push(Item::Server(c.scenario));
            last = Some(c.scenario);
        }
        items.push(Item::Variant(*c));
    }
    items
}

/// Minutes of the non-e2e steps.
fn fixed_minutes(in_ci: bool) -> f64 {
    plan(
        &Selection {
            run: vec![],
            left: vec![],
            period: 1,
        },
        in_ci,
    )
    .iter()
    .map(Item::minutes)
    .sum()
}

/// HEAD's first-parent commit count: consecutive landings on main count
/// up, so the rotation moves on with each (a landing of several commits
/// moves it on by as many).
fn landing() -> u64 {
    std::process::Command::new("git")
        .args(["rev-list", "--count", "--first-parent", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// The plan's text: one item a line, then `#` lines on what is left out
/// and the estimate.
pub fn plan_text(items: &[Item], sel: &Selection) -> String {
    let mut out: String = items.iter().map(|i| format!("{}\n", i.name())).collect();
    for (c, why) in &sel.left {
        out.push_str(&format!("# not this run: e2e {}: {why}\n", c.name()));
    }
    let est: f64 = items.iter().map(Item::minutes).sum();
    out.push_str(&format!(
        "# estimate: {est:.0} min on a quiet machine (budget {BUDGET_MIN:.0}, CI's limit 90)\n"
    ));
    if sel.period > 3 {
        out.push_str(&format!(
            "# WARNING: a rotating variant runs only once in {} landings (issue 17 wants 3): share servers or raise the budget\n",
            sel.period
        ));
    }
    out
}

/// `cargo xtask ci [--plan] [--all] [--e2e SET]`.
pub fn ci(print_plan: bool, set: E2eSet) -> Result<()> {
    let in_ci = util::in_ci();
    let landing = landing();
    let sel = select(e2e::matrix::MATRIX, set, fixed_minutes(in_ci), landing);
    let items = plan(&sel, in_ci);
    if print_plan {
        print!("{}", plan_text(&items, &sel));
        return Ok(());
    }
    eprint!("ci plan (landing {landing}):\n{}", plan_text(&items, &sel));
    deps::install()?;
    let start = Instant::now();
    let mut clock = Clock::new(&items);
    // The e2e server's debootstrap (downloads and dpkg, a few minutes of
    // mostly idle CPU) and its initramfs run while clippy and the tests
    // compile; the e2e step waits for them and a server builds them itself
    // if this failed.
    let mut rootfs = None;
    if !sel.run.is_empty() {
        std::fs::create_dir_all("target/qemu")?;
        let log = PathBuf::from("target/qemu/e2e-rootfs.log");
        let _ = std::fs::remove_file(&log);
        let mut scenarios: Vec<&'static str> = sel.run.iter().map(|c| c.scenario).collect();
        scenarios.dedup();
        rootfs = Some(std::thread::spawn(move || {
            let tar = e2e::rootfs::rootfs_logged(e2e::Suite::default(), "raid1-lvm", Some(&log))?;
            // And each scenario's own rootfs (dracut-sdboot's Debian 13
            // with dracut and systemd-boot: 78 s of debootstrap and apt
            // on 2026-12-06, off the server's clock) and its server
            // initramfs, natively (initrd.rs).
            for sc in scenarios {
                let suite = e2e::server_suite(sc)?;
                e2e::rootfs::rootfs_logged(suite, sc, Some(&log))?;
                e2e::initrd::initrd(sc, suite, Some(&log))?;
            }
            Ok::<_, anyhow::Error>(tar)
        }));
    }
    let mut bin: Option<PathBuf> = None;
    let mut release = || -> Result<PathBuf> {
        Ok(match &bin {
            Some(b) => b.clone(),
            None => bin.insert(util::build_release()?).clone(),
        })
    };
    let rows = run_items(
        &items,
        &mut clock,
        |item| match item {
            Item::Step(Step::E2eRootfs) => {
                match rootfs.take().map(|h| h.join()) {
                    Some(Ok(Ok(tar))) => eprintln!("rootfs: {}", tar.display()),
                    Some(Ok(Err(e))) => {
                        eprintln!("background rootfs/initramfs build failed, building again: {e:#}")
                    }
                    _ => eprintln!("background rootfs/initramfs build panicked, building again"),
                }
                Ok(vec![])
            }
            Item::Step(s) => run_step(*s).map(|()| vec![]),
            Item::Server(sc) => e2e::server(&release()?, sc),
            Item::Variant(c) => e2e::disaster(&release()?, c.scenario, c.variant),
        },
        |scenario| {
            // Under CI a scenario's disk images go once its last variant ran.
            if in_ci && let Err(e) = e2e::prune_scenario(scenario) {
                eprintln!("warning: {e:#}");
            }
        },
    );
    let total = start.elapsed().as_secs_f64() / 60.0;
    let table = table_text(&rows, total);
    eprint!("\n{table}");
    // The variants' phases against recover's own estimate (issue 16's
    // measures), from the reports this run wrote.
    if rows
        .iter()
        .any(|r| r.name.starts_with("e2e ") && r.minutes.is_some())
    {
        match e2e::table::columns(Path::new("target/qemu")) {
            Ok(cols) if !cols.is_empty() => {
                eprint!("\ne2e variants:\n{}", e2e::table::markdown(&cols))
            }
            Ok(_) => {}
            Err(e) => eprintln!("warning: the e2e table: {e:#}"),
        }
    }
    let doc = json!({
        "landing": landing,
        "e2e": format!("{set:?}").to_lowercase(),
        "budget_minutes": BUDGET_MIN,
        "total_minutes": round2(total),
        "ok": rows.iter().all(|r| !r.fails()),
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "not_run": sel.left.iter().map(|(c, why)| json!({"name": format!("e2e {}", c.name()), "why": why})).collect::<Vec<_>>(),
    });
    std::fs::write(TIMES_JSON, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {TIMES_JSON}"))?;
    eprintln!("(also in {TIMES_JSON})");
    let failures: Vec<String> = rows
        .iter()
        .filter(|r| r.fails())
        .map(|r| format!("{}: {}", r.name, r.status))
        .collect();
    if !failures.is_empty() {
        bail!(
            "{} of {} items failed or did not run:\n{}",
            failures.len(),
            rows.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

/// Runs `items` in order through `exec`, each under a heading with its
/// time, and returns the table's rows. A failure does not stop the run;
/// the variants of a scenario whose server failed or did not run are
/// skipped; an e2e item the [`Clock`] refuses is skipped. `scenario_done`
/// is called after the last variant of each scenario.
fn run_items(
    items: &[Item],
    clock: &mut Clock,
    mut exec: impl FnMut(&Item) -> Result<e2e::PhaseTimes>,
    mut scenario_done: impl FnMut(&'static str),
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut no_server: Vec<&str> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = item.name();
        if let Item::Variant(c) = item
            && no_server.contains(&c.scenario)
        {
            rows.push(Row::skipped(item, "its server failed or did not run", true));
        } else if !matches!(item, Item::Step(_))
            && let Some(why) = clock.refuse(i)
        {
            eprintln!("==> {name}: SKIPPED, {why}");
            rows.push(Row::skipped(item, &why, clock.core[i]));
            if let Item::Server(sc) = item {
                no_server.push(sc);
            }
        } else {
            let t = Instant::now();
            let r = util::step(&name, || exec(item));
            let minutes = t.elapsed().as_secs_f64() / 60.0;
            clock.done(i, minutes);
            match r {
                Ok(phases) => rows.push(Row::ran(item, minutes, phases, None)),
                Err(e) => {
                    eprintln!("==> {name}: FAILED: {e:#}");
                    if let Item::Server(sc) = item {
                        no_server.push(sc);
                    }
                    rows.push(Row::ran(item, minutes, vec![], Some(format!("{e:#}"))));
                }
            }
        }
        if let Item::Variant(c) = item
            && !items[i + 1..]
                .iter()
                .any(|n| matches!(n, Item::Variant(d) if d.scenario == c.scenario))
        {
            scenario_done(c.scenario);
        }
    }
    rows
}

fn run_step(s: Step) -> Result<()> {
    match s {
        Step::Fmt => util::run("cargo", &["fmt", "--all", "--", "--check"]),
        Step::Clippy => util::run(
            "cargo",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        Step::Test => util::run("cargo", &["test", "--workspace"]),
        Step::Dist => dist::generate(&PathBuf::from("target/dist")).map(drop),
        Step::Deb => deb::build().map(drop),
        Step::FreeTestBuilds => free_test_builds(),
        Step::QemuBoot => qemu::boot::build_and_boot(&PathBuf::from("target/qemu/initramfs")),
        Step::QemuRuntime => qemu::runtime::run(None),
        Step::QemuMedia => qemu::media::run(None),
        Step::QemuLayout => {
            qemu::layout::run(&qemu::layout::SCENARIOS.iter().collect::<Vec<_>>(), None)
        }
        Step::QemuFleet => qemu::fleet::run(None, false),
        // Joined by the caller, which holds the thread.
        Step::E2eRootfs => Ok(()),
    }
}

/// The run's clock against the budget: how much slower (or faster) than
/// the estimates the items so far took, and whether an e2e item may still
/// start.
pub struct Clock {
    estimate: Vec<f64>,
    /// The item is core: a core case, or the server of a scenario with
    /// one, or a step.
    core: Vec<bool>,
    spent: f64,
    estimated_done: f64,
}

impl Clock {
    pub fn new(items: &[Item]) -> Clock {
        let core = items
            .iter()
            .map(|it| match it {
                Item::Step(_) => true,
                Item::Variant(c) => c.core,
                Item::Server(sc) => items
                    .iter()
                    .any(|o| matches!(o, Item::Variant(c) if c.core && c.scenario == *sc)),
            })
            .collect();
        Clock {
            estimate: items.iter().map(Item::minutes).collect(),
            core,
            spent: 0.0,
            estimated_done: 0.0,
        }
    }

    pub fn done(&mut self, i: usize, minutes: f64) {
        self.spent += minutes;
        self.estimated_done += self.estimate[i];
    }

    /// Actual over estimated minutes so far (1 before anything ran; never
    /// below 0.5, so one fast item does not promise too much).
    fn speed(&self) -> f64 {
        if self.estimated_done < 1.0 {
            1.0
        } else {
            (self.spent / self.estimated_done).max(0.5)
        }
    }

    /// Why item `i` must not start, if it must not: with the core items
    /// after it, scaled by the speed so far, it would end the run past
    /// [`BUDGET_MIN`] (a rotating item) or [`HARD_MIN`] (a core one).
    pub fn refuse(&self, i: usize) -> Option<String> {
        let core_after: f64 = (i + 1..self.estimate.len())
            .filter(|&j| self.core[j])
            .map(|j| self.estimate[j])
            .sum();
        let speed = self.speed();
        let end = self.spent + (self.estimate[i] + core_after) * speed;
        let limit = if self.core[i] { HARD_MIN } else { BUDGET_MIN };
        (end > limit).then(|| {
            format!(
                "out of time: {:.0} min spent, {end:.0} projected with it and the core items after it (speed {speed:.2} of the estimates), limit {limit:.0}",
                self.spent
            )
        })
    }
}

/// One line of the table.
struct Row {
    name: String,
    minutes: Option<f64>,
    phases: e2e::PhaseTimes,
    /// `ok`, `FAILED: ...`, `skipped: ...`.
    status: String,
    /// Not ok and counts as a failure (a skipped rotating item does not).
    failed: bool,
}

impl Row {
    fn ran(item: &Item, minutes: f64, phases: e2e::PhaseTimes, err: Option<String>) -> Row {
        Row {
            name: item.name(),
            minutes: Some(minutes),
            phases,
            failed: err.is_some(),
            status: match err {
                None => "ok".into(),
                Some(e) => format!("FAILED: {e}"),
            },
        }
    }

    fn skipped(item: &Item, why: &str, counts: bool) -> Row {
        Row {
            name: item.name(),
            minutes: None,
            phases: vec![],
            status: format!("skipped: {why}"),
            failed: counts,
        }
    }

    fn fails(&self) -> bool {
        self.failed
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "minutes": self.minutes.map(round2),
            "ok": self.status == "ok",
            "status": self.status,
            "phases_seconds": self.phases.iter().map(|(p, s)| (p.to_string(), json!(round1(*s)))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The table printed at the end: item, minutes, status (its first line),
/// an e2e item's phases in seconds, and the total.
fn table_text(rows: &[Row], total: f64) -> String {
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(5);
    let mut out = format!("{:<w$}  {:>7}  status\n", "ci step", "minutes");
    for r in rows {
        let min = r
            .minutes
            .map(|m| format!("{m:.1}"))
            .unwrap_or_else(|| "-".into());
        let first = r.status.lines().next().unwrap_or("");
        let mut line = format!("{:<w$}  {min:>7}  {first}", r.name);
        if !r.phases.is_empty() {
            let p: Vec<String> = r
                .phases
                .iter()
                .map(|(name, s)| format!("{name} {s:.0}s"))
                .collect();
            line.push_str(&format!(" ({})", p.join(", ")));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&format!("{:<w$}  {total:>7.1}\n", "total"));
    out
}

/// Under CI only: the debug build of clippy and the tests (several GiB)
/// is not read again; the QEMU steps use the release binary, and the e2e
/// VMs' disks need the room (CI's machine ran out of disk in the e2e
/// recover once). The running xtask binary stays usable: Linux keeps an
/// unlinked file's inode while it runs.
fn free_test_builds() -> Result<()> {
    let target = Path::new("target");
    let before = util::free_bytes(target)?;
    for d in [
        "debug/deps",
        "debug/incremental",
        "debug/build",
        "debug/examples",
    ] {
        let p = target.join(d);
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    // Downloaded .deb files: installed already.
    util::run("apt-get", &["clean"])?;
    let after = util::free_bytes(target)?;
    eprintln!(
        "freed {}; {} free under target/",
        util::gib(after.saturating_sub(before)),
        util::gib(after)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::e2e::matrix::MATRIX;

    fn names(cases: &[Case]) -> Vec<String> {
        cases.iter().map(Case::name).collect()
    }

    #[test]
    fn the_plan_lists_steps_servers_and_variants_one_per_line() {
        let sel = select(MATRIX, E2eSet::All, fixed_minutes(true), 7);
        let text = plan_text(&plan(&sel, true), &sel);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "cargo fmt --check",
                "cargo clippy",
                "cargo test",
                "cargo xtask dist",
                "CI: free the test build's disk space",
                "qemu boot",
                "cargo xtask deb",
                "qemu runtime",
                "qemu media",
                "qemu layout",
                "qemu fleet",
                "e2e rootfs",
                "e2e raid1-lvm server",
                "e2e raid1-lvm drill bios",
                "e2e raid1-lvm iso uefi",
                "e2e raid1-lvm pxe bios --disks smaller,nvme --nic new-mac",
                "e2e raid1-lvm pxe uefi",
                "e2e luks-lvm server",
                "e2e luks-lvm iso bios",
                "e2e dracut-sdboot server",
                "e2e dracut-sdboot iso uefi",
                "e2e bios-mbr server",
                "e2e bios-mbr iso uefi",
                "e2e uefi-gpt server",
                "e2e uefi-gpt iso bios",
            ]
        );
        assert!(text.contains("# estimate: "), "{text}");
        // Outside CI the test build stays.
        let dev = plan(&sel, false);
        assert!(!dev.contains(&Item::Step(Step::FreeTestBuilds)));
    }

    #[test]
    fn one_is_what_ci_always_ran_and_names_the_rest() {
        let sel = select(MATRIX, E2eSet::One, 19.0, 3);
        assert_eq!(names(&sel.run), ["raid1-lvm drill bios"]);
        assert_eq!(sel.left.len(), MATRIX.len() - 1);
        let text = plan_text(&plan(&sel, false), &sel);
        assert!(text.contains("# not this run: e2e luks-lvm iso bios: not in `--e2e one`"));
        // No e2e at all: no rootfs step either.
        let none = plan(
            &Selection {
                run: vec![],
                left: vec![],
                period: 1,
            },
            false,
        );
        assert!(!none.contains(&Item::Step(Step::E2eRootfs)));
    }

    #[test]
    fn the_matrix_runs_everything_that_fits() {
        // Today's estimates: all but issue 18's firmware pair fits the
        // budget; each of the pair, with its own server, is over it even
        // alone, and says so (it does not keep pxe uefi out).
        let sel = select(MATRIX, E2eSet::Matrix, fixed_minutes(true), 11);
        let pair = |c: &Case| ["bios-mbr", "uefi-gpt"].contains(&c.scenario);
        let want: Vec<Case> = MATRIX.iter().filter(|c| !pair(c)).copied().collect();
        assert_eq!(sel.run, want);
        assert_eq!(sel.left.len(), 2);
        for (c, why) in &sel.left {
            assert!(pair(c), "{}", c.name());
            assert!(
                why.contains(
                    "min with the core cases, over the 80-minute budget: runs only with --all"
                ),
                "{why}"
            );
        }
        let est: f64 = plan(&sel, true).iter().map(Item::minutes).sum();
        assert!(est <= BUDGET_MIN, "{est}");
        // `--all` runs them.
        assert_eq!(
            select(MATRIX, E2eSet::All, fixed_minutes(true), 11).run,
            MATRIX.to_vec()
        );
    }

    /// A bigger matrix than the budget: core always, the rotating ones in
    /// windows by landing, each at least once in any `period` consecutive
    /// landings (3 here, as issue 17 asks), deterministic per landing.
    #[test]
    fn over_budget_the_rest_rotate_by_landing() {
        use crate::qemu::e2e::Variant;
        let v = |b: &str, f: &str| Variant::parse(b, f).unwrap();
        let c = |scenario, b, f, core| Case {
            scenario,
            variant: v(b, f),
            core,
        };
        let big = [
            c("raid1-lvm", "iso", "bios", true),
            c("raid1-lvm", "iso", "uefi", true),
            c("raid1-lvm", "pxe", "bios", true),
            c("raid1-lvm", "pxe", "uefi", false),
            c("luks-lvm", "iso", "bios", true),
            c("luks-lvm", "iso", "uefi", false),
            c("luks-lvm", "pxe", "bios", false),
            c("luks-lvm", "pxe", "uefi", false),
        ];
        let core: Vec<Case> = big.iter().filter(|c| c.core).copied().collect();
        let rotating: Vec<Case> = big.iter().filter(|c| !c.core).copied().collect();
        // Room for core and about two rotating cases.
        let fixed = BUDGET_MIN - e2e_minutes(&core) - 16.0;
        let mut seen = std::collections::BTreeMap::new();
        for landing in 100..106u64 {
            let s = select(&big, E2eSet::Matrix, fixed, landing);
            assert_eq!(s, select(&big, E2eSet::Matrix, fixed, landing));
            assert!(core.iter().all(|c| s.run.contains(c)), "{landing}");
            let extra: Vec<Case> = s.run.iter().filter(|c| !c.core).copied().collect();
            assert_eq!(extra.len(), 2, "{landing}: {:?}", names(&extra));
            assert!(fixed + e2e_minutes(&s.run) <= BUDGET_MIN);
            assert_eq!(s.period, 2);
            assert_eq!(s.left.len(), rotating.len() - 2);
            // Kept in matrix order, so a scenario's cases stay together.
            let order: Vec<usize> = s
                .run
                .iter()
                .map(|c| big.iter().position(|b| b == c).unwrap())
                .collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
            for c in extra {
                seen.entry(c.name()).or_insert_with(Vec::new).push(landing);
            }
        }
        // Every rotating case ran, in every 2 consecutive landings.
        assert_eq!(seen.len(), rotating.len(), "{seen:?}");
        for (name, at) in &seen {
            assert!(at.windows(2).all(|w| w[1] - w[0] <= 2), "{name}: {at:?}");
        }
        let text = plan_text(
            &plan(&select(&big, E2eSet::Matrix, fixed, 100), true),
            &select(&big, E2eSet::Matrix, fixed, 100),
        );
        assert!(text.contains("rotated out at landing 100"), "{text}");
        // Too small for even one: core only, said so; --all runs all.
        let tight = select(&big, E2eSet::Matrix, BUDGET_MIN - e2e_minutes(&core), 1);
        assert_eq!(tight.run, core);
        assert!(
            tight
                .left
                .iter()
                .all(|(_, why)| why.contains("only with --all"))
        );
        assert_eq!(select(&big, E2eSet::All, 1000.0, 1).run, big.to_vec());
    }

    #[test]
    fn the_clock_skips_what_would_not_fit() {
        let sel = select(MATRIX, E2eSet::All, fixed_minutes(true), 0);
        let items = plan(&sel, true);
        let pos = |name: &str| items.iter().position(|i| i.name() == name).unwrap();
        let mut clock = Clock::new(&items);
        // On time: everything may start.
        assert!(
            items
                .iter()
                .enumerate()
                .all(|(i, _)| clock.refuse(i).is_none())
        );
        // Every step took three times its estimate: the rotating variant
        // would overrun the budget; the core luks server still has till
        // the hard limit only if it fits, and so on.
        let first_e2e = pos("e2e raid1-lvm server");
        for (i, it) in items.iter().enumerate().take(first_e2e) {
            clock.done(i, it.minutes() * 3.0);
        }
        let pxe_uefi = pos("e2e raid1-lvm pxe uefi");
        let why = clock.refuse(pxe_uefi).expect("over budget");
        assert!(
            why.contains("out of time") && why.contains("limit 80"),
            "{why}"
        );
        assert!(clock.core[pos("e2e luks-lvm server")]);
        assert!(!clock.core[pxe_uefi]);
        // Faster than estimated: it all fits again.
        let mut fast = Clock::new(&items);
        for (i, it) in items.iter().enumerate().take(first_e2e) {
            fast.done(i, it.minutes() * 0.8);
        }
        assert!(fast.refuse(pxe_uefi).is_none());
    }

    #[test]
    fn the_table_has_every_row_and_the_total() {
        let sel = select(MATRIX, E2eSet::One, 19.0, 0);
        let items = plan(&sel, false);
        let rows = vec![
            Row::ran(&items[0], 0.1, vec![], None),
            Row::ran(
                &Item::Variant(sel.run[0]),
                6.5,
                vec![("recover", 170.0), ("after", 90.0), ("degraded", 130.0)],
                Some("e2e raid1-lvm iso bios: phase after failed (serial log target/qemu/e2e-raid1-lvm-check.log)\nmore".into()),
            ),
            Row::skipped(&Item::Variant(MATRIX[3]), "out of time", false),
        ];
        let t = table_text(&rows, 6.6);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[1].starts_with("cargo fmt --check") && lines[1].ends_with("0.1  ok"));
        assert!(lines[2].contains("6.5  FAILED: e2e raid1-lvm iso bios: phase after failed (serial log target/qemu/e2e-raid1-lvm-check.log) (recover 170s, after 90s, degraded 130s)"), "{t}");
        assert!(lines[3].contains("-  skipped: out of time"), "{t}");
        assert!(lines[4].starts_with("total") && lines[4].ends_with("6.6"));
        assert!(rows[1].fails() && !rows[2].fails() && !rows[0].fails());
        let j = rows[1].json();
        assert_eq!(j["phases_seconds"]["after"], 90.0);
        assert_eq!(j["ok"], false);
    }

    /// A failing step or variant does not stop the run; a failed server's
    /// variants are skipped and counted; every scenario is done once,
    /// after its last variant.
    #[test]
    fn the_run_goes_on_after_a_failure() {
        let sel = select(MATRIX, E2eSet::All, fixed_minutes(false), 0);
        let items = plan(&sel, false);
        let mut clock = Clock::new(&items);
        let mut ran = Vec::new();
        let mut done = Vec::new();
        let rows = run_items(
            &items,
            &mut clock,
            |item| {
                ran.push(item.name());
                match item.name().as_str() {
                    "cargo clippy" => bail!("clippy found something"),
                    "e2e raid1-lvm iso uefi" => bail!("phase degraded failed"),
                    "e2e luks-lvm server" => bail!("phase provision failed"),
                    "e2e raid1-lvm pxe bios --disks smaller,nvme --nic new-mac" => {
                        Ok(vec![("recover", 1.0), ("after", 2.0)])
                    }
                    _ => Ok(vec![]),
                }
            },
            |sc| done.push(sc),
        );
        assert_eq!(rows.len(), items.len());
        // Everything ran but the failed server's variant.
        let want: Vec<String> = items
            .iter()
            .map(Item::name)
            .filter(|n| n != "e2e luks-lvm iso bios")
            .collect();
        assert_eq!(ran, want);
        let status = |n: &str| {
            let r = rows.iter().find(|r| r.name == n).unwrap();
            (r.status.clone(), r.fails())
        };
        assert_eq!(
            status("cargo clippy"),
            (
                "FAILED: step `cargo clippy` failed: clippy found something".into(),
                true
            )
        );
        assert_eq!(status("cargo test"), ("ok".into(), false));
        assert!(status("e2e raid1-lvm iso uefi").1);
        assert_eq!(status("e2e raid1-lvm pxe uefi"), ("ok".into(), false));
        assert_eq!(
            status("e2e luks-lvm iso bios"),
            ("skipped: its server failed or did not run".into(), true)
        );
        let pxe = rows
            .iter()
            .find(|r| r.name == "e2e raid1-lvm pxe bios --disks smaller,nvme --nic new-mac")
            .unwrap();
        assert_eq!(pxe.phases, vec![("recover", 1.0), ("after", 2.0)]);
        assert_eq!(
            done,
            [
                "raid1-lvm",
                "luks-lvm",
                "dracut-sdboot",
                "bios-mbr",
                "uefi-gpt"
            ]
        );
        assert_eq!(rows.iter().filter(|r| r.fails()).count(), 4);
    }

    #[test]
    fn e2e_sets_by_flag_and_name() {
        assert_eq!(E2eSet::choose(true, Some("one")).unwrap(), E2eSet::All);
        assert_eq!(
            E2eSet::choose(false, Some("matrix")).unwrap(),
            E2eSet::Matrix
        );
        assert!(E2eSet::choose(false, Some("most")).is_err());
    }
}
