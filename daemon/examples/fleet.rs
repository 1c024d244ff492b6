//! Fleet simulation: N brokers (one per node) in one AWS account and region, in virtual time,
//! against a fake ECR that enforces GetAuthorizationToken's token bucket (20 per second
//! sustained, a burst of 200) and answers ThrottlingException beyond it.
//!
//! Each node runs the real token store and refresher (`ecr_broker::store`, `ecr_broker::refresh`,
//! the policy in `ecr_broker::policy`) through the fetch seam, with `Clock::Virtual` and tokio's
//! paused time, so 7 days pass in seconds. Scenario, from t = 0:
//! - boot storm: every node starts at a random point in the first `--boot-window` seconds with no
//!   state, its registry configured as `prefetch` (as a node's broker config lists it); the
//!   storm's figures are those of the first hour;
//! - then `--days` (7) days of steady state, whose upstream calls per node per day are reported
//!   apart from the storm's calls per node;
//! - kubelet-like demand per node: a request at boot, retried after failures with kubelet's image
//!   pull back-off (10 s doubling to 300 s), then one every 30 to 90 minutes;
//! - a 2-hour upstream outage (every call unreachable) on day 3 and a 10-minute throttling
//!   episode (every call throttled) on day 5.
//!
//! A token "expired in use" is counted whenever a node's next token was issued only after its
//! previous one had expired, or its last one expired before the end: every node keeps asking,
//! so its token is always in use.
//!
//! `cargo run --release -p ecr-broker --example fleet -- --json` prints one JSON object;
//! `bench/fleet.sh` runs it and writes the report in docs/fleet.md with a plot.

use ecr_broker::clock::Clock;
use ecr_broker::fetch::{BoxFuture, Fetch, Fetched, SlotKey};
use ecr_broker::metrics::Metrics;
use ecr_broker::policy::Policy;
use ecr_broker::store::{random_unit, StoreLimits, TokenStore};
use ecr_cred::aws::FetchError;
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::Token;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DAY: f64 = 86_400.0;
const HOUR: f64 = 3_600.0;
/// ECR's GetAuthorizationToken quota per account and region.
const BUCKET_RATE: f64 = 20.0;
const BUCKET_BURST: f64 = 200.0;
const TOKEN_LIFE: i64 = 12 * 3600;
/// Seconds after t = 0 that the per-second histogram covers (the storm and its tail).
const STORM_WINDOW: usize = 1800;

struct Options {
    nodes: usize,
    boot_window: f64,
    days: f64,
    outage: (f64, f64),
    throttling: (f64, f64),
    json: bool,
    policy: Policy,
    storm_csv: Option<std::path::PathBuf>,
}

/// The fake ECR shared by every node: the bucket, the fault windows and what it counted.
struct World {
    clock: Clock,
    start: f64,
    opts: Options,
    state: Mutex<WorldState>,
}

#[derive(Default)]
struct WorldState {
    bucket: f64,
    bucket_at: f64,
    calls: u64,
    throttled: u64,
    failed: u64,
    /// Per node: when its first token was issued, and when the last one issued expires.
    first_token: Vec<Option<f64>>,
    last_expiry: Vec<i64>,
    /// Per node: how often a new token came only after the previous one had expired.
    expired_gaps: u64,
    /// Per second of the storm window: (calls, throttled).
    per_second: Vec<(u32, u32)>,
    /// Calls in the first hour (the storm), for the steady-state rate.
    storm_calls: u64,
    storm_throttled: u64,
}

struct NodeFetch {
    node: usize,
    world: Arc<World>,
}

