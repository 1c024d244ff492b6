//! Commands for scripts and CI: `get-login-password` prints a registry's password alone (for
//! `docker login --password-stdin`, `helm registry login`, `oras login`), `login` prepares a CI
//! job without `docker login`, and `logout` takes back out what `login` put in.
//!
//! `login` does what aws-actions/amazon-ecr-login does, point by point: registries named as
//! hosts, bare account IDs or `public` (none: the caller's own account's registry); on GitHub
//! Actions the passwords masked (unless `--no-mask`) and the same step outputs; with
//! `--role-to-assume`, the job's OIDC token exchanged for that role's session first. Instead of
//! storing passwords with `docker login`, it warms the token cache (or broker) and points
//! docker's and containers' config at this helper, recording exactly which entries it added
//! so `logout` can remove them. Everything that can refuse (the runner's files, the record's
//! folder, the names) is checked before any file changes.

mod github;
mod oidc;
mod record;

use crate::credentials;
use crate::reply::Reply;
use ecr_cred::aws;
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::{now_unix, Token};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["registry", "registry_flag", "region"])))]
pub struct GetLoginPasswordArgs {
    /// The ECR registry, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com
    #[arg(value_name = "HOST")]
    pub registry: Option<String>,
    /// The same, as an option.
    #[arg(long = "registry", value_name = "HOST", conflicts_with_all = ["registry", "region"])]
    pub registry_flag: Option<String>,
    /// Your own account's registry in REGION (the account from STS GetCallerIdentity), as
    /// `aws ecr get-login-password --region REGION` means it.
    #[arg(long, value_name = "REGION", conflicts_with = "registry")]
    pub region: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// The registries the job will use: hosts, 12-digit account IDs (registries in --region),
    /// or `public` (ECR Public); commas separate too. None: your own account's registry in --region.
    #[arg(value_name = "REGISTRY")]
    pub registries: Vec<String>,
    /// The region of account-ID registries and of your own (default: $AWS_REGION, $AWS_DEFAULT_REGION).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Mask the passwords in the job log (`::add-mask::`) and write the step outputs
    /// `registry`, `docker_username_<registry>` and `docker_password_<registry>` to $GITHUB_OUTPUT.
    #[arg(long)]
    pub github_actions: bool,
    /// Only fetch the tokens; leave docker's and containers' config alone.
    #[arg(long)]
    pub no_configure: bool,
    /// Do not mask the passwords (amazon-ecr-login's `mask-password: false`), so the outputs can
    /// be passed to another job, e.g. as `services:` credentials. Prints a warning.
    #[arg(long, requires = "github_actions")]
    pub no_mask: bool,
    /// Assume this IAM role with the job's GitHub Actions OIDC token (needs `permissions:
    /// id-token: write`) and use its session for the tokens and the rest of the job.
    #[arg(long, value_name = "ARN", requires = "github_actions")]
    pub role_to_assume: Option<String>,
    /// The session name for --role-to-assume.
    #[arg(long, value_name = "NAME", requires = "role_to_assume", default_value = "GitHubActions")]
    pub role_session_name: String,
    /// The session's duration for --role-to-assume, in seconds (900 to 43200; STS's default: 3600).
    #[arg(long, value_name = "SECONDS", requires = "role_to_assume", value_parser = clap::value_parser!(u32).range(900..=43200))]
    pub role_duration: Option<u32>,
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {}

/// amazon-ecr-login's warning for `mask-password: false`, word for word.
const NOT_MASKED_WARNING: &str =
    "Your docker password is not masked. See https://github.com/aws-actions/amazon-ecr-login#docker-credentials for more information.";

fn parse(host: &str) -> Result<RegistryHost, String> {
    RegistryHost::parse(host).ok_or_else(|| format!("{host:?} is not an Amazon ECR registry"))
}

fn token(registry: &RegistryHost) -> Result<Token, String> {
    credentials::token_for(registry).map_err(|e| format!("{}: {e}", registry.host))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("internal error: {e}"))
}

/// `--region`, else `$AWS_REGION`, else `$AWS_DEFAULT_REGION`.
fn region_of(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
}

/// DNS suffixes of private registries, tried in turn: the first that names a registry in the
/// region's partition is the one (`RegistryHost::parse` knows which regions belong where).
const PARTITION_SUFFIXES: &[&str] =
    &["amazonaws.com", "amazonaws.com.cn", "amazonaws.eu", "c2s.ic.gov", "sc2s.sgov.gov", "cloud.adc-e.uk", "csp.hci.ic.gov"];

