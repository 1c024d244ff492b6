//! The GitHub Actions runner's side of `login --github-actions`: workflow commands on stdout
//! (`::add-mask::`, `::warning::`) and the runner's files `$GITHUB_OUTPUT` (step outputs) and
//! `$GITHUB_ENV` (variables for the job's later steps).
//!
//! Those files are opened when `login` starts, before anything else changes, so a file that
//! cannot be written fails the login with nothing changed. An existing file is appended to and
//! keeps its mode; a missing one is created 0600 (it will hold passwords). A symbolic link or
//! anything but a regular file is refused, and opening never blocks (a FIFO is not waited on).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

pub struct Runner {
    output: File,
    env: Option<File>,
}

/// Open the runner file named by `$var` for appending.
fn open_runner_file(var: &str) -> Result<File, String> {
    let path = std::env::var_os(var)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| format!("--github-actions needs ${var} (set by the GitHub Actions runner); nothing was changed"))?;
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| format!("cannot open ${var} ({}) for appending: {e}; nothing was changed", path.display()))?;
    let meta = f.metadata().map_err(|e| format!("${var} ({}): {e}; nothing was changed", path.display()))?;
    if !meta.is_file() {
        return Err(format!("${var} ({}) is not a regular file; nothing was changed", path.display()));
    }
    Ok(f)
}

impl Runner {
    /// `$GITHUB_OUTPUT`, and with `with_env` also `$GITHUB_ENV`.
    pub fn open(with_env: bool) -> Result<Runner, String> {
        let output = open_runner_file("GITHUB_OUTPUT")?;
        let env = if with_env { Some(open_runner_file("GITHUB_ENV")?) } else { None };
        Ok(Runner { output, env })
    }

    fn command(&self, line: &str) -> Result<(), String> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|e| format!("stdout: {e}"))
    }

    /// `::add-mask::` for `secret`: the runner shows `***` wherever it would appear in the log.
    pub fn mask(&mut self, secret: &str) -> Result<(), String> {
        self.command(&format!("::add-mask::{secret}"))
    }

    pub fn warning(&mut self, text: &str) -> Result<(), String> {
        self.command(&format!("::warning::{text}"))
    }

    /// `name=value` lines for the step's outputs.
    pub fn write_outputs(&mut self, lines: &str) -> Result<(), String> {
        self.output.write_all(lines.as_bytes()).map_err(|e| format!("cannot write $GITHUB_OUTPUT: {e}"))
    }

    /// `NAME=value` lines for the job's later steps' environment.
    pub fn write_env(&mut self, lines: &str) -> Result<(), String> {
        let f = self.env.as_mut().ok_or("$GITHUB_ENV was not opened")?;
        f.write_all(lines.as_bytes()).map_err(|e| format!("cannot write $GITHUB_ENV: {e}"))
    }
}
