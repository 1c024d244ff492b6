//! Commands for scripts and CI: `get-login-password` prints a registry's password alone (for
//! `docker login --password-stdin`, `helm registry login`, `oras login`), and `login` prepares
//! a CI job without `docker login`: fetches each registry's token (warming the cache or
//! broker), points the job's docker and containers config at this helper for those registries,
//! and, for GitHub Actions, masks the passwords and writes the step outputs
//! aws-actions/amazon-ecr-login writes.

use crate::credentials;
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::{now_unix, Token};
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct GetLoginPasswordArgs {
    /// The ECR registry, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com
    pub registry: String,
}

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// The ECR registries the job will use.
    #[arg(required = true)]
    pub registries: Vec<String>,
    /// Mask the passwords in the job log (`::add-mask::`) and write the step outputs
    /// `registry`, `docker_username_<registry>` and `docker_password_<registry>` to $GITHUB_OUTPUT.
    #[arg(long)]
    pub github_actions: bool,
    /// Only fetch the tokens; leave docker's and containers' config alone.
    #[arg(long)]
    pub no_configure: bool,
}

fn parse(host: &str) -> Result<RegistryHost, String> {
    RegistryHost::parse(host).ok_or_else(|| format!("{host:?} is not an Amazon ECR registry"))
}

fn token(registry: &RegistryHost) -> Result<Token, String> {
    credentials::token_for(registry).map_err(|e| format!("{}: {e}", registry.host))
}

pub fn get_login_password(args: &GetLoginPasswordArgs) -> i32 {
    match parse(&args.registry).and_then(|r| token(&r)) {
        Ok(t) => {
            println!("{}", t.password);
            0
        }
        Err(e) => {
            eprintln!("docker-credential-ecr: {e}");
            1
        }
    }
}

/// The output-name suffix amazon-ecr-login uses: the registry with every run of characters
/// other than letters, digits and `_` replaced by `_`.
pub fn output_suffix(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

pub fn login(args: &LoginArgs) -> i32 {
    let mut done: Vec<(RegistryHost, Token)> = Vec::new();
    for host in &args.registries {
        match parse(host).and_then(|r| token(&r).map(|t| (r, t))) {
            Ok(pair) => done.push(pair),
            Err(e) => {
                eprintln!("docker-credential-ecr login: {e}");
                return 1;
            }
        }
    }
    if !args.no_configure {
        let hosts: Vec<String> = args.registries.iter().map(|h| h.trim().to_string()).collect();
        match crate::configure::add_cred_helpers(&hosts, true) {
            Ok(report) => eprint!("{report}"),
            Err(e) => {
                eprintln!("docker-credential-ecr login: {e}");
                return 1;
            }
        }
    }
    if args.github_actions {
        if let Err(e) = github_outputs(&done) {
            eprintln!("docker-credential-ecr login: {e}");
            return 1;
        }
    }
    let now = now_unix();
    for (r, t) in &done {
        let hours = (t.expires_at - now) as f64 / 3600.0;
        eprintln!("{}: token ready, valid for {hours:.1} h", r.host);
    }
    0
}

fn github_outputs(done: &[(RegistryHost, Token)]) -> Result<(), String> {
    let path = std::env::var_os("GITHUB_OUTPUT").ok_or("--github-actions needs $GITHUB_OUTPUT (set by the GitHub Actions runner)")?;
    // Mask first, so no later line of the job log can show a password.
    let mut stdout = std::io::stdout().lock();
    for (_, t) in done {
        writeln!(stdout, "::add-mask::{}", t.password).map_err(|e| format!("stdout: {e}"))?;
    }
    let mut lines = String::new();
    if let [(r, _)] = done {
        lines.push_str(&format!("registry={}\n", r.host));
    }
    for (r, t) in done {
        let suffix = output_suffix(&r.host);
        lines.push_str(&format!("docker_username_{suffix}={}\ndocker_password_{suffix}={}\n", t.username, t.password));
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(|e| format!("cannot open $GITHUB_OUTPUT {}: {e}", std::path::Path::new(&path).display()))?;
    f.write_all(lines.as_bytes()).map_err(|e| format!("cannot write $GITHUB_OUTPUT: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_match_amazon_ecr_login() {
        assert_eq!(output_suffix("123456789012.dkr.ecr.us-east-1.amazonaws.com"), "123456789012_dkr_ecr_us_east_1_amazonaws_com");
        assert_eq!(output_suffix("public.ecr.aws"), "public_ecr_aws");
    }
}
