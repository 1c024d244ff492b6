//! The helper's broker client (`ecr_cred::broker`) reading arbitrary bytes as a broker answer.
//!
//! The response parser is private. So:
//!
//! 1. The private parser is reached through the public I/O entry point `broker::get`: a
//!    thread in this process listens on a Unix socket and answers each request with the fuzz
//!    input (then closes), exactly as a broken or hostile broker would. `get` must return
//!    (Ok or Err), never panic or hang.
//! 2. A successful parse's body goes through the wire types the helper decodes:
//!    `TokenResponse`, `ErrorResponse`, `StatusResponse` (serde_json).
//! 3. Query values: `broker::encode_query` of the input must use only form-encoding characters
//!    (unreserved, `+`, `%XX`), and the server's decoder `broker::registry_from_query` must
//!    give the input back; the decoded registry value then goes through `RegistryHost::parse`
//!    as the server does.
#![no_main]

use ecr_cred::broker::{self, ErrorResponse, StatusResponse, TokenResponse};
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[path = "common.rs"]
mod common;

struct FakeBroker {
    socket: PathBuf,
    answers: SyncSender<Vec<u8>>,
}

fn fake_broker() -> &'static Mutex<FakeBroker> {
    static FAKE: OnceLock<Mutex<FakeBroker>> = OnceLock::new();
    FAKE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("broker-http-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let socket = dir.join("broker.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).expect("bind the fake broker socket");
        let (tx, rx): (SyncSender<Vec<u8>>, Receiver<Vec<u8>>) = sync_channel(0);
        std::thread::spawn(move || {
            for answer in rx {
                let Ok((mut conn, _)) = listener.accept() else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                // Read the request head, as a server would, then answer and close.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn.write_all(&answer);
            }
        });
        Mutex::new(FakeBroker { socket, answers: tx })
    })
}

fuzz_target!(|data: &[u8]| {
    // 1. The answer parser, through the client.
    let fake = fake_broker().lock().unwrap();
    fake.answers.send(data.to_vec()).expect("fake broker thread alive");
    let result = broker::get(&fake.socket, "/v1/token?registry=123456789012.dkr.ecr.us-east-1.amazonaws.com", Duration::from_secs(5));
    drop(fake);
    // 2. Whatever body came out, through the wire types.
    let body: &[u8] = match &result {
        Ok(r) => &r.body,
        Err(_) => data,
    };
    if let Ok(t) = serde_json::from_slice::<TokenResponse>(body) {
        // Debug never shows the password.
        let shown = format!("{t:?}");
        let expected = format!("TokenResponse {{ registry: {:?}, identity: {:?}, expires_at: {:?}, .. }}", t.registry, t.identity, t.expires_at);
        assert_eq!(shown, expected, "TokenResponse's Debug shows only registry, identity and expiry");
        let again: TokenResponse = serde_json::from_slice(&serde_json::to_vec(&t).unwrap()).unwrap();
        assert_eq!(again, t);
    }
    if let Ok(e) = serde_json::from_slice::<ErrorResponse>(body) {
        let again: ErrorResponse = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(again, e);
    }
    let _ = serde_json::from_slice::<StatusResponse>(body);

    // 3. Query values: encode, decode, parse.
    if let Ok(value) = std::str::from_utf8(data) {
        // Form encoding: unreserved characters, `+` for a space, `%XX` for every other byte.
        let q = broker::encode_query(value);
        assert!(
            q.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*' | b'+' | b'%')),
            "encode_query({value:?}) = {q:?}"
        );
        // The server's decoder (the wire contract in src/broker.rs) gives the value back,
        // whatever else the query holds.
        let decoded = broker::registry_from_query(&format!("a=b&{}={q}&registry=x", broker::REGISTRY_PARAM)).expect("decodes");
        assert_eq!(decoded, value, "encode_query does not round-trip through registry_from_query");
        assert_eq!(broker::token_path(value), format!("{}?{}={q}", broker::TOKEN_PATH, broker::REGISTRY_PARAM));
        common::parse_and_check(&decoded);
        // What the server gets from a raw (unencoded) query value: `+` is a space, %XX a byte.
        let raw = value.replace('+', " ");
        if let Ok(d) = percent_encoding::percent_decode_str(&raw).decode_utf8() {
            common::parse_and_check(&d);
        }
    }
});
