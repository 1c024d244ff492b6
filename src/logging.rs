//! Logging to stderr, at `warn` unless `ECR_LOG` (or `RUST_LOG`) says otherwise, with a
//! guard that no secret can pass: the AWS SDK and HTTP crates print whole responses (tokens
//! included) at TRACE level, so TRACE from them is dropped whatever the filter asks for.
//! The SDK's own WARN and INFO events (multi-line dumps of dispatch failures, retries) stay out
//! of our log unless the filter names an SDK crate: our own messages say what failed, once.

use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::prelude::*;

/// Crates whose TRACE output can contain credentials or tokens.
const NOISY_SECRET_TARGETS: &[&str] =
    &["aws_smithy", "aws_sdk", "aws_config", "aws_sigv4", "aws_runtime", "aws_credential", "hyper", "h2", "rustls", "reqwest"];

/// The SDK crates whose own events are shown only when a filter directive names them.
const SDK_TARGETS: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_config",
    "aws_runtime",
    "aws_sdk_ecr",
    "aws_sdk_ecrpublic",
    "aws_sdk_sts",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
];

/// The filter for `spec`: as given, plus `CRATE=error` for every SDK crate unless `spec`
/// already names one (`ECR_LOG=debug,aws_smithy_runtime=debug` shows the SDK's own events).
pub fn filter_spec(spec: &str) -> String {
    if spec.contains("aws_") {
        return spec.to_string();
    }
    let mut out = spec.to_string();
    for t in SDK_TARGETS {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(t);
        out.push_str("=error");
    }
    out
}

/// Install the stderr logger. `default` is the level when neither variable is set.
pub fn init(default: &str) {
    let spec = std::env::var("ECR_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| default.to_string());
    let filter = EnvFilter::try_new(filter_spec(&spec)).unwrap_or_else(|_| EnvFilter::new(filter_spec(default)));
    let no_secret_traces =
        FilterFn::new(|meta| !(*meta.level() == Level::TRACE && NOISY_SECRET_TARGETS.iter().any(|t| meta.target().starts_with(t))));
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).with_target(true);
    let _ = tracing_subscriber::registry().with(no_secret_traces).with(fmt.with_filter(filter)).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_crates_are_held_to_errors_unless_the_filter_names_one() {
        let f = filter_spec("warn");
        assert!(f.starts_with("warn,"), "{f}");
        for t in SDK_TARGETS {
            assert!(f.contains(&format!("{t}=error")), "{t} missing from {f}");
        }
        assert_eq!(filter_spec("debug,aws_smithy_runtime=debug"), "debug,aws_smithy_runtime=debug");
        assert!(filter_spec("").starts_with("aws_smithy_runtime=error"));
        // Every directive parses: the filter is used as built.
        EnvFilter::try_new(filter_spec("info")).expect("valid filter");
    }
}
