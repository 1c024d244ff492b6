//! The refresh policy, as pure functions of their inputs (the random number is passed in as
//! `u` in [0, 1)): when a held token is refreshed, how long a slot backs off after a failure,
//! when a slot counts as in use, and when the refresher must next look at a slot. The rule
//! for whether a token may be handed out at all is [`ecr_cred::token::Token::is_valid`].
//! Every number is a field of [`Policy::CURRENT`].

use ecr_cred::aws::FetchError;
use ecr_cred::token::Token;

/// The numbers of the refresh policy. [`Policy::CURRENT`] is what the broker uses; the fleet
/// simulation (`bench/fleet.sh`, report in docs/fleet.md) chose them, and compares them with
/// [`Policy::BEFORE_FLEET_SIMULATION`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The refresh point is spread over this share of the token's last quarter, from its start.
    pub refresh_spread: f64,
    /// Back-off after a transient failure (5xx, timeouts, unreachable) with no valid token:
    /// first delay and cap, doubling in between, shortened by up to [`Policy::jitter`].
    pub transient: (f64, f64),
    /// Back-off after throttling with no valid token: first window and cap, doubling.
    pub throttled: (f64, f64),
    /// Throttled retries wait a uniform point of the whole window ("full jitter"), so a fleet
    /// throttled together spreads its retries over the window instead of its last half.
    pub throttled_full_jitter: bool,
    /// Back-off after a permanent failure (credentials, permissions, configuration).
    pub permanent: (f64, f64),
    /// A back-off is shortened by up to this share at random, so slots failing together do
    /// not retry together.
    pub jitter: f64,
    /// While a valid token is held, a transient or throttled failure backs off from this
    /// first delay, doubling, up to the token's remaining validity divided by
    /// [`Policy::held_retries`] (never below the first delay): few calls during a long outage,
    /// and still several chances before the token expires. `None`: by kind, as without a token.
    pub held_first: Option<f64>,
    pub held_retries: f64,
}

impl Policy {
    /// The broker's policy. Against the fleet simulation's goals (docs/fleet.md):
    /// - refresh points end at 82% of a token's life (for 12 h tokens: 9 h to 9 h 50 min), so
    ///   more than 2 h 9 min of validity is left when a refresh starts: a 2-hour outage never
    ///   lets a token in use expire;
    /// - throttled slots without a token retry at a uniform point of a 30 s window, doubling
    ///   to 480 s: 10,000 nodes booting together spread their retries as they learn how many
    ///   they are, instead of all retrying within a minute, and all hold a token within the
    ///   900 s goal, while a small fleet is not made to wait minutes;
    /// - slots holding a token retry from 30 s up to a sixth of the validity left: a 2-hour
    ///   outage costs each refreshing node a few calls, not one a minute.
    pub const CURRENT: Policy = Policy {
        refresh_spread: 0.28,
        transient: (1.0, 60.0),
        throttled: (30.0, 480.0),
        throttled_full_jitter: true,
        permanent: (60.0, 900.0),
        jitter: 0.5,
        held_first: Some(30.0),
        held_retries: 6.0,
    };

    /// The policy before the fleet simulation, kept only to compare with (`--policy before`
    /// in daemon/examples/fleet.rs): refresh over 75-85% of the life, every non-permanent
    /// failure 1 s doubling to 60 s.
    pub const BEFORE_FLEET_SIMULATION: Policy = Policy {
        refresh_spread: 0.4,
        transient: (1.0, 60.0),
        throttled: (1.0, 60.0),
        throttled_full_jitter: false,
        permanent: (60.0, 900.0),
        jitter: 0.5,
        held_first: None,
        held_retries: 6.0,
    };

    /// When the refresher replaces `token`: a point in its last quarter (from
    /// [`Token::refresh_at`]), spread over the first [`Policy::refresh_spread`] of it by `u`.
    pub fn refresh_at(&self, token: &Token, u: f64) -> i64 {
        let quarter = (token.expires_at - token.refresh_at()).max(0) as f64;
        token.refresh_at() + (quarter * self.refresh_spread * u) as i64
    }

