//! Rate-limited logging of what callers can cause (refusals, rejected connections, accept
//! errors): at most one line per uid and kind per interval, carrying the count of the events
//! not logged since, so a hostile caller cannot fill the disk through the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most; past this the table starts again (uids are few on a real host).
const MAX_KEYS: usize = 4096;

/// Per (uid, kind): when the last line was written, and how many events were not logged since.
type Seen = HashMap<(u32, &'static str), (Instant, u64)>;

pub struct RateLog {
    interval: Duration,
    seen: Mutex<Seen>,
}

impl RateLog {
    pub fn new(interval: Duration) -> RateLog {
        RateLog { interval, seen: Mutex::new(HashMap::new()) }
    }

    /// Whether to write a line for this event of `kind` from `uid` now: `Some(n)` with the
    /// number of such events suppressed since the last line, or `None` (counted, not logged).
    pub fn allow(&self, uid: u32, kind: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap();
        if seen.len() >= MAX_KEYS && !seen.contains_key(&(uid, kind)) {
            seen.clear();
        }
        match seen.get_mut(&(uid, kind)) {
            Some((at, suppressed)) if now.duration_since(*at) < self.interval => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                let n = *suppressed;
                (*at, *suppressed) = (now, 0);
                Some(n)
            }
            None => {
                seen.insert((uid, kind), (now, 0));
                Some(0)
            }
        }
    }
}

/// " (N more since the last line)" or nothing.
pub fn more(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more like it since the last line)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_uid_and_kind_per_interval_with_a_count() {
        let log = RateLog::new(Duration::from_millis(200));
        assert_eq!(log.allow(1, "refused"), Some(0));
        for _ in 0..99 {
            assert_eq!(log.allow(1, "refused"), None);
        }
        assert_eq!(log.allow(2, "refused"), Some(0), "another uid has its own line");
        assert_eq!(log.allow(1, "closed"), Some(0), "another kind too");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(log.allow(1, "refused"), Some(99));
        assert_eq!(log.allow(1, "refused"), None);
    }
}
