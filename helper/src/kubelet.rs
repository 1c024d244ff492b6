//! Kubelet image credential provider mode (being implemented).

#[derive(clap::Args, Debug)]
pub struct KubeletArgs {
    /// Arguments kubelet passes (e.g. `get-credentials`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Run the provider protocol: request on stdin, response on stdout; returns the exit code.
pub fn run(_args: &KubeletArgs) -> i32 {
    eprintln!("kubelet credential provider mode is not built yet");
    1
}

/// The kubelet `CredentialProviderConfig` shipped in packaging/ (printed by `configure --kubelet`).
pub const PROVIDER_CONFIG: &str = include_str!("../../packaging/kubernetes/credential-provider-config.yaml");
