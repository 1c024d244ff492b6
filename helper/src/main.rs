//! `docker-credential-ecr`: Amazon ECR credentials for docker, podman, skopeo, buildah,
//! nerdctl and crane through the Docker credential-helper protocol.
//!
//! This file only parses the command line, dispatches, and prints the one [`reply::Reply`]
//! each command returns; the protocol is in [`protocol`], where tokens come from is in
//! [`credentials`], other registries' logins in the OS keyring ([`keyring`]).

mod broker_client;
mod configure;
mod credentials;
mod keyring;
mod kubelet;
mod kubelet_install;
mod login;
mod protocol;
mod reply;
mod status;
mod user_config;

use clap::{Parser, Subcommand};
use reply::{Channel, Reply};

#[derive(Parser)]
#[command(
    name = "docker-credential-ecr",
    version,
    about = "Amazon ECR credentials for docker, podman, skopeo, buildah, nerdctl and crane",
    long_about = "A Docker credential helper for Amazon ECR.\n\n\
Put {\"credHelpers\": {\"<account>.dkr.ecr.<region>.amazonaws.com\": \"ecr\"}} (or \"credsStore\": \"ecr\") \
in ~/.docker/config.json and every pull and push to that registry gets a fresh token.\n\n\
Environment: AWS_PROFILE and the rest of the AWS default credential chain; AWS_ECR_CACHE_DIR, \
AWS_ECR_DISABLE_CACHE, AWS_ECR_IGNORE_CREDS_STORAGE; ECR_BROKER_SOCKET (none: never ask an ecr-broker); \
ECR_LOG (or RUST_LOG) for logs on stderr."
)]
struct Cli {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print credentials for the registry server URL read from stdin (credential-helper protocol).
    Get,
    /// Store credentials from stdin: ECR registries need none; others go to the OS keyring (credential-helper protocol).
    Store,
    /// Erase the credentials of the server URL on stdin from the OS keyring; ECR registries have none (credential-helper protocol).
    Erase,
    /// List the ECR registries used or configured, and the registries in the OS keyring, as JSON.
    List,
    /// Print the version.
    Version,
    /// Act as a kubelet image credential provider (also when invoked as `ecr-credential-provider`);
    /// `kubelet install --root DIR` installs the provider on an EKS node.
    Kubelet(kubelet::KubeletArgs),
    /// Point docker (and containers) configuration at this helper for ECR registries.
    Configure(configure::ConfigureArgs),
    /// Print a registry's password alone, for `docker login --password-stdin` and friends.
    GetLoginPassword(login::GetLoginPasswordArgs),
    /// Prepare a CI job: fetch tokens for the registries; --github-actions masks and outputs them.
    Login(login::LoginArgs),
    /// Take out of docker's and containers' config exactly what `login` added.
    Logout(login::LogoutArgs),
    /// Show what the ecr-broker and this user's cache hold.
    Status(status::StatusArgs),
    /// Print a shell completion script: bash, zsh or fish.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `docker-credential-ecr man > docker-credential-ecr.1`.
    Man,
}

/// The credential-helper protocol's actions: a usage error of one of these (or of no known
/// action) is answered as the protocol wants every failure, one line on stdout and exit 1.
const PROTOCOL_ACTIONS: &[&str] = &["get", "store", "erase", "list", "version"];

/// The action named on the command line, if it is one of ours and not a protocol action.
fn non_protocol_action() -> Option<String> {
    use clap::CommandFactory;
    let first = std::env::args().nth(1)?;
    let cmd = Cli::command();
    let known = cmd.get_subcommands().any(|c| c.get_name() == first);
    (known && !PROTOCOL_ACTIONS.contains(&first.as_str())).then_some(first)
}

/// One line for a command-line mistake.
fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ErrorKind};
    const ACTIONS: &str =
        "get, store, erase, list, version, configure, get-login-password, login, logout, status, kubelet, completions or man (see --help)";
    match e.kind() {
        ErrorKind::InvalidSubcommand => {
            let what = e.get(ContextKind::InvalidSubcommand).map(|v| v.to_string()).unwrap_or_default();
            format!("unknown action {what:?}: expected {ACTIONS}")
        }
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            format!("no action given: expected {ACTIONS}")
        }
        _ => e.render().to_string().lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ").to_string(),
    }
}

/// The name kubelet's plugin configuration uses; a symlink or copy by this name is the provider.
const KUBELET_PROVIDER_NAME: &str = "ecr-credential-provider";

fn main() {
    // Tokens pass through this process: no core dump of it, no ptrace or /proc/PID/mem by
    // other processes of the same user. One syscall, before anything is read.
    ecr_cred::sys::forbid_core_dumps_and_ptrace();
    let invoked_as = std::env::args_os().next().map(std::path::PathBuf::from);
    // The SDK warns about every credential source it tries; our own error names the cause.
    ecr_cred::logging::init("warn,aws_config=error");
    if invoked_as.as_deref().and_then(|p| p.file_name()).is_some_and(|n| n == KUBELET_PROVIDER_NAME) {
        let args = kubelet::KubeletArgs { args: std::env::args().skip(1).collect() };
        std::process::exit(kubelet::run(&args).print(KUBELET_PROVIDER_NAME));
    }
    std::process::exit(run().print("docker-credential-ecr"));
}

/// Parse the command line and run the command.
fn run() -> Reply {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are answers (exit 0). A usage error of the other commands
            // is clap's whole message on stderr, exit 2: nothing reaches a pipe such as
            // `get-login-password | docker login --password-stdin`. One of a protocol action
            // (or an unknown action) is one line on stdout and exit 1, as the
            // credential-helper protocol expects of every failure.
            if !e.use_stderr() {
                return Reply::out(e.render().to_string());
            }
            if non_protocol_action().is_some() {
                return Reply { channel: Channel::Stderr, text: e.render().to_string().into_bytes(), code: 2 };
            }
            return protocol::respond(Err(protocol::Failure::new(usage_error(&e))));
        }
    };
    let stores = protocol::Stores { ecr: &credentials::EcrTokens, keyring: &keyring::OsKeyring };
    match cli.action {
        Action::Get => protocol::respond(protocol::read_stdin().and_then(|input| protocol::get(&input, &stores))),
        Action::Store => protocol::respond(protocol::read_stdin().and_then(|input| protocol::store(&input, &stores))),
        Action::Erase => protocol::respond(protocol::read_stdin().and_then(|input| protocol::erase(&input, &stores))),
        Action::List => protocol::respond(protocol::list(&stores)),
        Action::Version => protocol::respond(Ok(format!("docker-credential-ecr {}", env!("CARGO_PKG_VERSION")))),
        Action::Kubelet(args) if args.args.first().is_some_and(|a| a == "install") => kubelet_install::run(&args.args[1..]),
        Action::Kubelet(args) => kubelet::run(&args),
        Action::Configure(args) => configure::run(&args),
        Action::GetLoginPassword(args) => login::get_login_password(&args),
        Action::Login(args) => login::login(&args),
        Action::Logout(args) => login::logout(&args),
        Action::Status(args) => status::run(&args),
        Action::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "docker-credential-ecr", &mut script);
            Reply::out(script)
        }
        Action::Man => {
            use clap::CommandFactory;
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page).expect("rendering into memory cannot fail");
            Reply::out(page)
        }
    }
}