impl World {
    fn call(&self, node: usize) -> Result<Fetched, FetchError> {
        let now = self.clock.now();
        let t = now - self.start;
        let mut s = self.state.lock().unwrap();
        s.calls += 1;
        let sec = t.max(0.0) as usize;
        if sec < STORM_WINDOW {
            s.per_second[sec].0 += 1;
        }
        if t < HOUR {
            s.storm_calls += 1;
        }
        if (self.opts.outage.0..self.opts.outage.1).contains(&t) {
            s.failed += 1;
            return Err(FetchError::Unreachable { service: "ECR", detail: "simulated outage".into() });
        }
        // Refill, then take one; the throttling episode refuses whatever the bucket holds.
        s.bucket = (s.bucket + (t - s.bucket_at) * BUCKET_RATE).min(BUCKET_BURST);
        s.bucket_at = t;
        let episode = (self.opts.throttling.0..self.opts.throttling.1).contains(&t);
        if episode || s.bucket < 1.0 {
            s.throttled += 1;
            if sec < STORM_WINDOW {
                s.per_second[sec].1 += 1;
            }
            if t < HOUR {
                s.storm_throttled += 1;
            }
            return Err(FetchError::Service {
                service: "ECR",
                code: "ThrottlingException".into(),
                message: "Rate exceeded".into(),
                hint: "",
            });
        }
        s.bucket -= 1.0;
        let fetched_at = now as i64;
        if s.first_token[node].is_none() {
            s.first_token[node] = Some(t);
        }
        if s.last_expiry[node] != 0 && fetched_at >= s.last_expiry[node] {
            s.expired_gaps += 1;
        }
        s.last_expiry[node] = fetched_at + TOKEN_LIFE;
        let token = Token {
            username: "AWS".into(),
            password: format!("node-{node}"),
            proxy_endpoint: None,
            fetched_at,
            expires_at: fetched_at + TOKEN_LIFE,
        };
        Ok(Fetched { token, principal: None })
    }
}

impl Fetch for NodeFetch {
    fn fetch<'a>(&'a self, _key: &'a SlotKey, _registry: &'a RegistryHost) -> BoxFuture<'a, Result<Fetched, FetchError>> {
        Box::pin(async move {
            // An upstream round trip.
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.world.call(self.node)
        })
    }
}

