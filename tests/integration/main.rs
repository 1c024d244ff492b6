//! The integration tests: one binary (as ripgrep's `tests/tests.rs`), one module per area,
//! each driving the real `docker-credential-ecr` and `ecr-broker` as processes. Build first:
//! `cargo build --release --workspace`, then `cargo test --release --test integration`
//! (add a module path to run one area: `cargo test --release --test integration kubelet::`).
//!
//! `cargo test` as any user runs every test that needs no peer and no root. Tests that need a
//! peer (moto, the Secret Service, docker-credential-secretservice, libfaketime, node, chattr)
//! or root (other uids, /etc/hosts) are `#[ignore]`d with the reason; `tests/run-all.sh` runs
//! them with `--include-ignored`, and there a missing peer fails the test with its name, never
//! skips it.
//!
//! Where a new test goes:
//!
//! | behaviour                                                        | module               |
//! |------------------------------------------------------------------|----------------------|
//! | `get` against AWS (moto): host forms, the token cache, rotation  | [`helper_get`]       |
//! | the helper failing: bad input, no credentials, AWS refusing      | [`helper_errors`]    |
//! | `store`/`erase`/`list` for other registries (OS keyring)         | [`helper_keyring`]   |
//! | a profile or role per registry from the user's config file       | [`helper_profiles`]  |
//! | `get-login-password`, `login --github-actions`, `status`         | [`helper_commands`]  |
//! | the CI login against amazon-ecr-login, OIDC, `logout`            | [`ci_login`]         |
//! | command-line conventions, completions, man pages (both binaries) | [`helper_cli`]       |
//! | `configure`: docker and containers config files                  | [`configure`]        |
//! | kubelet's provider protocol                                      | [`kubelet`]          |
//! | `kubelet install --root` on a node's file system                 | [`kubelet_install`]  |
//! | the broker: single flight, refresh, reload, restarts, state      | [`broker_daemon`]    |
//! | `ecr-broker healthcheck`                                         | [`broker_healthcheck`] |
//! | the broker against other local users (root)                      | [`hostile_broker`]   |
//! | special files, shared folders, planted links and sockets (root)  | [`hostile_paths`]    |
//! | no secret in a log, an error or a file                           | [`secret_leak`]      |
//!
//! Shared helpers (running the binaries, moto, the fake AWS, a broker, FIFOs) are in [`support`].

mod support;

mod broker_daemon;
mod broker_healthcheck;
mod ci_login;
mod configure;
mod helper_cli;
mod helper_commands;
mod helper_errors;
mod helper_get;
mod helper_keyring;
mod helper_profiles;
mod hostile_broker;
mod hostile_paths;
mod kubelet;
mod kubelet_install;
mod secret_leak;
