//! Tokens: an ECR authorization token decoded into user name and password, with its lifetime,
//! and the one rule that says whether a token may still be handed out.

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A decoded ECR authorization token. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Always `AWS` for ECR, but taken from the token rather than assumed.
    pub username: String,
    pub password: String,
    /// The registry endpoint ECR named in its answer (informational).
    #[serde(default)]
    pub proxy_endpoint: Option<String>,
    /// Unix seconds when we received it.
    pub fetched_at: i64,
    /// Unix seconds when ECR says it stops working.
    pub expires_at: i64,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("proxy_endpoint", &self.proxy_endpoint)
            .field("fetched_at", &self.fetched_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why an authorization token from ECR could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    NotBase64,
    NoColon,
    Empty,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never include the token itself: it is the secret.
        f.write_str(match self {
            TokenError::NotBase64 => "ECR returned an authorization token that is not valid base64",
            TokenError::NoColon => "ECR returned an authorization token without the `user:password` form",
            TokenError::Empty => "ECR returned an empty authorization token",
        })
    }
}

impl std::error::Error for TokenError {}

/// Part of a token's life, counted from the end, in which it is no longer handed out and a
/// new one is fetched instead: the last quarter. A 12 h token is used for 9 h.
pub const REFRESH_FRACTION: f64 = 0.25;

/// Never hand out a token with less than this many seconds left: the margin for the time a
/// client needs to use it. Short-lived tokens (tests) get 5% of their life instead.
pub const MIN_REMAINING_SECS: i64 = 60;

