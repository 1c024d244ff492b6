//! The helper's `get` / `store` / `erase` input handling, at library level.
//!
//! The protocol module lives in the `docker-credential-ecr` binary crate and cannot be linked
//! into a fuzz target, so this target re-does its steps with the library pieces it uses
//! (helper/src/protocol.rs): the 64 KiB limit, UTF-8 check, `trim()`, `RegistryHost::parse`
//! for get/erase, and serde_json of a store request `{"ServerURL": ..}` followed by the same
//! parse. The first byte picks the action. If protocol.rs changes, mirror it here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

#[path = "common.rs"]
mod common;

/// As helper/src/protocol.rs `MAX_INPUT`.
const MAX_INPUT: usize = 64 * 1024;

/// As helper/src/protocol.rs `StoreRequest` (unknown fields such as Username/Secret ignored).
#[derive(Deserialize)]
struct StoreRequest {
    #[serde(rename = "ServerURL")]
    server_url: String,
}

fuzz_target!(|data: &[u8]| {
    let Some((&action, input)) = data.split_first() else { return };
    if input.len() > MAX_INPUT {
        return;
    }
    let Ok(text) = std::str::from_utf8(input) else { return };
    match action % 3 {
        // get and erase: the trimmed server URL.
        0 | 1 => {
            let url = text.trim();
            if url.is_empty() {
                return;
            }
            if let Some(r) = common::parse_and_check(url) {
                // What `get` prints: the answer must serialize and parse back.
                let answer = serde_json::json!({"ServerURL": url, "Username": "AWS", "Secret": "x"}).to_string();
                let back: serde_json::Value = serde_json::from_str(&answer).expect("get answer is JSON");
                assert_eq!(back["ServerURL"], url);
                assert_eq!(common::parse_and_check(back["ServerURL"].as_str().unwrap()).map(|b| b.host), Some(r.host));
            }
        }
        // store: JSON credentials, then the same registry check on ServerURL.
        _ => {
            if let Ok(req) = serde_json::from_str::<StoreRequest>(text.trim()) {
                common::parse_and_check(&req.server_url);
            }
        }
    }
});
