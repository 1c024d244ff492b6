//! Counters for `/metrics` (Prometheus text format) and `/v1/status`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    pub requests_ok: AtomicU64,
    pub requests_forbidden: AtomicU64,
    pub requests_bad: AtomicU64,
    pub requests_failed: AtomicU64,
    pub cache_hits: AtomicU64,
    pub upstream_calls: AtomicU64,
    pub upstream_errors: AtomicU64,
}

impl Metrics {
    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Relaxed);
    }
    pub fn upstream_call(&self) {
        self.upstream_calls.fetch_add(1, Relaxed);
    }
    pub fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Relaxed);
    }
    pub fn requests(&self) -> u64 {
        [&self.requests_ok, &self.requests_forbidden, &self.requests_bad, &self.requests_failed].iter().map(|c| c.load(Relaxed)).sum()
    }

    /// The Prometheus text exposition; `tokens` gives (identity, region, variant, seconds left).
    pub fn render(&self, tokens: &[(String, String, String, i64)]) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, samples: &[(&str, u64)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (labels, v) in samples {
                out.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        counter(
            "ecr_broker_requests_total",
            "Token requests by result.",
            &[
                ("{result=\"ok\"}", self.requests_ok.load(Relaxed)),
                ("{result=\"forbidden\"}", self.requests_forbidden.load(Relaxed)),
                ("{result=\"bad_request\"}", self.requests_bad.load(Relaxed)),
                ("{result=\"error\"}", self.requests_failed.load(Relaxed)),
            ],
        );
        counter("ecr_broker_cache_hits_total", "Token requests answered without an upstream call.", &[("", self.cache_hits.load(Relaxed))]);
        counter("ecr_broker_upstream_calls_total", "GetAuthorizationToken calls made to AWS.", &[("", self.upstream_calls.load(Relaxed))]);
        counter(
            "ecr_broker_upstream_errors_total",
            "GetAuthorizationToken calls that failed.",
            &[("", self.upstream_errors.load(Relaxed))],
        );
        out.push_str("# HELP ecr_broker_token_seconds_remaining Seconds until a held token expires.\n# TYPE ecr_broker_token_seconds_remaining gauge\n");
        for (identity, region, variant, left) in tokens {
            out.push_str(&format!(
                "ecr_broker_token_seconds_remaining{{identity=\"{}\",region=\"{}\",variant=\"{}\"}} {left}\n",
                escape(identity),
                escape(region),
                escape(variant)
            ));
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