/// Kubelet-like demand: a request at boot; after a failure, kubelet's image pull back-off
/// (10 s doubling to 300 s); after a success, the next pod start past kubelet's cache, 30 to 90
/// minutes later.
async fn kubelet(store: Arc<TokenStore>, registry: RegistryHost, boot: f64, end: f64, clock: Clock, start: f64) {
    tokio::time::sleep(Duration::from_secs_f64(boot)).await;
    // The broker starts: its configured registry is prefetched, and kubelet asks.
    if let Err(e) = store.prefetch("default", &registry) {
        die(&format!("prefetch refused: {e}"));
    }
    let mut failures = 0u32;
    loop {
        let wait = match store.get("default", &registry).await {
            Ok(_) => {
                failures = 0;
                30.0 * 60.0 + 60.0 * 60.0 * random_unit()
            }
            Err(_) => {
                failures += 1;
                (10.0 * 2f64.powi(failures.min(6) as i32 - 1)).min(300.0)
            }
        };
        if clock.now() - start + wait >= end {
            return;
        }
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

fn parse_args() -> Options {
    let mut o = Options {
        nodes: 10_000,
        boot_window: 60.0,
        days: 7.0,
        outage: (3.0 * DAY + 5.0 * HOUR, 3.0 * DAY + 7.0 * HOUR),
        throttling: (5.0 * DAY + 11.0 * HOUR, 5.0 * DAY + 11.0 * HOUR + 600.0),
        json: false,
        policy: Policy::CURRENT,
        storm_csv: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().unwrap_or_else(|| die(&format!("{name} needs a value")));
        match a.as_str() {
            "--nodes" => o.nodes = val("--nodes").parse().unwrap_or_else(|_| die("--nodes takes a number")),
            "--boot-window" => o.boot_window = val("--boot-window").parse().unwrap_or_else(|_| die("--boot-window takes seconds")),
            "--days" => o.days = val("--days").parse().unwrap_or_else(|_| die("--days takes a number")),
            "--storm-csv" => o.storm_csv = Some(val("--storm-csv").into()),
            "--json" => o.json = true,
            "--policy" => {
                o.policy = match val("--policy").as_str() {
                    "now" => Policy::CURRENT,
                    "before" => Policy::BEFORE_FLEET_SIMULATION,
                    _ => die("--policy takes now or before"),
                }
            }
            "-h" | "--help" => {
                println!("usage: fleet [--nodes N] [--boot-window SECS] [--days D] [--policy now|before] [--storm-csv FILE] [--json]");
                std::process::exit(0);
            }
            other => die(&format!("unknown argument {other:?}")),
        }
    }
    if o.nodes == 0 {
        die("--nodes must be at least 1");
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("fleet: {msg}");
    std::process::exit(2);
}

fn main() {
    let opts = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
    let wall = std::time::Instant::now();
    let json = opts.json;
    let mut report = rt.block_on(simulate(opts));
    report["wall_seconds"] = serde_json::json!((wall.elapsed().as_secs_f64() * 10.0).round() / 10.0);
    let text = if json { report.to_string() } else { serde_json::to_string_pretty(&report).expect("JSON value") };
    println!("{text}");
}

async fn simulate(opts: Options) -> serde_json::Value {
    let start = 1_800_000_000.0;
    let clock = Clock::virtual_from(start);
    let n = opts.nodes;
    // The storm's hour, then `days` days of steady state.
    let end = HOUR + opts.days * DAY;
    let world = Arc::new(World {
        clock: clock.clone(),
        start,
        state: Mutex::new(WorldState {
            bucket: BUCKET_BURST,
            first_token: vec![None; n],
            last_expiry: vec![0; n],
            per_second: vec![(0, 0); STORM_WINDOW],
            ..Default::default()
        }),
        opts,
    });
    let registry = RegistryHost::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com").expect("registry");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut kubelets = tokio::task::JoinSet::new();
    let mut refreshers = Vec::with_capacity(n);
    for node in 0..n {
        let fetch = Arc::new(NodeFetch { node, world: world.clone() });
        let store =
            TokenStore::new(fetch, clock.clone(), StoreLimits { max_slots: 4, max_registries_per_slot: 4 }, Arc::new(Metrics::default()));
        store.set_policy(world.opts.policy);
        let boot = world.opts.boot_window * random_unit();
        let mut stop = stop_rx.clone();
        refreshers.push(tokio::spawn(ecr_broker::refresh::run(store.clone(), async move {
            let _ = stop.changed().await;
        })));
        kubelets.spawn(kubelet(store, registry.clone(), boot, end, clock.clone(), start));
    }
    tokio::time::sleep(Duration::from_secs_f64(end)).await;
    let _ = stop_tx.send(true);
    kubelets.abort_all();
    for r in refreshers {
        let _ = r.await;
    }
    let mut s = world.state.lock().unwrap();
    // A token that expired before the simulation's end without a successor.
    let end_unix = (start + end) as i64;
    let trailing = s.last_expiry.iter().filter(|&&e| e != 0 && e <= end_unix).count() as u64;
    s.expired_gaps += trailing;
    let ready: Vec<f64> = s.first_token.iter().flatten().copied().collect();
    let all_ready = (ready.len() == n).then(|| ready.iter().copied().fold(0.0, f64::max));
    let mut sorted = ready.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| sorted.get(((sorted.len() as f64 - 1.0) * p) as usize).copied();
    if let Some(path) = &world.opts.storm_csv {
        let mut csv = String::from("second,calls,throttled\n");
        for (i, (c, t)) in s.per_second.iter().enumerate() {
            csv.push_str(&format!("{i},{c},{t}\n"));
        }
        std::fs::write(path, csv).unwrap_or_else(|e| die(&format!("cannot write {}: {e}", path.display())));
    }
    let days = world.opts.days;
    serde_json::json!({
        "policy": if world.opts.policy == Policy::CURRENT { "now" } else { "before" },
        "nodes": n,
        "days": days,
        "boot_window_seconds": world.opts.boot_window,
        "all_ready_seconds": all_ready.map(|x| x.round()),
        "ready_p50_seconds": q(0.5).map(|x| x.round()),
        "ready_p99_seconds": q(0.99).map(|x| x.round()),
        "nodes_ready": ready.len(),
        "upstream_calls": s.calls,
        "throttled_calls": s.throttled,
        "failed_calls": s.failed,
        "throttled_share": round3(s.throttled as f64 / s.calls.max(1) as f64),
        "storm_calls": s.storm_calls,
        "storm_throttled_share": round3(s.storm_throttled as f64 / s.storm_calls.max(1) as f64),
        "tokens_expired_in_use": s.expired_gaps,
        "storm_calls_per_node": round3(s.storm_calls as f64 / n as f64),
        "calls_per_node_per_day": round3((s.calls - s.storm_calls) as f64 / n as f64 / days),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
