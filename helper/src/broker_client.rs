//! Asking the local `ecr-broker` for a token, on the helper's blocking path (no async runtime).
//!
//! An absent broker costs one failed `connect`, and the helper fetches for itself. So does a
//! broken one (garbage, a 5xx that is the broker's own fault) and one whose socket another
//! user could have planted (see [`broker::check_socket_owner`]), each with a warning.
//! A healthy broker is waited for, within [`DEADLINE`] in total: when AWS is slow it is
//! already making the one upstream call for everyone, and racing it with our own call would
//! only add to the load. A refusal by the broker's policy, or the broker's report that AWS
//! failed, is final: the helper reports it instead of quietly fetching with the user's own
//! credentials.

use ecr_cred::broker::{self, ClientError, ErrorResponse, TokenResponse};
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::Token;
use std::time::Duration;

/// The longest the helper waits for the broker's answer, in total. The broker's own AWS
/// call gives up within 12 s (4 s per attempt), so a healthy broker always answers in time,
/// with a token or with AWS's error.
pub const DEADLINE: Duration = Duration::from_secs(15);

pub enum Answer {
    Token(Token),
    /// The broker's policy says no: reported, not bypassed.
    Refused(String),
    /// The broker is there and working, but could not get a token (AWS failed or was too
    /// slow): reported, not raced with a fetch of our own.
    Failed(String),
    /// No broker, or not a usable one: fetch in-process.
    Unavailable,
}

pub fn token(registry: &RegistryHost) -> Answer {
    let Some(socket) = broker::default_socket() else { return Answer::Unavailable };
    if let Err(why) = broker::check_socket_owner(&socket) {
        tracing::warn!(socket = %socket.display(), "not asking this ecr-broker: {why}; fetching the token directly");
        return Answer::Unavailable;
    }
    let path = format!("/v1/token?registry={}", broker::encode_query(&registry.host));
    let response = match broker::get(&socket, &path, DEADLINE) {
        Ok(r) => r,
        Err(ClientError::Absent) => return Answer::Unavailable,
        Err(ClientError::TooSlow(d)) => {
            return Answer::Failed(format!("no answer from the ecr-broker at {} within {} s", socket.display(), d.as_secs()))
        }
        Err(ClientError::Unhealthy(why)) => {
            tracing::warn!(socket = %socket.display(), "ecr-broker did not answer properly ({why}); fetching the token directly");
            return Answer::Unavailable;
        }
    };
    match response.status {
        200 => match serde_json::from_slice::<TokenResponse>(&response.body) {
            Ok(t) => {
                tracing::debug!(registry = %registry, identity = %t.identity, "token from ecr-broker");
                Answer::Token(Token {
                    username: t.username,
                    password: t.password,
                    proxy_endpoint: None,
                    fetched_at: t.fetched_at,
                    expires_at: t.expires_at,
                })
            }
            Err(_) => {
                tracing::warn!("ecr-broker sent a token answer that is not valid; fetching the token directly");
                Answer::Unavailable
            }
        },
        403 => Answer::Refused(reason(&response.body)),
        // The broker works; AWS failed it (the reason names how). Our own call would fail
        // the same way, or pile onto a throttled or slow endpoint.
        502 => Answer::Failed(reason(&response.body)),
        status => {
            tracing::warn!(status, "ecr-broker could not give a token ({}); fetching it directly", reason(&response.body));
            Answer::Unavailable
        }
    }
}

fn reason(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorResponse>(body).map(|e| e.reason).unwrap_or_else(|_| "no reason given".into())
}
