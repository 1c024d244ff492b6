//! `status`: what the local ecr-broker holds (identities, tokens, expiries, errors, call
//! counts) and what this user's own cache holds, as tables. Never prints a secret.

use crate::credentials;
use ecr_cred::broker::{self, ClientError, StatusResponse};
use ecr_cred::token::now_unix;
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

pub fn run() -> i32 {
    let now = now_unix();
    let mut code = 0;
    match broker::default_socket() {
        None => println!("ecr-broker: not used (ECR_BROKER_SOCKET=none)\n"),
        Some(socket) => match broker::get(&socket, "/v1/status", Duration::from_secs(5)) {
            Ok(r) if r.status == 200 => match serde_json::from_slice::<StatusResponse>(&r.body) {
                Ok(s) => println!("{}", broker_table(&s, now)),
                Err(e) => {
                    println!("ecr-broker at {}: unreadable status ({e})\n", socket.display());
                    code = 1;
                }
            },
            Ok(r) => {
                println!("ecr-broker at {}: answered HTTP {}\n", socket.display(), r.status);
                code = 1;
            }
            Err(ClientError::Absent) => println!("ecr-broker: none running at {}\n", socket.display()),
            Err(ClientError::TooSlow(d)) => {
                println!("ecr-broker at {}: no answer within {} s\n", socket.display(), d.as_secs());
                code = 1;
            }
            Err(ClientError::Unhealthy(why)) => {
                println!("ecr-broker at {}: not answering properly ({why})\n", socket.display());
                code = 1;
            }
        },
    }
    match credentials::open_cache() {
        None => println!("local cache: disabled or unusable"),
        Some(cache) => {
            let file = cache.load();
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
            println!("local cache {}:", cache.file_path().display());
            print!("{}", table(&["PRINCIPAL", "REGION", "VARIANT", "EXPIRES IN", "FRESH", "ENDPOINT"], &rows));
        }
    }
    code
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
