//! `status`: what the local ecr-broker holds (identities, tokens, expiries, errors, call
//! counts) and what this user's own cache holds, as tables or (`--json`) as JSON. Never prints
//! a secret.

use crate::reply::Reply;
use ecr_cred::broker::{self, ClientError, StatusResponse};
use ecr_cred::cache::{CacheFile, TokenCache};
use ecr_cred::token::now_unix;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// "3h12m", "-5m" (expired), or "-" for none.
fn until(t: Option<i64>, now: i64) -> String {
    let Some(t) = t else { return "-".into() };
    let d = t - now;
    let (sign, d) = if d < 0 { ("-", -d) } else { ("", d) };
    if d >= 3600 {
        format!("{sign}{}h{:02}m", d / 3600, (d % 3600) / 60)
    } else if d >= 60 {
        format!("{sign}{}m", d / 60)
    } else {
        format!("{sign}{d}s")
    }
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect::<Vec<_>>().join("  ");
        s.truncate(s.trim_end().len());
        s + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

pub fn broker_table(s: &StatusResponse, now: i64) -> String {
    let rows: Vec<Vec<String>> = s
        .tokens
        .iter()
        .map(|t| {
            vec![
                t.identity.clone(),
                t.region.clone(),
                t.variant.clone(),
                t.principal.clone().unwrap_or_else(|| "-".into()),
                until(t.expires_at, now),
                until(t.refresh_at, now),
                t.upstream_calls.to_string(),
                t.registries.join(","),
                t.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut out = format!(
        "ecr-broker {}: up {}, {} requests, {} cache hits, {} upstream calls, {} upstream errors\n\n",
        s.version,
        until(Some(now), s.started_at),
        s.requests,
        s.cache_hits,
        s.upstream_calls,
        s.upstream_errors
    );
    out.push_str(&table(
        &["IDENTITY", "REGION", "VARIANT", "PRINCIPAL", "EXPIRES IN", "REFRESH IN", "CALLS", "REGISTRIES", "LAST ERROR"],
        &rows,
    ));
    out
}

#[derive(clap::Args, Debug, Default)]
pub struct StatusArgs {
    /// Print the same facts as JSON (times as Unix seconds), for scripts.
    #[arg(long)]
    pub json: bool,
}

/// What the broker said, or why it said nothing.
enum BrokerState {
    NotUsed,
    Absent(PathBuf),
    Running(PathBuf, StatusResponse),
    Broken(PathBuf, String),
}

fn broker_state() -> BrokerState {
    let Some(socket) = broker::default_socket() else { return BrokerState::NotUsed };
    match broker::get(&socket, "/v1/status", Duration::from_secs(5)) {
        Ok(r) if r.status == 200 => match serde_json::from_slice::<StatusResponse>(&r.body) {
            Ok(s) => BrokerState::Running(socket, s),
            Err(e) => BrokerState::Broken(socket, format!("unreadable status ({e})")),
        },
        Ok(r) => BrokerState::Broken(socket, format!("answered HTTP {}", r.status)),
        Err(ClientError::Absent) => BrokerState::Absent(socket),
        Err(ClientError::TooSlow(d)) => BrokerState::Broken(socket, format!("no answer within {} s", d.as_secs())),
        Err(ClientError::Unhealthy(why)) => BrokerState::Broken(socket, format!("not answering properly ({why})")),
    }
}

/// The status on stdout; exit 1 when a broker is there but broken.
pub fn run(args: &StatusArgs) -> Reply {
    use std::fmt::Write;
    let now = now_unix();
    let broker = broker_state();
    let code = if matches!(broker, BrokerState::Broken(..)) { 1 } else { 0 };
    let cache = TokenCache::open_default().map(|c| (c.file_path(), c.load()));
    let mut out = String::new();
    if args.json {
        let json = status_json(&broker, cache.as_ref().map(|(p, f)| (p.as_path(), f)), now);
        out = serde_json::to_string_pretty(&json).expect("JSON") + "\n";
        return Reply { code, ..Reply::out(out) };
    }
    let _ = match &broker {
        BrokerState::NotUsed => writeln!(out, "ecr-broker: not used (ECR_BROKER_SOCKET=none)\n"),
        BrokerState::Absent(socket) => writeln!(out, "ecr-broker: none running at {}\n", socket.display()),
        BrokerState::Running(_, s) => writeln!(out, "{}", broker_table(s, now)),
        BrokerState::Broken(socket, why) => writeln!(out, "ecr-broker at {}: {why}\n", socket.display()),
    };
    match &cache {
        None => out.push_str("local cache: disabled or unusable\n"),
        Some((path, file)) => {
            let rows: Vec<Vec<String>> = file
                .tokens
                .values()
                .map(|e| {
                    vec![
                        e.key.principal.clone(),
                        e.key.region.clone(),
                        e.key.variant.clone(),
                        until(Some(e.token.expires_at), now),
                        if e.token.is_fresh(now) { "yes".into() } else { "no".into() },
                        e.key.endpoint.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            let _ = writeln!(out, "local cache {}:", path.display());
            out.push_str(&table(&["PRINCIPAL", "REGION", "VARIANT", "EXPIRES IN", "FRESH", "ENDPOINT"], &rows));
        }
    }
    Reply { code, ..Reply::out(out) }
}

/// `status --json`: the facts of the tables (never a token), with absolute times.
fn status_json(broker: &BrokerState, cache: Option<(&Path, &CacheFile)>, now: i64) -> Value {
    let broker = match broker {
        BrokerState::NotUsed => json!({"state": "not used", "socket": null}),
        BrokerState::Absent(p) => json!({"state": "absent", "socket": p}),
        BrokerState::Running(p, s) => json!({"state": "running", "socket": p, "status": s}),
        BrokerState::Broken(p, why) => json!({"state": "error", "socket": p, "error": why}),
    };
    let cache = match cache {
        None => json!({"state": "disabled or unusable", "path": null, "tokens": []}),
        Some((path, file)) => {
            let tokens: Vec<Value> = file
                .tokens
                .values()
                .map(|e| {
                    json!({
                        "principal": e.key.principal,
                        "region": e.key.region,
                        "variant": e.key.variant,
                        "endpoint": e.key.endpoint,
                        "expires_at": e.token.expires_at,
                        "fresh": e.token.is_fresh(now),
                    })
                })
                .collect();
            json!({"state": "ok", "path": path, "tokens": tokens})
        }
    };
    json!({"now": now, "broker": broker, "cache": cache})
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecr_cred::broker::TokenStatus;

    #[test]
    fn durations_read_well() {
        assert_eq!(until(Some(100 + 3 * 3600 + 12 * 60), 100), "3h12m");
        assert_eq!(until(Some(100 + 125), 100), "2m");
        assert_eq!(until(Some(100 - 300), 100), "-5m");
        assert_eq!(until(None, 100), "-");
    }

    #[test]
    fn broker_table_has_a_row_per_token_and_aligned_columns() {
        let s = StatusResponse {
            version: "0.1.0".into(),
            tokens: vec![TokenStatus {
                identity: "default".into(),
                region: "us-east-1".into(),
                variant: "standard".into(),
                principal: Some("arn:aws:iam::123456789012:user/ci".into()),
                registries: vec!["123456789012.dkr.ecr.us-east-1.amazonaws.com".into()],
                expires_at: Some(1000 + 7200),
                refresh_at: Some(1000 + 3600),
                upstream_calls: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        let out = broker_table(&s, 1000);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[2].starts_with("IDENTITY  REGION"));
        assert!(lines[3].starts_with("default   us-east-1"));
        assert!(lines[3].contains("2h00m") && lines[3].contains("1h00m"));
    }
}
