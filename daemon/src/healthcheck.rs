//! `ecr-broker healthcheck [--socket PATH] [--timeout SECS]`: exit 0 when a running broker
//! answers `GET /healthz` with 200 on its socket, 1 otherwise (no socket, refused, no answer
//! within the timeout, any other status). For exec probes (Kubernetes liveness/readiness,
//! container HEALTHCHECK) in an image that has no shell or HTTP client.
//!
//! Blocking std I/O on a worker thread, bounded by the timeout from connect to last byte:
//! no runtime is started, and a stuck or hostile listener cannot hold the probe.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The most of an answer read: a status line and a few headers.
const MAX_ANSWER_BYTES: u64 = 4096;

#[derive(clap::Parser, Debug)]
#[command(name = "ecr-broker healthcheck", about = "Exit 0 when the broker on SOCKET answers /healthz, 1 otherwise")]
struct Args {
    /// The broker's socket.
    #[arg(long, value_name = "PATH", default_value = ecr_cred::broker::SYSTEM_SOCKET)]
    socket: PathBuf,
    /// Seconds to wait for the whole answer.
    #[arg(long, value_name = "SECS", default_value_t = 3.0, value_parser = parse_timeout)]
    timeout: f64,
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t > 0.0 && t <= 300.0 => Ok(t),
        _ => Err(format!("{s:?} is not a number of seconds between 0 and 300")),
    }
}

/// `healthcheck ARGS...` (the arguments after `healthcheck`); returns the exit code.
pub fn run(args: impl Iterator<Item = std::ffi::OsString>) -> i32 {
    let argv = std::iter::once(std::ffi::OsString::from("ecr-broker healthcheck")).chain(args);
    let args = match <Args as clap::Parser>::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    let (tx, rx) = mpsc::channel();
    let socket = args.socket.clone();
    std::thread::spawn(move || {
        let _ = tx.send(probe(&socket, timeout));
    });
    let result = rx.recv_timeout(timeout).unwrap_or_else(|_| Err(format!("no answer within {}s", args.timeout)));
    match result {
        Ok(()) => {
            println!("ecr-broker healthcheck: {}: ok", args.socket.display());
            0
        }
        Err(e) => {
            eprintln!("ecr-broker healthcheck: {}: {e}", args.socket.display());
            1
        }
    }
}

fn probe(socket: &Path, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    let mut s = UnixStream::connect(socket).map_err(|e| format!("cannot connect ({e})"))?;
    let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).and_then(|_| s.set_write_timeout(Some(left))).map_err(|e| e.to_string())?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: ecr-broker\r\nConnection: close\r\n\r\n").map_err(|e| format!("cannot send ({e})"))?;
    let mut answer = Vec::new();
    let mut limited = (&mut s).take(MAX_ANSWER_BYTES);
    // Read until the status line is complete (or the peer closes).
    let mut buf = [0u8; 512];
    while !answer.contains(&b'\n') {
        match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("no answer ({e})")),
        }
    }
    let line = String::from_utf8_lossy(answer.split(|b| *b == b'\n').next().unwrap_or_default()).trim_end().to_string();
    let status = line.split(' ').nth(1).unwrap_or("");
    if line.starts_with("HTTP/1.") && status == "200" {
        Ok(())
    } else if line.is_empty() {
        Err("closed without an answer".into())
    } else {
        let shown: String = line.chars().filter(|c| !c.is_control()).take(80).collect();
        Err(format!("answered {shown:?}, not 200"))
    }
}
