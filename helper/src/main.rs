//! `docker-credential-ecr`: Amazon ECR credentials for docker, podman, skopeo, buildah,
//! nerdctl and crane through the Docker credential-helper protocol.
//!
//! This file only parses the command line and dispatches; the protocol is in [`protocol`],
//! where tokens come from is in [`credentials`].

mod broker_client;
mod credentials;
mod protocol;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "docker-credential-ecr",
    version,
    about = "Amazon ECR credentials for docker, podman, skopeo, buildah, nerdctl and crane",
    long_about = "A Docker credential helper for Amazon ECR.\n\n\
Put {\"credHelpers\": {\"<account>.dkr.ecr.<region>.amazonaws.com\": \"ecr\"}} (or \"credsStore\": \"ecr\") \
in ~/.docker/config.json and every pull and push to that registry gets a fresh token.\n\n\
Environment: AWS_PROFILE and the rest of the AWS default credential chain; AWS_ECR_CACHE_DIR, \
AWS_ECR_DISABLE_CACHE, AWS_ECR_IGNORE_CREDS_STORAGE; ECR_LOG (or RUST_LOG) for logs on stderr."
)]
struct Cli {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print credentials for the registry server URL read from stdin (credential-helper protocol).
    Get,
    /// Accept credentials from stdin; ECR tokens are never stored (credential-helper protocol).
    Store,
    /// Accept a server URL from stdin; nothing is stored to erase (credential-helper protocol).
    Erase,
    /// List the ECR registries this user has used or configured, as JSON.
    List,
    /// Print the version.
    Version,
}

fn main() {
    // The SDK warns about every credential source it tries; our own error names the cause.
    ecr_cred::logging::init("warn,aws_config=error");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are answers; anything else is a usage error. Both go to
            // stdout, as the credential-helper protocol expects, and usage errors exit 1.
            let code = if e.use_stderr() { 1 } else { 0 };
            print!("{}", e.render());
            std::process::exit(code);
        }
    };
    let result = match cli.action {
        Action::Get => protocol::read_stdin().and_then(|input| protocol::get(&input)),
        Action::Store => protocol::read_stdin().and_then(|input| protocol::store(&input)),
        Action::Erase => protocol::read_stdin().and_then(|input| protocol::erase(&input)),
        Action::List => protocol::list(),
        Action::Version => Ok(format!("docker-credential-ecr {}", env!("CARGO_PKG_VERSION"))),
    };
    std::process::exit(protocol::respond(result));
}
