//! The token store, the refresher and `run`'s shutdown, driven in-process through the fetch
//! seam with a scripted fake upstream and tokio's paused time ([`Clock::Virtual`]): single
//! flight, back-off, expired-on-arrival, background refresh, serving through failures, and
//! waiting for a refresh in flight before the final save. No sleeps in real time.

use ecr_broker::clock::Clock;
use ecr_broker::fetch::{BoxFuture, Fetch, FetchError, Fetched, SlotKey};
use ecr_broker::metrics::Metrics;
use ecr_broker::policy::ErrorKind;
use ecr_broker::store::{StoreLimits, TokenStore};
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::Token;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T0: f64 = 1_700_000_000.0;
const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const LIFE: i64 = 43_200;

/// What the fake answers to one call.
#[derive(Clone)]
enum Answer {
    /// A token living this many seconds from now.
    Token(i64),
    /// A token that expired before it was fetched.
    Expired,
    Throttled,
    Unreachable,
    Denied,
}

/// A scripted upstream: answers from a queue (then the default), after a delay, counting
/// calls and when they started.
struct Fake {
    clock: Clock,
    script: Mutex<VecDeque<Answer>>,
    default: Mutex<Answer>,
    delay: Mutex<Duration>,
    calls: AtomicUsize,
    started: Mutex<Vec<f64>>,
    /// Notified when a call starts.
    call_started: tokio::sync::Notify,
}

impl Fake {
    fn new(clock: &Clock, default: Answer) -> Arc<Fake> {
        Arc::new(Fake {
            clock: clock.clone(),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            delay: Mutex::new(Duration::ZERO),
            calls: AtomicUsize::new(0),
            started: Mutex::new(Vec::new()),
            call_started: tokio::sync::Notify::new(),
        })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn then(&self, answers: &[Answer]) {
        self.script.lock().unwrap().extend(answers.iter().cloned());
    }
    fn always(&self, answer: Answer) {
        *self.default.lock().unwrap() = answer;
    }
    fn delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }
    fn started_at(&self) -> Vec<f64> {
        self.started.lock().unwrap().clone()
    }
}

fn password(n: usize) -> String {
    format!("token-{n}")
}

fn service_error(code: &str) -> FetchError {
    FetchError::Service { service: "ECR", code: code.into(), message: String::new(), hint: "" }
}

impl Fetch for Fake {
    fn fetch<'a>(&'a self, _key: &'a SlotKey, _registry: &'a RegistryHost) -> BoxFuture<'a, Result<Fetched, FetchError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            self.started.lock().unwrap().push(self.clock.now());
            self.call_started.notify_waiters();
            let answer = self.script.lock().unwrap().pop_front().unwrap_or_else(|| self.default.lock().unwrap().clone());
            let delay = *self.delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            let now = self.clock.now_secs();
            let token =
                |expires_at| Token { username: "AWS".into(), password: password(n), proxy_endpoint: None, fetched_at: now, expires_at };
            match answer {
                Answer::Token(life) => Ok(Fetched { token: token(now + life), principal: Some("arn:aws:iam::123456789012:role/r".into()) }),
                Answer::Expired => Ok(Fetched { token: token(now - 3600), principal: None }),
                Answer::Throttled => Err(service_error("ThrottlingException")),
                Answer::Unreachable => Err(FetchError::Unreachable { service: "ECR", detail: "timed out".into() }),
                Answer::Denied => Err(service_error("AccessDeniedException")),
            }
        })
    }
}

fn registry() -> RegistryHost {
    RegistryHost::parse(HOST).unwrap()
}

fn store_with(fake: &Arc<Fake>, clock: &Clock) -> Arc<TokenStore> {
    let limits = StoreLimits { max_slots: 16, max_registries_per_slot: 8 };
    TokenStore::new(fake.clone(), clock.clone(), limits, Arc::new(Metrics::default()))
}

fn setup(default: Answer) -> (Clock, Arc<Fake>, Arc<TokenStore>) {
    let clock = Clock::virtual_from(T0);
    let fake = Fake::new(&clock, default);
    let store = store_with(&fake, &clock);
    (clock, fake, store)
}

async fn advance_to(clock: &Clock, at: f64) {
    let wait = at - clock.now();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_cold_gets_make_one_fetch() {
    let (_, fake, store) = setup(Answer::Token(LIFE));
    fake.delay(Duration::from_millis(300));
    let gets: Vec<_> = (0..1000)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get("default", &registry()).await })
        })
        .collect();
    for g in gets {
        assert_eq!(g.await.unwrap().unwrap().password, password(1));
    }
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_is_shared_by_every_caller_waiting_for_it() {
    let (_, fake, store) = setup(Answer::Unreachable);
    fake.delay(Duration::from_millis(300));
    let gets: Vec<_> = (0..200)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get("default", &registry()).await })
        })
        .collect();
    for g in gets {
        let e = g.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::Transient));
        assert!(e.to_string().contains("timed out"), "{e}");
    }
    assert_eq!(fake.calls(), 1, "one upstream call, its error shared");
}

