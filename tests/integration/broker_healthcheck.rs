//! `ecr-broker healthcheck --socket PATH`, the exec probe of the DaemonSet and Helm chart:
//! exit 0 against a running broker; non-zero, within its timeout, when the socket is missing,
//! when a listener never answers, when it answers something else than 200, or when the path
//! is not a socket at all.

use crate::support;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::broker::{broker_bin, Broker};
use support::fake_aws::FakeAws;
use support::{run_command, Run};

fn healthcheck(socket: &Path, extra: &[&str]) -> Run {
    let mut cmd = Command::new(broker_bin());
    cmd.arg("healthcheck").arg("--socket").arg(socket).args(extra).env_clear().env("PATH", "/usr/bin:/bin");
    run_command(cmd, b"", Duration::from_secs(20))
}

#[test]
fn healthcheck_passes_against_a_running_broker_and_fails_once_it_is_gone() {
    let fake = FakeAws::start();
    let mut broker = Broker::start(&fake, "");
    let run = healthcheck(&broker.socket(), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains(": ok"), "{run:#?}");
    assert_eq!(fake.requests().len(), 0, "a health check must not call AWS");

    broker.signal(libc::SIGTERM);
    let run = healthcheck(&broker.socket(), &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("cannot connect"), "{run:#?}");
}

#[test]
fn a_listener_that_never_answers_fails_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    // Accepts, reads, never writes; kept open for the whole test.
    let listener = UnixListener::bind(&path).unwrap();
    let holder = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf);
        std::thread::sleep(Duration::from_secs(8));
    });
    let run = healthcheck(&path, &["--timeout", "1"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.elapsed < Duration::from_secs(4), "took {:?}", run.elapsed);
    assert!(run.stderr.contains("no answer"), "{run:#?}");
    drop(holder);
}

#[test]
fn an_answer_other_than_200_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf);
        let _ = conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    });
    let run = healthcheck(&path, &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("503"), "{run:#?}");
}

#[test]
fn a_path_that_is_not_a_socket_fails_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    support::mkfifo(&fifo);
    let run = healthcheck(&fifo, &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.elapsed < Duration::from_secs(4), "took {:?}", run.elapsed);

    let run = healthcheck(&dir.path().join("missing.sock"), &["--timeout", "0"]);
    assert_eq!(run.code, 2, "a bad --timeout is a usage error: {run:#?}");
}
