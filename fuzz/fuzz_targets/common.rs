//! Invariants every parsed registry must satisfy, shared by the fuzz targets.

use ecr_cred::registry::{valid_region, EndpointVariant, RegistryHost};

/// Parse `input`; if it is a registry, check what `RegistryHost` promises and that the
/// canonical forms (`host`, `server_url()`) parse back to the same registry.
pub fn parse_and_check(input: &str) -> Option<RegistryHost> {
    let r = RegistryHost::parse(input)?;
    assert!(!r.host.is_empty(), "{input:?}: empty host");
    assert!(
        r.host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
        "{input:?}: host {:?} is not lower-case DNS characters",
        r.host
    );
    assert!(!r.host.ends_with('.'), "{input:?}: host keeps a trailing dot");
    assert!(valid_region(&r.region), "{input:?}: region {:?} is not valid", r.region);
    match (&r.account, r.variant) {
        (None, EndpointVariant::Public) => assert_eq!(r.region, "us-east-1", "{input:?}: ECR Public outside us-east-1"),
        (Some(a), v) if v != EndpointVariant::Public => {
            assert!(a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()), "{input:?}: account {a:?}");
            assert!(r.host.starts_with(a.as_str()), "{input:?}: host does not start with the account");
            assert!(r.host.contains(&format!(".{}.", r.region)), "{input:?}: region {:?} is not in the host", r.region);
        }
        other => panic!("{input:?}: account/variant mismatch {other:?}"),
    }
    assert!(r.host.len() <= input.len(), "{input:?}: host longer than the input");
    assert_eq!(RegistryHost::parse(&r.host).as_ref(), Some(&r), "{input:?}: host does not parse back");
    assert_eq!(RegistryHost::parse(&r.server_url()).as_ref(), Some(&r), "{input:?}: server_url does not parse back");
    assert_eq!(RegistryHost::parse(&r.host.to_ascii_uppercase()).as_ref(), Some(&r), "{input:?}: case matters");
    assert_eq!(EndpointVariant::from_str_opt(r.variant.as_str()), Some(r.variant));
    Some(r)
}
