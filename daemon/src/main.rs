//! `ecr-broker`: one daemon per host (or per user) that holds Amazon ECR tokens for every
//! client, refreshes them before they expire and makes one upstream call however many ask.
//!
//! This file only reads the command line and configuration, resolves the default paths,
//! takes the socket (passed by systemd, else bound here, before the runtime starts threads)
//! and turns signals into [`ecr_broker::run`]'s reload (SIGHUP) and shutdown (SIGTERM,
//! SIGINT). Everything else is the library (daemon/src/lib.rs).

use clap::Parser;
use ecr_broker::{healthcheck, listener, systemd, RunOptions};
use ecr_cred::config::{self, Config};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "ecr-broker", version, about = "Holds and refreshes Amazon ECR tokens for every client on this host, over a Unix socket")]
struct Cli {
    /// Configuration file [system: /etc/ecr-broker/config.toml; user: ~/.config/ecr-cred/config.toml, else the older ~/.config/ecr-broker/config.toml]
    #[arg(long)]
    config: Option<PathBuf>,
    /// Socket path [system: /run/ecr-broker/broker.sock; user: $XDG_RUNTIME_DIR/ecr-broker.sock, else ~/.local/state/ecr-broker/broker.sock]
    #[arg(long)]
    socket: Option<PathBuf>,
    /// State file keeping tokens across restarts [system: /var/lib/ecr-broker/state.json; user: ~/.local/state/ecr-broker/state.json]
    #[arg(long)]
    state: Option<PathBuf>,
    /// Run as a user's broker (the default when not started as root)
    #[arg(long, conflicts_with = "system")]
    user: bool,
    /// Use the system paths even when not root (a dedicated service user)
    #[arg(long)]
    system: bool,
    /// Check the configuration and exit
    #[arg(long)]
    check_config: bool,
    /// Print a shell completion script (bash, zsh or fish) and exit
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<clap_complete::Shell>,
    /// Print the manual page (roff) and exit
    #[arg(long, exclusive = true)]
    man: bool,
}

