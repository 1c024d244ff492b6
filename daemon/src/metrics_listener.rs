//! `metrics_listen = "ADDR:PORT"`: `/metrics` and `/healthz` over TCP, for Prometheus. A TCP
//! caller has no uid the kernel can vouch for, so no token and no status is ever served here:
//! every other path answers 404. Bounded like the socket: a header timeout, small headers, one
//! answer per connection, and at most [`MAX_CONNECTIONS`] open at once (more are closed at once).

use crate::listener::{self, App};
use crate::routes;
use ecr_cred::broker::{self as wire, ErrorCode};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Open TCP connections at once; a scraper needs one.
pub const MAX_CONNECTIONS: usize = 16;

/// Bind `addr` (checked by the config: "ADDR:PORT").
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr} (metrics_listen): {e}"))
}

/// Serve until `shutdown` turns true.
pub async fn serve(listener: tokio::net::TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // Over the cap: dropped (closed) at once.
                let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
                let app2 = app.clone();
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let app = app2.clone();
                    async move { Ok::<_, std::convert::Infallible>(route(&app, &req)) }
                });
                let timeout = app.broker.config().header_timeout();
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(timeout)
                    .max_buf_size(listener::MAX_HEADER_BYTES)
                    .max_header_size(listener::MAX_HEADER_BYTES)
                    .max_headers(listener::MAX_HEADERS)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(timeout + Duration::from_secs(5), conn).await;
                    drop(permit);
                });
            }
            _ = &mut shutdown => break,
        }
    }
}

fn route(app: &App, req: &Request<hyper::body::Incoming>) -> routes::Reply {
    if req.method() != Method::GET {
        return routes::error(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::BadRequest, "only GET is served");
    }
    match req.uri().path() {
        wire::METRICS_PATH => routes::metrics(app),
        wire::HEALTH_PATH => routes::health(),
        _ => routes::error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "only /metrics and /healthz are served over TCP"),
    }
}
