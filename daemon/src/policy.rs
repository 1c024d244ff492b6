//! The refresh policy, as pure functions of their inputs (the random number is passed in as
//! `u` in [0, 1)): when a held token is refreshed, how long a slot backs off after a failure,
//! when a slot counts as in use, and when the refresher must next look at a slot. The rule
//! for whether a token may be handed out at all is [`ecr_cred::token::Token::is_valid`].
//! Every number is a named constant here.

use ecr_cred::aws::FetchError;
use ecr_cred::token::Token;

/// First retry delay after a transient failure (5xx, timeouts, unreachable), and the cap.
pub const TRANSIENT_BACKOFF_FIRST_SECS: f64 = 1.0;
pub const TRANSIENT_BACKOFF_MAX_SECS: f64 = 60.0;
/// The same after throttling (today like transient failures).
pub const THROTTLED_BACKOFF_FIRST_SECS: f64 = 1.0;
pub const THROTTLED_BACKOFF_MAX_SECS: f64 = 60.0;
/// The same after a permanent failure (credentials, permissions, configuration).
pub const PERMANENT_BACKOFF_FIRST_SECS: f64 = 60.0;
pub const PERMANENT_BACKOFF_MAX_SECS: f64 = 900.0;
/// A back-off is shortened by up to this share at random, so slots failing together do not
/// retry together.
pub const BACKOFF_JITTER: f64 = 0.5;
/// The refresh point is spread over this share of the token's last quarter (from its start).
pub const REFRESH_SPREAD: f64 = 0.4;
/// A slot counts as in use (kept refreshed) this long after its last request.
pub const IN_USE_SECS: f64 = 12.0 * 3600.0;

/// What kind of failure a fetch ended in; decides the back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth retrying soon: server faults, timeouts, an unreachable endpoint.
    Transient,
    /// AWS throttled the call (ThrottlingException and kin).
    Throttled,
    /// Retrying soon will not fix it: credentials, permissions, configuration.
    Permanent,
}

impl ErrorKind {
    pub fn of(e: &FetchError) -> ErrorKind {
        if e.is_throttling() {
            ErrorKind::Throttled
        } else if e.is_transient() {
            ErrorKind::Transient
        } else {
            ErrorKind::Permanent
        }
    }

    /// The name `/v1/status` shows (`error_kind`): throttling is reported as `transient`.
    pub fn status_name(self) -> &'static str {
        match self {
            ErrorKind::Transient | ErrorKind::Throttled => "transient",
            ErrorKind::Permanent => "permanent",
        }
    }
}

/// When the refresher replaces `token`: a point in its last quarter (from
/// [`Token::refresh_at`]), spread over the first [`REFRESH_SPREAD`] of it by `u`.
pub fn refresh_at(token: &Token, u: f64) -> i64 {
    let quarter = (token.expires_at - token.refresh_at()).max(0) as f64;
    token.refresh_at() + (quarter * REFRESH_SPREAD * u) as i64
}

/// Seconds to wait after the `failures`-th failure in a row of `kind`: doubling from the
/// kind's first delay to its cap, shortened by up to [`BACKOFF_JITTER`] by `u`.
/// `valid_for_secs` (how long the token still held stays valid; `None` without one) is not
/// used yet.
pub fn backoff_secs(failures: u32, kind: ErrorKind, valid_for_secs: Option<f64>, u: f64) -> f64 {
    let _ = valid_for_secs;
    let (first, max) = match kind {
        ErrorKind::Transient => (TRANSIENT_BACKOFF_FIRST_SECS, TRANSIENT_BACKOFF_MAX_SECS),
        ErrorKind::Throttled => (THROTTLED_BACKOFF_FIRST_SECS, THROTTLED_BACKOFF_MAX_SECS),
        ErrorKind::Permanent => (PERMANENT_BACKOFF_FIRST_SECS, PERMANENT_BACKOFF_MAX_SECS),
    };
    let delay = (first * 2f64.powi(failures.clamp(1, 16) as i32 - 1)).min(max);
    delay * (1.0 - BACKOFF_JITTER * u)
}

/// Is a slot last asked for at `last_used` still in use at `now`? (`last_used` 0: never.)
pub fn in_use(last_used: f64, now: f64) -> bool {
    last_used > 0.0 && now - last_used < IN_USE_SECS
}

