//! Asking the local `ecr-broker` for a token, on the helper's blocking path (no async runtime).
//!
//! An absent broker costs one failed `connect`. A broker that does not answer in time, or
//! answers nonsense, is skipped with a warning. A refusal by the broker's policy is final:
//! the helper reports it instead of quietly fetching with the user's own credentials.

use ecr_cred::broker::{self, ClientError, ErrorResponse, TokenResponse};
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::Token;
use std::time::Duration;

/// How long to wait for the broker's answer. A cold fetch through the broker is one AWS
/// call; longer than this and the broker is treated as unhealthy.
const TIMEOUT: Duration = Duration::from_secs(5);

pub enum Answer {
    Token(Token),
    /// The broker's policy says no: reported, not bypassed.
    Refused(String),
    /// No broker, or not a usable one: fetch in-process.
    Unavailable,
}

pub fn token(registry: &RegistryHost) -> Answer {
    let Some(socket) = broker::default_socket() else { return Answer::Unavailable };
    let path = format!("/v1/token?registry={}", broker::encode_query(&registry.host));
    let response = match broker::get(&socket, &path, TIMEOUT) {
        Ok(r) => r,
        Err(ClientError::Absent) => return Answer::Unavailable,
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
        status => {
            tracing::warn!(status, "ecr-broker could not give a token ({}); fetching it directly", reason(&response.body));
            Answer::Unavailable
        }
    }
}

fn reason(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorResponse>(body).map(|e| e.reason).unwrap_or_else(|_| "no reason given".into())
}