    /// Seconds to wait after the `failures`-th failure in a row of `kind`; `valid_for_secs`
    /// is how long the token still held stays valid (`None` without one), `u` in [0, 1).
    pub fn backoff_secs(&self, failures: u32, kind: ErrorKind, valid_for_secs: Option<f64>, u: f64) -> f64 {
        let doubling = |first: f64, max: f64| (first * 2f64.powi(failures.clamp(1, 16) as i32 - 1)).min(max);
        if let (Some(first), Some(valid_for), false) = (self.held_first, valid_for_secs, kind == ErrorKind::Permanent) {
            let cap = (valid_for / self.held_retries).max(first);
            return doubling(first, cap) * (1.0 - self.jitter * u);
        }
        let ((first, max), full) = match kind {
            ErrorKind::Transient => (self.transient, false),
            ErrorKind::Throttled => (self.throttled, self.throttled_full_jitter),
            ErrorKind::Permanent => (self.permanent, false),
        };
        let delay = doubling(first, max);
        if full {
            // A uniform point of the window, at least a second.
            (delay * (1.0 - u)).max(1.0)
        } else {
            delay * (1.0 - self.jitter * u)
        }
    }
}

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

    const NOW: Policy = Policy::CURRENT;
    const BEFORE: Policy = Policy::BEFORE_FLEET_SIMULATION;

    #[test]
    fn a_12_hour_token_is_refreshed_between_9_h_and_9_h_50_min_leaving_over_2_hours() {
        let t = token(43_200);
        assert_eq!(NOW.refresh_at(&t, 0.0), 32_400);
        assert_eq!(NOW.refresh_at(&t, 0.5), 32_400 + 1_512);
        assert_eq!(NOW.refresh_at(&t, 0.999_999), 32_400 + 3_023);
        assert!(t.expires_at - NOW.refresh_at(&t, 0.999_999) > 2 * 3600 + 9 * 60, "a 2-hour outage fits after the last refresh point");
        assert_eq!(BEFORE.refresh_at(&t, 0.999_999), 32_400 + 4_319, "before: the first 40% of the last quarter");
    }

    #[test]
    fn transient_failures_without_a_token_back_off_from_1_s_doubling_to_a_minute() {
        let kind = ErrorKind::Transient;
        assert_eq!(NOW.backoff_secs(1, kind, None, 0.0), 1.0);
        assert_eq!(NOW.backoff_secs(2, kind, None, 0.0), 2.0);
        assert_eq!(NOW.backoff_secs(7, kind, None, 0.0), 60.0);
        assert_eq!(NOW.backoff_secs(40, kind, None, 0.0), 60.0);
        assert_eq!(NOW.backoff_secs(1, kind, None, 1.0), 0.5, "jitter shortens by up to half");
        assert_eq!(NOW.backoff_secs(0, kind, None, 0.0), 1.0, "failure 0 counts as the first");
    }

    #[test]
    fn throttling_without_a_token_waits_a_uniform_point_of_a_window_from_30_s_to_8_minutes() {
        let kind = ErrorKind::Throttled;
        assert_eq!(NOW.backoff_secs(1, kind, None, 0.0), 30.0);
        assert_eq!(NOW.backoff_secs(1, kind, None, 0.5), 15.0, "full jitter: anywhere in the window");
        assert_eq!(NOW.backoff_secs(1, kind, None, 0.999_999), 1.0, "at least a second");
        assert_eq!(NOW.backoff_secs(2, kind, None, 0.0), 60.0);
        assert_eq!(NOW.backoff_secs(5, kind, None, 0.0), 480.0);
        assert_eq!(NOW.backoff_secs(40, kind, None, 0.25), 360.0);
        assert_eq!(BEFORE.backoff_secs(1, kind, None, 0.0), 1.0, "before: like transient failures");
        assert_eq!(BEFORE.backoff_secs(40, kind, None, 1.0), 30.0);
    }

    #[test]
    fn holding_a_token_retries_from_30_s_up_to_a_sixth_of_its_remaining_validity() {
        let two_hours = Some(7_200.0);
        for kind in [ErrorKind::Transient, ErrorKind::Throttled] {
            assert_eq!(NOW.backoff_secs(1, kind, two_hours, 0.0), 30.0);
            assert_eq!(NOW.backoff_secs(3, kind, two_hours, 0.0), 120.0);
            assert_eq!(NOW.backoff_secs(6, kind, two_hours, 0.0), 960.0);
            assert_eq!(NOW.backoff_secs(7, kind, two_hours, 0.0), 1_200.0, "a sixth of 2 hours");
            assert_eq!(NOW.backoff_secs(7, kind, two_hours, 1.0), 600.0);
            assert_eq!(NOW.backoff_secs(9, kind, Some(60.0), 0.0), 30.0, "never below the first delay");
            assert_eq!(BEFORE.backoff_secs(7, kind, two_hours, 0.0), 60.0, "before: the kind's own back-off");
        }
        assert_eq!(NOW.backoff_secs(1, ErrorKind::Permanent, two_hours, 0.0), 60.0, "permanent failures keep their own");
    }

    #[test]
    fn permanent_failures_back_off_from_a_minute_to_15_minutes() {
        assert_eq!(NOW.backoff_secs(1, ErrorKind::Permanent, None, 0.0), 60.0);
        assert_eq!(NOW.backoff_secs(4, ErrorKind::Permanent, None, 0.0), 480.0);
        assert_eq!(NOW.backoff_secs(5, ErrorKind::Permanent, None, 0.0), 900.0);
        assert_eq!(NOW.backoff_secs(40, ErrorKind::Permanent, None, 0.5), 675.0);
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
