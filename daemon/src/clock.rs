//! The broker's clock: every "now" of the token store, the refresher and the refresh policy
//! comes from one [`Clock`], so tests and the fleet simulation can run them in virtual time.

/// Unix time in seconds (fractional). `System` reads the wall clock; `Virtual` starts at a
/// given Unix time and follows `tokio::time::Instant`, so `tokio::time::pause()` (and its
/// auto-advance) moves it.
#[derive(Clone, Debug)]
pub enum Clock {
    System,
    Virtual { start_unix: f64, start: tokio::time::Instant },
}

impl Clock {
    /// A virtual clock reading `start_unix` now and moving with tokio's (possibly paused) time.
    pub fn virtual_from(start_unix: f64) -> Clock {
        Clock::Virtual { start_unix, start: tokio::time::Instant::now() }
    }

    /// Unix seconds now, fractional.
    pub fn now(&self) -> f64 {
        match self {
            Clock::System => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
            Clock::Virtual { start_unix, start } => start_unix + start.elapsed().as_secs_f64(),
        }
    }

    /// The longest the refresher sleeps between looks: a minute on the wall clock, so a jump
    /// of the system clock is noticed within a minute; an hour in virtual time, which never
    /// jumps (10,000 simulated brokers waking every simulated minute would be most of a fleet
    /// simulation's work).
    pub fn longest_sleep(&self) -> std::time::Duration {
        match self {
            Clock::System => std::time::Duration::from_secs(60),
            Clock::Virtual { .. } => std::time::Duration::from_secs(3600),
        }
    }

    /// Whole Unix seconds now (what token lifetimes are counted in).
    pub fn now_secs(&self) -> i64 {
        self.now().floor() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_the_wall_clock() {
        let wall = ecr_cred::token::now_unix() as f64;
        assert!((Clock::System.now() - wall).abs() <= 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_virtual_clock_moves_with_paused_tokio_time() {
        let clock = Clock::virtual_from(1_700_000_000.0);
        assert_eq!(clock.now(), 1_700_000_000.0);
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        assert_eq!(clock.now_secs(), 1_700_003_600);
    }
}
