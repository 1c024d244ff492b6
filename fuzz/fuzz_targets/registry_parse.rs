//! `RegistryHost::parse` on arbitrary input: valid UTF-8 as is, any bytes lossily; it must
//! never panic, and whatever it accepts must satisfy the invariants in common.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        common::parse_and_check(s);
        // Surrounding white space and a scheme never change the answer's host.
        if let Some(r) = ecr_cred::RegistryHost::parse(s) {
            let wrapped = format!(" https://{}/ \n", s.trim());
            if let Some(w) = ecr_cred::RegistryHost::parse(&wrapped) {
                assert_eq!(w.host, r.host, "{s:?} vs {wrapped:?}");
            }
        }
    }
    let lossy = String::from_utf8_lossy(data);
    common::parse_and_check(&lossy);
});