/// What [`next_due`] looks at in a slot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Schedule {
    /// Configured `prefetch`: kept fetched whether used or not.
    pub prefetch: bool,
    pub last_used: f64,
    /// A refresh is running already.
    pub refreshing: bool,
    /// The refresh point of the valid token held, if any.
    pub valid_token_refresh_at: Option<f64>,
    /// A registry to fetch for is known.
    pub has_registry: bool,
    /// No upstream call before this (0: none).
    pub backoff_until: f64,
}

/// When the refresher must next look at a slot, if ever: the refresh point of its valid
/// token, or the end of its back-off, while it is in use or prefetched. A slot with no valid
/// token is fetched in the background only when prefetched (otherwise only when asked for).
pub fn next_due(s: &Schedule, now: f64) -> Option<f64> {
    if !(s.prefetch || in_use(s.last_used, now)) || s.refreshing {
        return None;
    }
    let when = match s.valid_token_refresh_at {
        Some(at) => at,
        None if s.has_registry && s.prefetch => now,
        None => return None,
    };
    Some(when.max(s.backoff_until))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(life: i64) -> Token {
        Token { username: "AWS".into(), password: "p".into(), proxy_endpoint: None, fetched_at: 0, expires_at: life }
    }

    #[test]
    fn the_refresh_point_spans_the_first_40_percent_of_the_last_quarter() {
        let t = token(43_200);
        assert_eq!(refresh_at(&t, 0.0), 32_400);
        assert_eq!(refresh_at(&t, 0.5), 32_400 + 2_160);
        assert_eq!(refresh_at(&t, 0.999_999), 32_400 + 4_319);
    }

    #[test]
    fn transient_and_throttled_back_off_from_1_s_doubling_to_a_minute() {
        for kind in [ErrorKind::Transient, ErrorKind::Throttled] {
            assert_eq!(backoff_secs(1, kind, None, 0.0), 1.0);
            assert_eq!(backoff_secs(2, kind, None, 0.0), 2.0);
            assert_eq!(backoff_secs(6, kind, Some(100.0), 0.0), 32.0);
            assert_eq!(backoff_secs(7, kind, None, 0.0), 60.0);
            assert_eq!(backoff_secs(40, kind, None, 0.0), 60.0);
            assert_eq!(backoff_secs(1, kind, None, 1.0), 0.5, "jitter shortens by up to half");
            assert_eq!(backoff_secs(0, kind, None, 0.0), 1.0, "failure 0 counts as the first");
        }
    }

    #[test]
    fn permanent_failures_back_off_from_a_minute_to_15_minutes() {
        assert_eq!(backoff_secs(1, ErrorKind::Permanent, None, 0.0), 60.0);
        assert_eq!(backoff_secs(4, ErrorKind::Permanent, None, 0.0), 480.0);
        assert_eq!(backoff_secs(5, ErrorKind::Permanent, None, 0.0), 900.0);
        assert_eq!(backoff_secs(40, ErrorKind::Permanent, None, 0.5), 675.0);
    }

    #[test]
    fn a_slot_is_in_use_for_12_hours_after_its_last_request() {
        assert!(in_use(1000.0, 1000.0 + IN_USE_SECS - 1.0));
        assert!(!in_use(1000.0, 1000.0 + IN_USE_SECS));
        assert!(!in_use(0.0, 10.0), "never used");
    }

    #[test]
    fn next_due_is_the_refresh_point_or_the_end_of_the_back_off_while_in_use_or_prefetched() {
        let now = 100_000.0;
        let used = Schedule { last_used: now - 10.0, valid_token_refresh_at: Some(now + 50.0), has_registry: true, ..Default::default() };
        assert_eq!(next_due(&used, now), Some(now + 50.0));
        assert_eq!(next_due(&Schedule { backoff_until: now + 70.0, ..used }, now), Some(now + 70.0));
        assert_eq!(next_due(&Schedule { refreshing: true, ..used }, now), None, "one refresh at a time");
        let idle = Schedule { last_used: now - IN_USE_SECS - 1.0, ..used };
        assert_eq!(next_due(&idle, now), None, "an idle slot is left to expire");
        assert_eq!(next_due(&Schedule { prefetch: true, ..idle }, now), Some(now + 50.0));
        let empty = Schedule { valid_token_refresh_at: None, ..used };
        assert_eq!(next_due(&empty, now), None, "without a token only prefetched slots are fetched");
        assert_eq!(next_due(&Schedule { prefetch: true, ..empty }, now), Some(now));
        assert_eq!(next_due(&Schedule { prefetch: true, has_registry: false, ..empty }, now), None);
    }
}
