//! What every command hands back to `main`, which prints it once (as ripgrep's `main` does):
//! the text, the channel it goes to and the exit status. Commands never print their answer
//! or their error themselves; logs (`tracing`) are not answers and go to stderr as they happen,
//! and so do `login --github-actions`'s workflow commands (`::add-mask::` must reach the
//! runner before anything else could show the secret).
//!
//! The channels: the credential-helper protocol answers everything, failures included, on
//! stdout (exit 1 on failure); kubelet's provider protocol answers on stdout and fails on
//! stderr; every other command writes what it was asked for (a report, a password, a script)
//! on stdout and its errors on stderr. Exit statuses are those README documents: 0 done,
//! 1 failed, 2 a usage error of a command that is not a protocol action.

use std::io::Write;

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Stdout,
    Stderr,
}

/// One command's whole output.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub channel: Channel,
    pub text: Vec<u8>,
    pub code: i32,
}

impl Reply {
    /// An answer on stdout, exit 0.
    pub fn out(text: impl Into<Vec<u8>>) -> Reply {
        Reply { channel: Channel::Stdout, text: text.into(), code: 0 }
    }

    /// A report on stderr, exit 0 (`login` and `logout` keep stdout for the job's own use).
    pub fn note(text: impl Into<String>) -> Reply {
        Reply { channel: Channel::Stderr, text: text.into().into_bytes(), code: 0 }
    }

    /// A failure on stderr, exit 1: `<who>: <why>` on one line.
    pub fn fail(who: &str, why: impl std::fmt::Display) -> Reply {
        Reply { channel: Channel::Stderr, text: format!("{who}: {why}\n").into_bytes(), code: 1 }
    }

    /// The same reply with `text` before its own (what a command did before it failed).
    pub fn after(mut self, text: String) -> Reply {
        self.text.splice(0..0, text.into_bytes());
        self
    }

    /// A command's `Result`: the answer on stdout, or the failure of `who` on stderr.
    pub fn from_result(who: &str, result: Result<String, String>) -> Reply {
        match result {
            Ok(text) => Reply::out(text),
            Err(e) => Reply::fail(who, e),
        }
    }

    /// Print the reply on its channel and give the exit status. A channel that cannot be
    /// written (a closed pipe: `| head`) is an error message on stderr and exit 1, not a panic.
    pub fn print(self, program: &str) -> i32 {
        let written = match self.channel {
            Channel::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&self.text).and_then(|()| out.flush())
            }
            Channel::Stderr => {
                let mut err = std::io::stderr().lock();
                err.write_all(&self.text).and_then(|()| err.flush())
            }
        };
        match written {
            Ok(()) => self.code,
            Err(e) => {
                let name = if self.channel == Channel::Stdout { "stdout" } else { "stderr" };
                let _ = writeln!(std::io::stderr(), "{program}: cannot write to {name}: {e}");
                1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_go_to_stdout_and_failures_name_who_failed_on_stderr() {
        assert_eq!(Reply::from_result("x", Ok("a\n".into())), Reply { channel: Channel::Stdout, text: b"a\n".to_vec(), code: 0 });
        let failed = Reply::from_result("docker-credential-ecr configure", Err("no".into()));
        assert_eq!(failed, Reply { channel: Channel::Stderr, text: b"docker-credential-ecr configure: no\n".to_vec(), code: 1 });
        assert_eq!(Reply::note("done\n").channel, Channel::Stderr);
        assert_eq!(Reply::note("done\n").code, 0);
    }
}
