//! `ecr-broker` as a library: [`run`] serves a broker on a listening socket until a shutdown
//! future completes, so tests (and a fleet simulation, through [`fetch::Fetch`] and
//! [`clock::Clock`]) can run one in-process. `main.rs` only reads the command line, resolves
//! paths, binds the socket and turns signals into [`run`]'s shutdown and reload.
//!
//! The parts: [`broker`] (the one owner: configuration, store, counters), [`store`] (the
//! shared token store), [`policy`] (the refresh policy's numbers and rules), [`fetch`] (the
//! seam to upstream) and [`upstream`] (its AWS side), [`refresh`] (background refresh),
//! [`clock`], [`listener`] (socket, peer credentials, admission) and [`routes`] (HTTP),
//! [`metrics_listener`] (TCP `/metrics`), [`state_file`], [`metrics`], [`systemd`].

pub mod admission;
pub mod broker;
pub mod clock;
pub mod fetch;
pub mod healthcheck;
pub mod listener;
pub mod metrics;
pub mod metrics_listener;
pub mod policy;
pub mod ratelog;
pub mod refresh;
pub mod routes;
pub mod state_file;
pub mod store;
pub mod systemd;
pub mod upstream;

use crate::broker::Broker;
use crate::clock::Clock;
use crate::fetch::Fetch;
use ecr_cred::config::Config;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What `main` resolved for [`run`], beside the configuration.
pub struct RunOptions {
    /// The configuration file, read again on each `reload` message.
    pub config_path: PathBuf,
    /// The state file (tokens kept across restarts).
    pub state_path: PathBuf,
    /// Connections the fd limit leaves room for.
    pub fd_room: usize,
    /// Where tokens come from: `None` is AWS.
    pub fetch: Option<Arc<dyn Fetch>>,
    pub clock: Clock,
    /// Each message reloads the configuration (`main` sends one per SIGHUP).
    pub reload: Option<tokio::sync::mpsc::Receiver<()>>,
    /// How long requests in flight may finish after shutdown starts.
    pub grace: Duration,
    /// How long shutdown waits for background refreshes in flight before the final save.
    pub refresh_grace: Duration,
}

impl RunOptions {
    pub fn new(config_path: PathBuf, state_path: PathBuf) -> RunOptions {
        RunOptions {
            config_path,
            state_path,
            fd_room: 960,
            fetch: None,
            clock: Clock::System,
            reload: None,
            grace: Duration::from_secs(10),
            refresh_grace: Duration::from_secs(30),
        }
    }
}

/// Serve a broker on `listener` until `shutdown` completes: load the state file, prefetch,
/// serve (and `/metrics` over TCP if configured), refresh in the background, write the state
/// file as tokens arrive; READY to systemd once serving. On shutdown: STOPPING, let requests
/// in flight finish (up to `grace`), wait for refreshes in flight, save the state. `Err` is a
/// message for the user (nothing served).
pub async fn run(
    listener: tokio::net::UnixListener,
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let RunOptions { config_path, state_path, fd_room, fetch, clock, mut reload, grace, refresh_grace } = options;
    let broker = Broker::new(config, fetch, clock);
    let restored = state_file::load(&state_path, &broker.store, &broker.config());
    tracing::info!(state = %state_path.display(), restored, "state loaded");
    broker.prefetch();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let app = Arc::new(listener::App::new(broker.clone(), fd_room));
    if let Some(addr) = &broker.config().metrics_listen {
        let tcp = metrics_listener::bind(addr).await?;
        tracing::info!(addr = %addr, "serving /metrics and /healthz over TCP");
        tokio::spawn(metrics_listener::serve(tcp, app.clone(), stopped()));
    }
    let server = tokio::spawn(listener::serve(listener, app, stopped(), grace));
    let refresher = tokio::spawn(refresh::run(broker.store.clone(), stopped()));
    let writer = tokio::spawn(persist(broker.clone(), state_path.clone(), stopped()));
    tracing::info!("ecr-broker ready");
    systemd::ready();

    tokio::pin!(shutdown);
    loop {
        let reloaded = async {
            match reload.as_mut() {
                Some(r) => r.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(()) = reloaded => broker.reload_from(&config_path),
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("stopping: finishing requests in flight");
    systemd::stopping();
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = refresher.await;
    let _ = writer.await;
    if tokio::time::timeout(refresh_grace, broker.store.close()).await.is_err() {
        tracing::warn!("token fetches still running after {refresh_grace:?}; saving the state without them");
    }
    if let Err(e) = state_file::save(&state_path, &broker.store, &broker.config()) {
        tracing::warn!("could not save state to {}: {e}", state_path.display());
    }
    Ok(())
}

/// Write the state file whenever a new token arrives (at most every 200 ms).
async fn persist(broker: Arc<Broker>, path: PathBuf, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = broker.store.token_arrived() => {}
            _ = &mut shutdown => return,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (broker2, path2) = (broker.clone(), path.clone());
        let saved = tokio::task::spawn_blocking(move || state_file::save(&path2, &broker2.store, &broker2.config())).await;
        if let Ok(Err(e)) = saved {
            tracing::warn!("could not save state to {}: {e}", path.display());
        }
    }
}