/// The registry of `account` in `region`: `<account>.dkr.ecr.<region>.<partition's suffix>`.
fn private_registry(account: &str, region: &str) -> Result<RegistryHost, String> {
    PARTITION_SUFFIXES
        .iter()
        .find_map(|s| RegistryHost::parse(&format!("{account}.dkr.ecr.{region}.{s}")).filter(|r| r.region == region))
        .ok_or_else(|| format!("{region:?} is not an AWS region with ECR registries"))
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The caller's own account's registry in `region` (STS GetCallerIdentity).
fn own_registry(region: &str) -> Result<RegistryHost, String> {
    let account = runtime()?
        .block_on(aws::own_account(region))
        .map_err(|e| format!("cannot tell your own account (STS GetCallerIdentity in {region}): {e}"))?;
    private_registry(&account, region)
}

/// The password alone on stdout; errors on stderr.
pub fn get_login_password(args: &GetLoginPasswordArgs) -> Reply {
    let registry = match (args.registry.as_deref().or(args.registry_flag.as_deref()), args.region.as_deref()) {
        (Some(host), _) => parse(host),
        (None, Some(region)) => own_registry(region.trim()),
        (None, None) => Err("give a registry HOST or --region REGION".into()),
    };
    Reply::from_result("docker-credential-ecr", registry.and_then(|r| token(&r)).map(|t| format!("{}\n", t.password)))
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

/// A registry as named on the command line, before STS is asked anything.
enum Wanted {
    Host(RegistryHost),
    /// The caller's own account's registry.
    Own,
}

/// Hosts, account IDs (in `region`), `public`; none at all: the caller's own registry.
fn wanted(names: &[String], region: Option<&str>) -> Result<Vec<Wanted>, String> {
    let need_region = |what: &str| match region {
        Some(r) => Ok(r.to_string()),
        None => Err(format!("{what} needs a region: pass --region REGION or set AWS_REGION")),
    };
    let mut out = Vec::new();
    for name in names.iter().flat_map(|n| n.split(',')).map(str::trim).filter(|n| !n.is_empty()) {
        if name.eq_ignore_ascii_case("public") {
            out.push(Wanted::Host(parse("public.ecr.aws")?));
        } else if is_account_id(name) {
            out.push(Wanted::Host(private_registry(name, &need_region(&format!("account ID {name}"))?)?));
        } else {
            out.push(Wanted::Host(parse(name)?));
        }
    }
    if out.is_empty() {
        need_region("login without a registry (your own account's registry)")?;
        out.push(Wanted::Own);
    }
    Ok(out)
}

/// A role ARN as IAM writes one; anything else is refused before STS sees it.
fn valid_role_arn(arn: &str) -> bool {
    arn.len() <= 2048
        && arn.starts_with("arn:")
        && arn.contains(":role/")
        && arn.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/:".contains(&b))
}

/// Exchange the job's OIDC token for a session of `role`.
fn assume_job_role(args: &LoginArgs, role: &str, region: &str) -> Result<aws::TemporaryCredentials, String> {
    if !valid_role_arn(role) {
        return Err(format!("--role-to-assume {role:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"));
    }
    let session = args.role_session_name.trim();
    if session.is_empty() || session.len() > 64 || !session.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)) {
        return Err(format!("--role-session-name {session:?}: 1 to 64 of letters, digits and +=,.@_-"));
    }
    runtime()?.block_on(async {
        let jwt = oidc::github_job_token().await?;
        aws::assume_role_with_web_identity_for(region, role, session, &jwt, args.role_duration).await.map_err(|e| {
            let e = match e {
                aws::FetchError::Service { service, code, message, .. } if code.starts_with("AccessDenied") || code == "InvalidIdentityToken" => {
                    aws::FetchError::Service {
                        service,
                        code,
                        message,
                        hint: "the role's trust policy must allow sts:AssumeRoleWithWebIdentity for token.actions.githubusercontent.com with audience sts.amazonaws.com and this repository's sub claim",
                    }
                }
                other => other,
            };
            format!("assuming {role} with the job's OIDC token: {e}")
        })
    })
}

/// From here on this process (and, through $GITHUB_ENV, the job's later steps) signs with the
/// assumed session and asks no broker: a broker would answer with its own identity.
fn use_session(creds: &aws::TemporaryCredentials) -> Vec<(&'static str, String)> {
    let vars = vec![
        ("AWS_ACCESS_KEY_ID", creds.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key.clone()),
        ("AWS_SESSION_TOKEN", creds.session_token.clone()),
        ("ECR_BROKER_SOCKET", "none".to_string()),
    ];
    // Single-threaded here: the runtime that fetched the session is gone.
    for (k, v) in &vars {
        std::env::set_var(k, v);
    }
    vars
}

/// What `login` did, on stderr (stdout stays the job's); a failure after what was done.
pub fn login(args: &LoginArgs) -> Reply {
    let mut report = String::new();
    match run_login(args, &mut report) {
        Ok(()) => Reply::note(report),
        Err(e) => Reply::fail("docker-credential-ecr login", e).after(report),
    }
}

