//! The GitHub Actions job's OIDC token, the one `permissions: id-token: write` allows: asked of
//! the runner at `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=sts.amazonaws.com` with
//! `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`; the answer is `{"value": "<JWT>"}`.
//! The token is only handed to STS AssumeRoleWithWebIdentity, never printed or stored.

use std::time::Duration;

/// The audience configure-aws-credentials asks for and IAM's GitHub OIDC provider expects.
pub const AUDIENCE: &str = "sts.amazonaws.com";
/// A JWT is a few KiB; anything much larger is not one.
const MAX_ANSWER: usize = 64 * 1024;

pub async fn github_job_token() -> Result<String, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(bearer)) = (var("ACTIONS_ID_TOKEN_REQUEST_URL"), var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")) else {
        return Err("--role-to-assume needs the job's OIDC token, but $ACTIONS_ID_TOKEN_REQUEST_URL and \
            $ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set: give the job `permissions: id-token: write`"
            .into());
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let request = format!("{url}{sep}audience={AUDIENCE}");
    let auth = format!("bearer {bearer}");
    let headers = [("authorization", auth.as_str()), ("accept", "application/json")];
    let (status, body) = ecr_cred::aws::http_get(&request, &headers, MAX_ANSWER, Duration::from_secs(15))
        .await
        .map_err(|e| format!("could not get the job's OIDC token from $ACTIONS_ID_TOKEN_REQUEST_URL: {e}"))?;
    if status != 200 {
        return Err(format!(
            "the runner refused the job's OIDC token request: HTTP {status} (does the job have `permissions: id-token: write`?)"
        ));
    }
    let answer: serde_json::Value = serde_json::from_slice(&body).map_err(|_| "the runner's OIDC token answer is not JSON".to_string())?;
    match answer.get("value").and_then(|v| v.as_str()).map(str::trim) {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        _ => Err("the runner's OIDC token answer has no \"value\"".into()),
    }
}
