//! ecr-cred: the core library behind `docker-credential-ecr` and `ecr-broker`.
//!
//! - [`registry`]: which hosts are ECR registries, and their account, region and endpoint variant.
//! - [`token`]: an authorization token decoded, and when it may still be handed out.
//! - [`principal`]: who a token belongs to, and a local fingerprint of the credential source.
//! - [`cache`]: the per-user token cache on disk.
//! - [`broker`]: the broker's wire types and the helper's blocking client for it.
//! - [`aws`]: the only module that talks to AWS (credentials, STS, ECR, ECR Public).
//! - [`config`]: the TOML file of identities and rules, read by the broker and the helper.
//! - [`paths`]: home, cache and config locations from the environment.
//! - [`safe_fs`]: opening files we own without following links or blocking; private folders.
//! - [`sys`]: every `unsafe` libc call of the library and the helper, behind safe functions.
//! - [`users`]: users and groups by name and number (NSS, or the files in static builds).
//! - [`logging`]: stderr logging that never prints a secret.

#[cfg(feature = "aws")]
pub mod aws;
pub mod broker;
pub mod cache;
#[cfg(feature = "aws")]
pub mod config;
pub mod logging;
pub mod paths;
pub mod principal;
pub mod registry;
pub mod safe_fs;
pub mod sys;
pub mod token;
pub mod users;

pub use registry::{EndpointVariant, RegistryHost};
pub use token::Token;
