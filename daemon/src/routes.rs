//! The HTTP routes of the broker socket: `/v1/token`, `/v1/status`, `/metrics`, `/healthz`
//! (paths and answers from [`ecr_cred::broker`]). A caller that may use no identity gets only
//! `/healthz`; everything else is answered from the [`crate::broker::Broker`].

use crate::listener::App;
use crate::ratelog::more;
use bytes::Bytes;
use ecr_cred::broker::{self as wire, ErrorCode, ErrorResponse, TokenResponse};
use ecr_cred::config::{Caller, Decision};
use ecr_cred::registry::RegistryHost;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::atomic::Ordering::Relaxed;

pub(crate) type Reply = Response<Full<Bytes>>;

pub(crate) fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(Full::new(body.into()))
        .expect("valid response")
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    reply(status, "application/json", serde_json::to_vec(value).expect("serializes"))
}

pub(crate) fn error(status: StatusCode, code: ErrorCode, reason: impl Into<String>) -> Reply {
    json(status, &ErrorResponse::new(code, reason))
}

/// `usable`: the caller may use at least one identity (else only `/healthz` is served).
pub(crate) async fn route(app: &App, caller: Caller, usable: bool, req: Request<hyper::body::Incoming>) -> Reply {
    if req.method() != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::BadRequest, "only GET is served");
    }
    let path = req.uri().path();
    if path == wire::HEALTH_PATH {
        return health();
    }
    let known = [wire::TOKEN_PATH, wire::STATUS_PATH, wire::METRICS_PATH].contains(&path);
    if !usable && known {
        app.broker.metrics.requests_forbidden.fetch_add(1, Relaxed);
        if let Some(n) = app.ratelog.allow(caller.uid, "refused") {
            tracing::info!(uid = caller.uid, pid = caller.pid, path, "refused: this uid may use no identity{}", more(n));
        }
        return error(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!(
                "uid {} may use no identity of this broker (see allow_uids/allow_gids under [identities.NAME] or at the top of the broker config)",
                caller.uid
            ),
        );
    }
    match path {
        wire::TOKEN_PATH => token(app, caller, req.uri().query().unwrap_or("")).await,
        wire::STATUS_PATH => json(StatusCode::OK, &app.broker.status()),
        wire::METRICS_PATH => metrics(app),
        _ => {
            error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such path; try /v1/token?registry=HOST, /v1/status, /metrics or /healthz")
        }
    }
}

async fn token(app: &App, caller: Caller, query: &str) -> Reply {
    let metrics = &app.broker.metrics;
    let Some(host) = wire::registry_from_query(query) else {
        metrics.requests_bad.fetch_add(1, Relaxed);
        return error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, "missing ?registry=HOST");
    };
    let Some(registry) = RegistryHost::parse(&host) else {
        metrics.requests_bad.fetch_add(1, Relaxed);
        return error(StatusCode::NOT_FOUND, ErrorCode::NotEcr, "not an Amazon ECR registry");
    };
    let config = app.broker.config();
    let identity = match config.decide(&registry, caller, app.own_uid, || app.groups_of(caller.uid)) {
        Decision::Allow { identity } => identity,
        Decision::Deny { reason } => {
            metrics.requests_forbidden.fetch_add(1, Relaxed);
            if let Some(n) = app.ratelog.allow(caller.uid, "refused") {
                tracing::info!(uid = caller.uid, pid = caller.pid, registry = %registry, "refused: {reason}{}", more(n));
            }
            return error(StatusCode::FORBIDDEN, ErrorCode::Forbidden, reason);
        }
    };
    match app.broker.store.get(&identity, &registry).await {
        Ok(t) => {
            metrics.requests_ok.fetch_add(1, Relaxed);
            json(StatusCode::OK, &TokenResponse::new(&registry.host, &identity, t))
        }
        Err(e) => {
            metrics.requests_failed.fetch_add(1, Relaxed);
            error(StatusCode::BAD_GATEWAY, ErrorCode::Upstream, e.to_string())
        }
    }
}

pub(crate) fn health() -> Reply {
    reply(StatusCode::OK, "text/plain", "ok\n")
}

pub(crate) fn metrics(app: &App) -> Reply {
    reply(StatusCode::OK, "text/plain; version=0.0.4", app.broker.metrics_text())
}
