//! Command-line conventions of both binaries: usage errors of the non-protocol commands on
//! stderr with exit 2 (and nothing on a password pipe), shell completions and man pages, and
//! `status --json`. Real processes; bash checks the completion script it is given.
//!
//! Build first: `cargo build --release --workspace`, then `cargo test --release --test integration helper_cli::`.

use crate::support;

use std::process::Command;
use std::time::Duration;
use support::fake_aws::FakeAws;
use support::{broker::broker_bin, run_command, Helper};

const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

#[test]
fn get_login_password_without_a_registry_prints_nothing_on_stdout_and_exits_2() {
    let run = Helper::new().run(&["get-login-password"], b"");
    assert_eq!(run.code, 2, "{run:#?}");
    assert_eq!(run.stdout, "", "stdout is the password pipe: nothing but a password, ever");
    assert!(run.stderr.contains("required arguments were not provided"), "clap's whole message on stderr: {run:#?}");
    assert!(run.stderr.contains("Usage:"), "whole, with the usage line: {run:#?}");
}

#[test]
fn usage_errors_of_other_commands_go_to_stderr_with_exit_2_and_protocol_ones_stay_on_stdout() {
    let h = Helper::new();
    for args in [&["configure", "--no-such-flag"][..], &["status", "extra"], &["completions", "tcsh"], &["login", "--bogus"]] {
        let run = h.run(args, b"");
        assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{args:?}: {run:#?}");
        assert!(run.stderr.starts_with("error:"), "{args:?}: {run:#?}");
    }
    // The credential-helper protocol wants every failure as a line on stdout and exit 1.
    let run = h.run(&["get", "extra"], format!("{HOST}\n").as_bytes());
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(!run.stdout.is_empty(), "{run:#?}");
}

fn ok_stdout(mut cmd: Command) -> String {
    cmd.env_clear().env("PATH", "/usr/bin:/bin");
    let run = run_command(cmd, b"", Duration::from_secs(30));
    assert_eq!(run.code, 0, "{run:#?}");
    run.stdout
}

#[test]
fn both_binaries_print_completions_for_bash_zsh_and_fish_and_bash_loads_them() {
    let dir = tempfile::tempdir().unwrap();
    for (bin, args, name) in
        [(support::helper_bin(), vec!["completions"], "docker-credential-ecr"), (broker_bin(), vec!["--completions"], "ecr-broker")]
    {
        let script = |shell: &str| {
            let mut c = Command::new(&bin);
            c.args(&args).arg(shell);
            ok_stdout(c)
        };
        let bash = script("bash");
        let file = dir.path().join(format!("{name}.bash"));
        std::fs::write(&file, &bash).unwrap();
        let bash_path = ["/usr/bin/bash", "/bin/bash"].into_iter().find(|p| std::path::Path::new(p).exists()).expect("bash is needed");
        let mut c = Command::new(bash_path);
        c.arg("-c").arg(format!("source {} && complete -p {name}", file.display()));
        let loaded = ok_stdout(c);
        assert!(loaded.contains(name), "bash registered a completion for {name}: {loaded}");
        assert!(script("zsh").starts_with(&format!("#compdef {name}")), "{name} zsh");
        assert!(script("fish").contains(&format!("complete -c {name}")), "{name} fish");
    }
    let bash = {
        let mut c = Command::new(support::helper_bin());
        c.args(["completions", "bash"]);
        ok_stdout(c)
    };
    for sub in ["get-login-password", "configure", "status", "completions"] {
        assert!(bash.contains(sub), "the helper's bash completion knows {sub}");
    }
}

#[test]
fn both_binaries_print_a_man_page() {
    for (bin, arg, name) in [(support::helper_bin(), "man", "docker-credential-ecr"), (broker_bin(), "--man", "ecr-broker")] {
        let mut c = Command::new(bin);
        c.arg(arg);
        let page = ok_stdout(c);
        assert!(page.contains(&format!(".TH {name} 1")), "{name}: a section 1 page:\n{page}");
        assert!(page.contains(".SH NAME") && page.contains(".SH OPTIONS"), "{name}:\n{page}");
    }
}

#[test]
fn status_json_carries_the_tables_facts_and_no_secret() {
    let fake = FakeAws::start();
    let mut h = Helper::new();
    h.aws(&fake.endpoint(), "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    h.get(HOST).assert_ok();
    let run = h.run(&["status", "--json"], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert_eq!(v["broker"]["state"], "not used");
    let tokens = v["cache"]["tokens"].as_array().expect("cache tokens");
    assert_eq!(tokens.len(), 1, "{v}");
    assert_eq!(tokens[0]["principal"], "arn:aws:iam::123456789012:user/fake");
    assert_eq!(tokens[0]["region"], "us-east-1");
    assert_eq!(tokens[0]["fresh"], true);
    assert!(tokens[0]["expires_at"].as_i64().unwrap() > v["now"].as_i64().unwrap() + 11 * 3600);
    assert_eq!(v["cache"]["path"], h.default_cache_dir().join("tokens.json").to_str().unwrap());
    assert!(!run.stdout.contains(&FakeAws::token_password(1)), "no token in status");
    assert!(!run.stdout.contains("wJalrXUtnFEMI"), "no secret key in status");
}
