//! Progress bars on long steps, hidden when stderr is not a terminal (cron,
//! CI, pipes) or with `--quiet`.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Every drawn bar hangs off this one, so that a log line (a warning in
/// the middle of a step) is printed above the bars instead of onto the
/// spinner's line: [`LogWriter`] suspends it while it writes.
fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(MultiProgress::new)
}

/// Where the logger writes: stderr, with the bars cleared around it.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        multi().suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Time left at the mean rate since the start, shown only once there is
/// something to go by (3 s and 2% done): indicatif's own estimate said
/// "eta 4m" at the start of a 2-second job.
fn eta(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let secs = state.elapsed().as_secs_f64();
    let f = state.fraction() as f64;
    if secs < 3.0 || !(0.02..1.0).contains(&f) {
        return;
    }
    let left = (secs * (1.0 - f) / f).round() as u64;
    let _ = if left >= 60 {
        write!(w, "eta {}m{:02}s", left / 60, left % 60)
    } else {
        write!(w, "eta {left}s")
    };
}

/// `pb` drawn through [`multi`] when shown.
fn attach(pb: ProgressBar, show: bool) -> ProgressBar {
    if show { multi().add(pb) } else { pb }
}

/// Whether bars are drawn at all.
pub fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// A spinner for a step of unknown length.
pub fn spinner(show: bool, msg: &str) -> ProgressBar {
    let pb = attach(ProgressBar::with_draw_target(None, target(show)), show);
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A byte counter for writing the image.
pub fn bytes(show: bool, total: u64, msg: &str) -> ProgressBar {
    let pb = attach(
        ProgressBar::with_draw_target(Some(total), target(show)),
        show,
    );
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {mean_eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("mean_eta", eta)
        .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

fn target(show: bool) -> ProgressDrawTarget {
    if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// What a serial console, a log file or a script sees of a byte counter
/// when the bar is not drawn: a plain line (stderr not a terminal), or a
/// JSON event (`--json`), every [`EVERY`] while the step runs. Dropping it
/// stops the reports.
pub struct Reporter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often [`Reporter`] reports.
pub const EVERY: Duration = Duration::from_secs(5);

/// Starts reporting `pb` (whose length is the total) as `step`. Nothing
/// with `quiet`, or when the bar itself is drawn (a terminal, no `--json`).
pub fn report(pb: &ProgressBar, step: &str, quiet: bool, json: bool) -> Reporter {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let text = !quiet && !std::io::stderr().is_terminal();
    if !json && !text {
        return Reporter { stop, thread: None };
    }
    let (pb, step, flag) = (pb.clone(), step.to_string(), stop.clone());
    let start = std::time::Instant::now();
    let thread = std::thread::spawn(move || {
        let mut next = EVERY;
        while !flag.load(Ordering::Relaxed) && !pb.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            if start.elapsed() < next {
                continue;
            }
            next += EVERY;
            let line = progress_line(&step, pb.position(), pb.length(), start.elapsed(), json);
            eprintln!("{line}");
        }
    });
    Reporter {
        stop,
        thread: Some(thread),
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One report: bytes done of the total, the mean rate since the start and
/// the time left at that rate (none until there is a rate to go by).
pub fn progress_line(
    step: &str,
    done: u64,
    total: Option<u64>,
    elapsed: Duration,
    json: bool,
) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = match total {
        Some(t) if rate > 0.0 && t >= done => Some((t - done) as f64 / rate),
        _ => None,
    };
    if json {
        return serde_json::json!({
            "event": "progress",
            "step": step,
            "bytes": done,
            "total": total,
            "bytes_per_sec": rate.round(),
            "eta_seconds": eta.map(|e| e.round()),
        })
        .to_string();
    }
    let mib = |b: f64| b / (1u64 << 20) as f64;
    let mut s = format!("mkrescue: {step}: {:.1} MiB", mib(done as f64));
    if let Some(t) = total.filter(|t| *t > 0) {
        s.push_str(&format!(
            " of {:.1} MiB ({:.0}%)",
            mib(t as f64),
            done as f64 * 100.0 / t as f64
        ));
    }
    s.push_str(&format!(", {:.1} MiB/s", mib(rate)));
    if let Some(e) = eta {
        s.push_str(&format!(", {:.0}s left", e.ceil()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_events() {
        let l = progress_line(
            "restore",
            512 << 20,
            Some(1024 << 20),
            Duration::from_secs(16),
            false,
        );
        assert_eq!(
            l,
            "mkrescue: restore: 512.0 MiB of 1024.0 MiB (50%), 32.0 MiB/s, 16s left"
        );
        let j: serde_json::Value = serde_json::from_str(&progress_line(
            "restore",
            512 << 20,
            Some(1024 << 20),
            Duration::from_secs(16),
            true,
        ))
        .unwrap();
        assert_eq!(j["event"], "progress");
        assert_eq!(j["bytes"], 512u64 << 20);
        assert_eq!(j["eta_seconds"], 16.0);
        // Nothing done yet: no rate, no time left.
        let l = progress_line("restore", 0, Some(10), Duration::ZERO, false);
        assert_eq!(l, "mkrescue: restore: 0.0 MiB of 0.0 MiB (0%), 0.0 MiB/s");
    }

    #[test]
    fn reporter_stops_when_dropped() {
        let pb = bytes(false, 100, "x");
        let r = report(&pb, "x", false, true);
        drop(r);
        assert!(!pb.is_finished());
    }
}
