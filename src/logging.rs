//! Logging to stderr, at `warn` unless `ECR_LOG` (or `RUST_LOG`) says otherwise, with a
//! guard that no secret can pass: the AWS SDK and HTTP crates print whole responses (tokens
//! included) at TRACE level, so TRACE from them is dropped whatever the filter asks for.

use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::prelude::*;

/// Crates whose TRACE output can contain credentials or tokens.
const NOISY_SECRET_TARGETS: &[&str] =
    &["aws_smithy", "aws_sdk", "aws_config", "aws_sigv4", "aws_runtime", "aws_credential", "hyper", "h2", "rustls", "reqwest"];

/// Install the stderr logger. `default` is the level when neither variable is set.
pub fn init(default: &str) {
    let spec = std::env::var("ECR_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| default.to_string());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new(default));
    let no_secret_traces =
        FilterFn::new(|meta| !(*meta.level() == Level::TRACE && NOISY_SECRET_TARGETS.iter().any(|t| meta.target().starts_with(t))));
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).with_target(true);
    let _ = tracing_subscriber::registry().with(no_secret_traces).with(fmt.with_filter(filter)).try_init();
}