/// `login`'s work; what it did so far is in `report`, also when it fails.
fn run_login(args: &LoginArgs, report: &mut String) -> Result<(), String> {
    // Everything that can refuse, before anything changes.
    let mut runner = if args.github_actions { Some(github::Runner::open(args.role_to_assume.is_some())?) } else { None };
    let region = region_of(args.region.as_deref());
    let wanted = wanted(&args.registries, region.as_deref())?;
    let record = if args.no_configure { None } else { Some(record::RecordFile::locate(true)?) };

    let mut session_vars = Vec::new();
    if let Some(role) = &args.role_to_assume {
        let creds = assume_job_role(args, role, region.as_deref().unwrap_or("us-east-1"))?;
        if let Some(r) = runner.as_mut() {
            r.mask(&creds.secret_access_key)?;
            r.mask(&creds.session_token)?;
        }
        session_vars = use_session(&creds);
    }

    let mut registries: Vec<RegistryHost> = Vec::new();
    for w in wanted {
        let r = match w {
            Wanted::Host(r) => r,
            Wanted::Own => own_registry(region.as_deref().unwrap_or_default())?,
        };
        if !registries.iter().any(|x| x.host == r.host) {
            registries.push(r);
        }
    }
    let mut done: Vec<(RegistryHost, Token)> = Vec::new();
    for r in registries {
        let t = token(&r)?;
        done.push((r, t));
    }

    if let Some(record) = &record {
        let hosts: Vec<String> = done.iter().map(|(r, _)| r.host.clone()).collect();
        let (changed, changes) = crate::configure::add_cred_helpers_recorded(&hosts, true)?;
        report.push_str(&changed);
        record.append(&changes).map_err(|e| format!("{e} (`logout` cannot take these entries out)"))?;
    }

    if let Some(r) = runner.as_mut() {
        if args.no_mask {
            r.warning(NOT_MASKED_WARNING)?;
        } else {
            // Mask first, so no later line of the job log can show a password.
            for (_, t) in &done {
                r.mask(&t.password)?;
            }
        }
        let mut lines = String::new();
        if let [(reg, _)] = done.as_slice() {
            lines.push_str(&format!("registry={}\n", reg.host));
        }
        for (reg, t) in &done {
            let suffix = output_suffix(&reg.host);
            lines.push_str(&format!("docker_username_{suffix}={}\ndocker_password_{suffix}={}\n", t.username, t.password));
        }
        r.write_outputs(&lines)?;
        if !session_vars.is_empty() {
            let env: String = session_vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            r.write_env(&env)?;
        }
    }
    let now = now_unix();
    for (r, t) in &done {
        let hours = (t.expires_at - now) as f64 / 3600.0;
        report.push_str(&format!("{}: token ready, valid for {hours:.1} h\n", r.host));
    }
    Ok(())
}

/// What `logout` took out, on stderr; a failure after what was done.
pub fn logout(_args: &LogoutArgs) -> Reply {
    let mut report = String::new();
    match run_logout(&mut report) {
        Ok(()) => Reply::note(report),
        Err(e) => Reply::fail("docker-credential-ecr logout", e).after(report),
    }
}

fn run_logout(report: &mut String) -> Result<(), String> {
    let record = record::RecordFile::locate(false)?;
    let changes = record.load()?;
    if changes.is_empty() {
        report.push_str(&format!("no login recorded in {}: nothing to take out\n", record.path().display()));
        return Ok(());
    }
    // Newest first, so each file goes back through the states it went through.
    let mut failed = Vec::new();
    let mut errors = Vec::new();
    for c in changes.iter().rev() {
        match crate::configure::undo_change(c) {
            Ok(undone) => report.push_str(&undone),
            Err(e) => {
                errors.push(e);
                failed.push(c.clone());
            }
        }
    }
    failed.reverse();
    record.replace(&failed)?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} (kept in {} for another try)", errors.join("; "), record.path().display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_match_amazon_ecr_login() {
        assert_eq!(output_suffix("123456789012.dkr.ecr.us-east-1.amazonaws.com"), "123456789012_dkr_ecr_us_east_1_amazonaws_com");
        assert_eq!(output_suffix("public.ecr.aws"), "public_ecr_aws");
    }

    #[test]
    fn an_account_id_becomes_its_registry_in_the_regions_partition() {
        assert_eq!(private_registry("123456789012", "eu-west-1").unwrap().host, "123456789012.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(private_registry("123456789012", "cn-north-1").unwrap().host, "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn");
        assert_eq!(private_registry("123456789012", "us-isob-east-1").unwrap().host, "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov");
        assert!(private_registry("123456789012", "not a region").is_err());
    }
}
