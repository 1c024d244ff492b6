//! The seam between the token store and AWS: one object-safe method that fetches a token for
//! a slot. [`crate::upstream::AwsFetch`] is the real one; tests and the fleet simulation pass
//! a scripted one.

use ecr_cred::registry::{EndpointVariant, RegistryHost};
use ecr_cred::token::Token;
use std::future::Future;
use std::pin::Pin;

pub use ecr_cred::aws::FetchError;

/// A boxed future that can move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a slot is: one token per identity (a config name) x region x endpoint variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey {
    pub identity: String,
    pub region: String,
    pub variant: EndpointVariant,
}

impl SlotKey {
    pub fn for_registry(identity: &str, r: &RegistryHost) -> SlotKey {
        SlotKey { identity: identity.to_string(), region: r.region.clone(), variant: r.variant }
    }
}

/// A fetched token and, when known, the principal (normalized ARN) it was issued to.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub token: Token,
    pub principal: Option<String>,
}

/// Fetch a token for `key` (any registry of its region and variant; `registry` is one of them).
pub trait Fetch: Send + Sync + 'static {
    fn fetch<'a>(&'a self, key: &'a SlotKey, registry: &'a RegistryHost) -> BoxFuture<'a, Result<Fetched, FetchError>>;
}