/// `--completions SHELL` and `--man`: print and exit.
fn print_docs(cli: &Cli) {
    use clap::CommandFactory;
    use std::io::Write;
    let mut text = Vec::new();
    if let Some(shell) = cli.completions {
        clap_complete::generate(shell, &mut Cli::command(), "ecr-broker", &mut text);
    } else if cli.man {
        clap_mangen::Man::new(Cli::command()).render(&mut text).expect("rendering into memory cannot fail");
    } else {
        return;
    }
    // A closed pipe (`| head`) is a message, not a panic.
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(&text).and_then(|()| out.flush()) {
        eprintln!("ecr-broker: cannot write to stdout: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

/// Paths and modes that differ between a system broker and a user's.
struct Defaults {
    config: PathBuf,
    socket: PathBuf,
    state: PathBuf,
    socket_mode: u32,
}

fn defaults(user_mode: bool) -> Defaults {
    if !user_mode {
        return Defaults {
            config: "/etc/ecr-broker/config.toml".into(),
            socket: ecr_cred::broker::SYSTEM_SOCKET.into(),
            state: "/var/lib/ecr-broker/state.json".into(),
            socket_mode: 0o660,
        };
    }
    let home = ecr_cred::paths::home_dir().unwrap_or_else(|| PathBuf::from("."));
    let xdg = |var: &str, fallback: &str| {
        std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| home.join(fallback))
    };
    Defaults {
        // The file the helper reads too; the older broker-only path while the new one is absent.
        config: match (config::user_config_path(), config::legacy_user_config_path()) {
            (Some(new), Some(old)) if !new.exists() && old.exists() => old,
            (Some(new), _) => new,
            _ => xdg("XDG_CONFIG_HOME", ".config").join("ecr-cred/config.toml"),
        },
        // The helper looks in the same place (one function for both).
        socket: ecr_cred::broker::user_socket().unwrap_or_else(|| xdg("XDG_STATE_HOME", ".local/state").join("ecr-broker/broker.sock")),
        state: xdg("XDG_STATE_HOME", ".local/state").join("ecr-broker/state.json"),
        socket_mode: 0o600,
    }
}

fn main() {
    // `ecr-broker healthcheck ...`: a probe for a running broker, not a broker (healthcheck.rs).
    if std::env::args_os().nth(1).is_some_and(|a| a == "healthcheck") {
        std::process::exit(healthcheck::run(std::env::args_os().skip(2)));
    }
    not_dumpable();
    ecr_cred::logging::init("info");
    let cli = Cli::parse();
    print_docs(&cli);
    // SAFETY: geteuid cannot fail.
    let user_mode = cli.user || (!cli.system && unsafe { libc::geteuid() } != 0);
    let d = defaults(user_mode);
    let config_path = cli.config.clone().unwrap_or(d.config.clone());
    let config = match Config::load(&config_path, cli.config.is_some()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ecr-broker: {e}");
            std::process::exit(2);
        }
    };
    if cli.check_config {
        println!("{}: ok ({} identities, {} rules)", config_path.display(), config.identity_names().len(), config.rules.len());
        return;
    }
    let socket_path = cli.socket.clone().or(config.socket.clone()).unwrap_or(d.socket);
    let state_path = cli.state.clone().or(config.state_file.clone()).unwrap_or(d.state);
    let socket_mode = config.socket_mode.as_deref().map(|m| config::parse_mode(m).expect("checked on load")).unwrap_or(d.socket_mode);
    let socket_group = match config.socket_group.as_deref().map(group_id).transpose() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("ecr-broker: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = check_paths(&socket_path, &state_path, socket_mode) {
        eprintln!("ecr-broker: {e}");
        std::process::exit(1);
    }
    let fd_room = raise_fd_limit();
    // SAFETY: one thread so far (the runtime is built below), so changing the environment is sound.
    let (std_listener, bound_by_us) = match unsafe { systemd::activated_listener() } {
        Some(l) => (l, false),
        None => match listener::bind(&socket_path, socket_mode, socket_group) {
            Ok(l) => (l, true),
            Err(e) => {
                eprintln!("ecr-broker: {e}");
                std::process::exit(1);
            }
        },
    };
    let remove_socket = || {
        if bound_by_us {
            let _ = std::fs::remove_file(&socket_path);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let options = RunOptions { fd_room, ..RunOptions::new(config_path, state_path) };
    let result = runtime.block_on(async {
        std_listener.set_nonblocking(true).expect("nonblocking socket");
        let listener = tokio::net::UnixListener::from_std(std_listener).expect("socket into tokio");
        tracing::info!(socket = %socket_path.display(), mode = format!("{socket_mode:o}"), bound_by_us, "listening");
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                // One pending reload is enough: it reads the file as it is then.
                let _ = reload_tx.try_send(());
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        ecr_broker::run(listener, config, RunOptions { reload: Some(reload_rx), ..options }, shutdown).await
    });
    remove_socket();
    if let Err(e) = result {
        eprintln!("ecr-broker: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

/// Refuse a socket or state file in a folder another user can write to (they could swap the
/// socket for their own, or plant links and FIFOs), and create a missing socket folder: 0700,
/// or 0711 when the socket's mode lets others connect (they must reach it).
fn check_paths(socket: &std::path::Path, state: &std::path::Path, socket_mode: u32) -> Result<(), String> {
    use ecr_cred::safe_fs;
    for (what, path) in [("socket", socket), ("state file", state)] {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        safe_fs::check_parent_for_our_file(dir).map_err(|why| format!("refusing the {what} {}: {why}", path.display()))?;
    }
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err()) {
        let mode = if socket_mode & 0o077 != 0 { 0o711 } else { 0o700 };
        safe_fs::private_dir_with_mode(dir, mode).map_err(|why| format!("socket folder {}: {why}", dir.display()))?;
    }
    Ok(())
}

/// No core dumps and no ptrace by other processes of our uid: our memory holds tokens.
fn not_dumpable() {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) only changes a flag of this process.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit reads the struct we pass.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
}

/// Raise the soft fd limit to the hard limit; the connections it leaves room for (all but 64
/// fds, kept for the state file, AWS and systemd).
fn raise_fd_limit() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 960;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    let soft = usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX);
    tracing::info!(fd_limit = soft, "file descriptor limit");
    soft.saturating_sub(64).max(16)
}

/// A group name or number to a gid.
fn group_id(name: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    ecr_cred::users::gid_by_name(name).ok_or_else(|| format!("socket_group {name:?}: no such group"))
}