#[tokio::test(start_paused = true)]
async fn after_a_failure_no_call_is_made_before_the_back_off_ends_and_one_after() {
    let (clock, fake, store) = setup(Answer::Throttled);
    let e = store.get("default", &registry()).await.unwrap_err();
    assert_eq!(e.kind(), Some(ErrorKind::Throttled));
    // The first throttled back-off is a uniform point of a 30 s window, at least 1 s.
    advance_to(&clock, T0 + 0.95).await;
    for _ in 0..50 {
        assert_eq!(store.get("default", &registry()).await.unwrap_err().kind(), Some(ErrorKind::Throttled));
    }
    assert_eq!(fake.calls(), 1, "no upstream call while backing off");
    advance_to(&clock, T0 + 30.01).await;
    fake.always(Answer::Token(LIFE));
    assert_eq!(store.get("default", &registry()).await.unwrap().password, password(2));
    assert_eq!(fake.calls(), 2);

    // A permanent failure backs off for a minute, not a second.
    let (clock, fake, store) = setup(Answer::Denied);
    assert_eq!(store.get("default", &registry()).await.unwrap_err().kind(), Some(ErrorKind::Permanent));
    advance_to(&clock, T0 + 29.0).await;
    assert!(store.get("default", &registry()).await.is_err());
    assert_eq!(fake.calls(), 1);
    advance_to(&clock, T0 + 61.0).await;
    assert!(store.get("default", &registry()).await.is_err());
    assert_eq!(fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_token_expired_on_arrival_is_passed_on_once_not_kept_and_backed_off() {
    let (clock, fake, store) = setup(Answer::Token(LIFE));
    fake.then(&[Answer::Expired]);
    let first = store.get("default", &registry()).await.expect("passed on once");
    assert_eq!(first.password, password(1));
    assert!(store.snapshots()[0].token.is_none(), "not kept");
    let again = store.get("default", &registry()).await.unwrap_err();
    assert!(again.to_string().contains("already expired"), "{again}");
    assert_eq!(fake.calls(), 1, "backed off, not asked again at once");
    advance_to(&clock, T0 + 1.01).await;
    assert_eq!(store.get("default", &registry()).await.unwrap().password, password(2));
    assert_eq!(store.snapshots()[0].token.as_ref().unwrap().password, password(2));
}

#[tokio::test(start_paused = true)]
async fn a_token_in_use_is_refreshed_in_its_jittered_window_without_a_caller_waiting() {
    let (clock, fake, store) = setup(Answer::Token(LIFE));
    let refresher = tokio::spawn(ecr_broker::refresh::run(store.clone(), std::future::pending()));
    store.get("default", &registry()).await.unwrap();
    let window = (T0 + (LIFE * 3 / 4) as f64, T0 + (LIFE * 3 / 4) as f64 + LIFE as f64 / 4.0 * 0.4 + 1.0);
    advance_to(&clock, window.1 + 1.0).await;
    let started = fake.started_at();
    assert_eq!(started.len(), 2, "one background refresh: {started:?}");
    assert!(window.0 <= started[1] && started[1] <= window.1, "refreshed at {} (window {window:?})", started[1] - T0);
    // The next caller gets the new token from the store, with no upstream call.
    assert_eq!(store.get("default", &registry()).await.unwrap().password, password(2));
    assert_eq!(fake.calls(), 2);
    refresher.abort();
}

#[tokio::test(start_paused = true)]
async fn a_valid_token_is_served_while_refreshes_fail_and_an_expired_one_never() {
    let (clock, fake, store) = setup(Answer::Token(LIFE));
    let refresher = tokio::spawn(ecr_broker::refresh::run(store.clone(), std::future::pending()));
    store.get("default", &registry()).await.unwrap();
    fake.always(Answer::Throttled);
    // Past every refresh point, before the margin before expiry (60 s).
    advance_to(&clock, T0 + LIFE as f64 - 120.0).await;
    let calls = fake.calls();
    assert!(calls >= 3, "refreshes were tried: {calls}");
    // Backing off 0.5-1 min at most per try over the last ~quarter: no storm.
    assert!(calls <= 20 + (LIFE as usize / 4) / 30, "{calls} calls");
    for _ in 0..10 {
        assert_eq!(store.get("default", &registry()).await.unwrap().password, password(1), "served the valid token");
    }
    advance_to(&clock, T0 + LIFE as f64 - 59.0).await;
    for _ in 0..10 {
        let e = store.get("default", &registry()).await.expect_err("the token is inside its last minute");
        assert_eq!(e.kind(), Some(ErrorKind::Throttled));
    }
    refresher.abort();
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_a_refresh_in_flight_before_the_final_save() {
    let dir = tempfile::tempdir().unwrap();
    let (config_path, state_path) = (dir.path().join("config.toml"), dir.path().join("state.json"));
    let config = ecr_cred::config::Config::parse(&format!("prefetch = [\"{HOST}\"]\n")).unwrap();
    let clock = Clock::virtual_from(ecr_cred::token::now_unix() as f64);
    let fake = Fake::new(&clock, Answer::Token(1000));
    let listener = tokio::net::UnixListener::bind(dir.path().join("broker.sock")).unwrap();
    let options = ecr_broker::RunOptions {
        fetch: Some(fake.clone()),
        clock: clock.clone(),
        refresh_grace: Duration::from_secs(600),
        ..ecr_broker::RunOptions::new(config_path, state_path.clone())
    };
    // The refresh of the prefetched token (due 750-850 s in) takes 120 s; stop 1 s into it.
    let fake2 = fake.clone();
    let shutdown = async move {
        loop {
            let started = fake2.call_started.notified();
            if fake2.calls() >= 2 {
                break;
            }
            if fake2.calls() == 1 {
                fake2.delay(Duration::from_secs(120));
            }
            started.await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    ecr_broker::run(listener, config, options, shutdown).await.unwrap();
    assert_eq!(fake.calls(), 2);
    let state = std::fs::read_to_string(&state_path).unwrap();
    assert!(state.contains(&password(2)), "the refreshed token was saved: {state}");
}
