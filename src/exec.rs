//! The one way to run external tools.
//!
//! Logs the full command line, sets stdin to null, captures stderr and puts
//! its tail into the error, and in dry-run mode prints the command instead of
//! running it.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// How many bytes of a failed command's stderr go into the error.
const STDERR_TAIL: usize = 2000;

/// A finished command of [`Cmd::run_any`].
#[derive(Debug, Clone)]
pub struct Finished {
    /// None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    /// Trimmed.
    pub stderr: String,
}

/// A command to run, built like `std::process::Command`.
#[derive(Debug)]
pub struct Cmd {
    inner: Command,
    dry_run: bool,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            inner: Command::new(program),
            dry_run: false,
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.inner.arg(a);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.inner.env(k, v);
        self
    }

    /// Run in this working directory.
    pub fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// Print instead of run.
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// The command line as a shell would show it.
    pub fn display(&self) -> String {
        let mut s = shell_quote(self.inner.get_program());
        for a in self.inner.get_args() {
            s.push(' ');
            s.push_str(&shell_quote(a));
        }
        s
    }

    /// Runs the command; non-zero exit is an error carrying stderr's tail.
    /// Returns stdout.
    pub fn output(mut self) -> Result<Vec<u8>> {
        let line = self.display();
        if self.dry_run {
            println!("would run: {line}");
            return Ok(Vec::new());
        }
        log::debug!("running: {line}");
        let out = self
            .inner
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("cannot start `{line}`"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail = tail(err.trim(), STDERR_TAIL).replace('\n', " | ");
            bail!("`{line}` failed ({}): {tail}", out.status);
        }
        Ok(out.stdout)
    }

    /// Runs the command for tools whose exit codes mean more than
    /// success or failure (blkid: 2 is "nothing found"). Only a command
    /// that cannot start is an error.
    pub fn run_any(mut self) -> Result<Finished> {
        let line = self.display();
        log::debug!("running: {line}");
        let out = self
            .inner
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("cannot start `{line}`"))?;
        Ok(Finished {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }

    /// Runs the command and returns stdout as text.
    pub fn read(self) -> Result<String> {
        let out = self.output()?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Starts the command with a pipe to its stdin (`feed`) or from its
    /// stdout (otherwise), for streams too large to hold (backups over
    /// ssh). Stderr is collected; [`Running::wait`] puts its tail into the
    /// error. Dry-run does not apply: callers check it before.
    pub fn spawn_stream(mut self, feed: bool) -> Result<Running> {
        let line = self.display();
        log::debug!("running: {line}");
        let (si, so) = if feed {
            (Stdio::piped(), Stdio::null())
        } else {
            (Stdio::null(), Stdio::piped())
        };
        let mut child = self
            .inner
            .stdin(si)
            .stdout(so)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let drain = drain_stderr(&mut child);
        Ok(Running {
            child,
            drain: Some(drain),
            line,
        })
    }

    /// Starts the command with pipes to its stdin and from its stdout (a
    /// conversation: `mkrescue serve` over ssh). Stderr is collected as in
    /// [`Cmd::spawn_stream`].
    pub fn spawn_duplex(mut self) -> Result<Duplex> {
        let line = self.display();
        log::debug!("running: {line}");
        let mut child = self
            .inner
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let drain = drain_stderr(&mut child);
        Ok(Duplex {
            run: Some(Running {
                child,
                drain: Some(drain),
                line,
            }),
        })
    }
}

/// A command started by [`Cmd::spawn_duplex`]; killed when dropped
/// unwaited.
pub struct Duplex {
    run: Option<Running>,
}

impl std::ops::Deref for Duplex {
    type Target = Running;
    fn deref(&self) -> &Running {
        self.run.as_ref().expect("a running command")
    }
}

impl std::ops::DerefMut for Duplex {
    fn deref_mut(&mut self) -> &mut Running {
        self.run.as_mut().expect("a running command")
    }
}

impl Duplex {
    /// A placeholder for one that was taken out.
    pub fn none() -> Duplex {
        Duplex { run: None }
    }

    /// Closes stdin, waits, and fails with stderr's tail on non-zero exit.
    pub fn wait(mut self) -> Result<()> {
        match self.run.take() {
            Some(r) => r.wait(),
            None => Ok(()),
        }
    }

    /// Stops it now (best effort).
    pub fn kill(&mut self) {
        if let Some(mut r) = self.run.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

impl Drop for Duplex {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A command started by [`Cmd::spawn_stream`].
pub struct Running {
    pub child: std::process::Child,
    drain: Option<std::thread::JoinHandle<String>>,
    line: String,
}

impl Running {
    /// Closes stdin, waits, and fails with stderr's tail on non-zero exit.
    pub fn wait(mut self) -> Result<()> {
        drop(self.child.stdin.take());
        let status = self
            .child
            .wait()
            .with_context(|| format!("waiting for `{}`", self.line))?;
        let err = self
            .drain
            .take()
            .map(|d| d.join().unwrap_or_default())
            .unwrap_or_default();
        if !status.success() {
            let t = tail(err.trim(), STDERR_TAIL).replace('\n', " | ");
            bail!("`{}` failed ({status}): {t}", self.line);
        }
        Ok(())
    }
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut start = s.len() - n;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn shell_quote(s: &OsStr) -> String {
    crate::sys::shell::quote(&s.to_string_lossy())
}

/// Collects a child's stderr on a thread (so a full pipe never blocks it)
/// for the error a failed [`Running`] reports.
fn drain_stderr(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take();
    std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = err.as_mut() {
            use std::io::Read;
            let _ = e.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_carries_stderr_tail() {
        let e = Cmd::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .output()
            .unwrap_err();
        let s = format!("{e:#}");
        assert!(s.contains("boom"), "{s}");
        assert!(s.contains("sh -c 'echo boom >&2; exit 3'"), "{s}");
    }

    #[test]
    fn dry_run_does_not_run() {
        let out = Cmd::new("false").dry_run(true).output().unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn stdin_is_null() {
        assert_eq!(Cmd::new("cat").read().unwrap(), "");
    }
}