impl Token {
    /// Decode ECR's `base64("AWS:<password>")` answer.
    pub fn from_authorization(b64: &str, proxy_endpoint: Option<String>, fetched_at: i64, expires_at: i64) -> Result<Token, TokenError> {
        if b64.trim().is_empty() {
            return Err(TokenError::Empty);
        }
        let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| TokenError::NotBase64)?;
        let text = String::from_utf8(raw).map_err(|_| TokenError::NotBase64)?;
        let (user, pass) = text.split_once(':').ok_or(TokenError::NoColon)?;
        if user.is_empty() || pass.is_empty() {
            return Err(TokenError::Empty);
        }
        Ok(Token { username: user.to_string(), password: pass.to_string(), proxy_endpoint, fetched_at, expires_at })
    }

    /// Seconds of validity left at `now`, negative once expired.
    pub fn remaining(&self, now: i64) -> i64 {
        self.expires_at - now
    }

    fn lifetime(&self) -> i64 {
        (self.expires_at - self.fetched_at).max(0)
    }

    /// Seconds before expiry from which the token is no longer handed out at all:
    /// [`MIN_REMAINING_SECS`], or 5% of the lifetime if that is less.
    pub fn margin(&self) -> i64 {
        (self.lifetime() / 20).min(MIN_REMAINING_SECS)
    }

    /// The moment from which the token should be replaced: the start of the last quarter of
    /// its life. That is never later than the margin before expiry, since the margin is at most
    /// 5% of the life (a unit test checks this for every lifetime up to 13 hours).
    pub fn refresh_at(&self) -> i64 {
        self.expires_at - (self.lifetime() as f64 * REFRESH_FRACTION) as i64
    }

    /// May this token be handed out at `now` by a cache? Only before [`Token::refresh_at`], and
    /// only if the clock has not gone backwards past when it was fetched by more than a minute
    /// (which would make its age meaningless).
    pub fn is_fresh(&self, now: i64) -> bool {
        now < self.refresh_at() && now + 60 >= self.fetched_at
    }

    /// Still accepted by ECR at `now`, with the margin to spare: the rule for serving a token
    /// while a refresh fails. An expired token is never served.
    pub fn is_valid(&self, now: i64) -> bool {
        self.remaining(now) > self.margin()
    }

    /// Did the token arrive already expired (clock skew, a test server)? Such a token is
    /// returned to the caller once but never cached.
    pub fn expired_on_arrival(&self) -> bool {
        self.expires_at <= self.fetched_at
    }
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn decodes_user_and_password() {
        let t = Token::from_authorization(&b64("AWS:secret:with:colons"), None, 100, 200).unwrap();
        assert_eq!(t.username, "AWS");
        assert_eq!(t.password, "secret:with:colons");
    }

    #[test]
    fn rejects_malformed_tokens_without_echoing_them() {
        assert_eq!(Token::from_authorization("%%%notbase64", None, 0, 1), Err(TokenError::NotBase64));
        assert_eq!(Token::from_authorization(&b64("nocolon"), None, 0, 1), Err(TokenError::NoColon));
        assert_eq!(Token::from_authorization(&b64("AWS:"), None, 0, 1), Err(TokenError::Empty));
        assert_eq!(Token::from_authorization("", None, 0, 1), Err(TokenError::Empty));
        let msg = Token::from_authorization(&b64("hunter2-no-colon"), None, 0, 1).unwrap_err().to_string();
        assert!(!msg.contains("hunter2"));
    }

    #[test]
    fn fresh_for_the_first_three_quarters_of_its_life() {
        let t = Token::from_authorization(&b64("AWS:p"), None, 0, 43_200).unwrap();
        assert!(t.is_fresh(0));
        assert!(t.is_fresh(32_399));
        assert!(!t.is_fresh(32_400), "the last quarter is refresh time");
        assert!(t.is_valid(32_400), "but still valid for a caller while a refresh fails");
        assert!(!t.is_valid(43_200 - MIN_REMAINING_SECS), "never valid in the last minute");
        assert!(!t.is_valid(50_000));
    }

    #[test]
    fn short_lived_tokens_get_a_proportional_margin() {
        let t = Token::from_authorization(&b64("AWS:p"), None, 0, 20).unwrap();
        assert_eq!(t.margin(), 1);
        assert_eq!(t.refresh_at(), 15);
        assert!(t.is_valid(18));
        assert!(!t.is_valid(19));
    }

    #[test]
    fn a_clock_that_jumps_back_before_the_fetch_is_not_trusted() {
        let t = Token::from_authorization(&b64("AWS:p"), None, 10_000, 53_200).unwrap();
        assert!(t.is_fresh(10_000));
        assert!(!t.is_fresh(9_000));
    }

    #[test]
    fn expired_on_arrival_is_detected() {
        let t = Token::from_authorization(&b64("AWS:p"), None, 1_700_000_000, 1_420_070_400).unwrap();
        assert!(t.expired_on_arrival());
        assert!(!t.is_fresh(1_700_000_000));
    }

    #[test]
    fn debug_hides_the_password() {
        let t = Token::from_authorization(&b64("AWS:topsecretvalue"), None, 0, 1).unwrap();
        assert!(!format!("{t:?}").contains("topsecretvalue"));
    }

    /// A realistic moment (2023-11-14) so arithmetic on `fetched_at` is not hidden by zeros.
    const T0: i64 = 1_700_000_000;

    #[test]
    fn a_12_hour_token_fetched_now_is_fresh_for_9_hours_and_valid_until_its_last_minute() {
        let t = Token::from_authorization(&b64("AWS:p"), None, T0, T0 + 43_200).unwrap();
        assert_eq!(t.remaining(T0), 43_200);
        assert_eq!(t.remaining(T0 + 43_201), -1);
        assert_eq!(t.margin(), MIN_REMAINING_SECS);
        assert_eq!(t.refresh_at(), T0 + 32_400);
        assert!(t.is_fresh(T0));
        assert!(t.is_fresh(T0 + 32_399));
        assert!(!t.is_fresh(T0 + 32_400));
        assert!(t.is_valid(T0 + 43_200 - 61));
        assert!(!t.is_valid(T0 + 43_200 - 60));
        assert!(!t.expired_on_arrival());
    }

    #[test]
    fn a_clock_up_to_a_minute_behind_the_fetch_is_tolerated_and_more_is_not() {
        let t = Token::from_authorization(&b64("AWS:p"), None, T0, T0 + 43_200).unwrap();
        assert!(t.is_fresh(T0 - 60));
        assert!(!t.is_fresh(T0 - 61));
    }

    #[test]
    fn a_short_token_fetched_now_uses_5_percent_margin_and_refreshes_at_three_quarters() {
        let t = Token::from_authorization(&b64("AWS:p"), None, T0, T0 + 400).unwrap();
        assert_eq!(t.margin(), 20);
        assert_eq!(t.refresh_at(), T0 + 300);
        assert!(t.is_valid(T0 + 379));
        assert!(!t.is_valid(T0 + 380));
        let tiny = Token::from_authorization(&b64("AWS:p"), None, T0, T0 + 4).unwrap();
        assert_eq!(tiny.margin(), 0);
        assert_eq!(tiny.refresh_at(), T0 + 3);
    }

    #[test]
    fn a_token_expiring_at_or_before_its_fetch_is_expired_on_arrival_and_has_no_life() {
        let same = Token::from_authorization(&b64("AWS:p"), None, T0, T0).unwrap();
        assert!(same.expired_on_arrival());
        let later = Token::from_authorization(&b64("AWS:p"), None, T0, T0 + 1).unwrap();
        assert!(!later.expired_on_arrival());
        let before = Token::from_authorization(&b64("AWS:p"), None, T0, T0 - 3600).unwrap();
        assert_eq!(before.margin(), 0, "a negative lifetime counts as none");
        assert_eq!(before.refresh_at(), T0 - 3600);
        assert!(!before.is_valid(T0));
    }

    #[test]
    fn empty_user_or_password_or_blank_answer_is_an_empty_token() {
        assert_eq!(Token::from_authorization(&b64(":password"), None, T0, T0 + 1), Err(TokenError::Empty));
        assert_eq!(Token::from_authorization(&b64(":"), None, T0, T0 + 1), Err(TokenError::Empty));
        assert_eq!(Token::from_authorization(" \n", None, T0, T0 + 1), Err(TokenError::Empty));
    }

    #[test]
    fn a_token_that_is_not_utf8_is_reported_as_not_base64() {
        let raw = base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'p']);
        assert_eq!(Token::from_authorization(&raw, None, T0, T0 + 1), Err(TokenError::NotBase64));
    }

    #[test]
    fn surrounding_white_space_in_the_answer_is_ignored_and_fields_are_kept() {
        let t = Token::from_authorization(&format!(" {}\n", b64("AWS:pw")), Some("https://x".into()), T0, T0 + 7).unwrap();
        assert_eq!(t.password, "pw");
        assert_eq!(t.proxy_endpoint.as_deref(), Some("https://x"));
        assert_eq!((t.fetched_at, t.expires_at), (T0, T0 + 7));
    }

    #[test]
    fn token_errors_say_what_is_wrong_with_the_answer() {
        let msgs: Vec<String> = [TokenError::NotBase64, TokenError::NoColon, TokenError::Empty].iter().map(|e| e.to_string()).collect();
        assert!(msgs.iter().all(|m| m.starts_with("ECR returned ")), "{msgs:?}");
        assert!(msgs[0].contains("not valid base64"), "{}", msgs[0]);
        assert!(msgs[1].contains("user:password"), "{}", msgs[1]);
        assert!(msgs[2].contains("empty"), "{}", msgs[2]);
        let err: Box<dyn std::error::Error> = Box::new(TokenError::NoColon);
        assert_eq!(err.to_string(), msgs[1]);
    }

    #[test]
    fn debug_shows_everything_but_the_password() {
        let t = Token::from_authorization(&b64("AWS:topsecretvalue"), Some("https://r".into()), T0, T0 + 43_200).unwrap();
        let shown = format!("{t:?}");
        for part in ["Token", "username: \"AWS\"", "password: \"<redacted>\"", "Some(\"https://r\")", "1700000000", "1700043200"] {
            assert!(shown.contains(part), "{shown} lacks {part}");
        }
        assert!(!shown.contains("topsecretvalue"));
    }

    #[test]
    fn now_unix_is_the_current_time() {
        let system = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let now = now_unix();
        assert!((now - system).abs() <= 1, "now_unix() = {now}, system clock {system}");
    }

    #[test]
    fn refresh_starts_at_the_last_quarter_which_is_never_inside_the_margin() {
        for life in 0..=13 * 3600 {
            let t = Token::from_authorization(&b64("AWS:p"), None, T0, T0 + life).unwrap();
            assert_eq!(t.refresh_at(), T0 + life - life / 4, "life {life}");
            assert!(t.refresh_at() <= t.expires_at - t.margin(), "life {life}: refresh inside the margin");
        }
    }
}
