//! Registry names: recognise an Amazon ECR registry host and say where its tokens come from.
//!
//! Everything that reaches the helper as a "server URL" passes through [`RegistryHost::parse`].
//! It accepts what docker, containers/image and kubelet actually send (a bare host, a URL with
//! scheme, port, path or trailing slash, any case, surrounding white space) and answers `None`
//! for anything that is not an ECR registry, so the helper can say "not a registry I serve"
//! without touching AWS.

use std::fmt;

/// How the ECR API must be reached for a registry: which service and which endpoint variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointVariant {
    /// `<acct>.dkr.ecr.<region>.<partition suffix>`
    Standard,
    /// `<acct>.dkr.ecr-fips.<region>.<partition suffix>`: FIPS endpoints.
    Fips,
    /// `<acct>.dkr-ecr.<region>.on.aws` (or `.on.amazonwebservices.com.cn`): dual-stack.
    DualStack,
    /// `<acct>.dkr-ecr-fips.<region>.on.aws`: dual-stack and FIPS.
    DualStackFips,
    /// `public.ecr.aws` / `ecr-public.aws.com`: ECR Public, tokens from `ecr-public` in us-east-1.
    Public,
}

impl EndpointVariant {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointVariant::Standard => "standard",
            EndpointVariant::Fips => "fips",
            EndpointVariant::DualStack => "dualstack",
            EndpointVariant::DualStackFips => "dualstack-fips",
            EndpointVariant::Public => "public",
        }
    }

    pub fn from_str_opt(s: &str) -> Option<Self> {
        Some(match s {
            "standard" => EndpointVariant::Standard,
            "fips" => EndpointVariant::Fips,
            "dualstack" => EndpointVariant::DualStack,
            "dualstack-fips" => EndpointVariant::DualStackFips,
            "public" => EndpointVariant::Public,
            _ => return None,
        })
    }

    pub fn fips(self) -> bool {
        matches!(self, EndpointVariant::Fips | EndpointVariant::DualStackFips)
    }

    pub fn dual_stack(self) -> bool {
        matches!(self, EndpointVariant::DualStack | EndpointVariant::DualStackFips)
    }
}

impl fmt::Display for EndpointVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ECR registry host, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryHost {
    /// The host name, lower case, without scheme, port or path.
    pub host: String,
    /// The 12-digit account id; `None` for ECR Public.
    pub account: Option<String>,
    /// The region whose ECR API hands out tokens for this registry.
    pub region: String,
    pub variant: EndpointVariant,
}

/// The longest server URL we look at; anything longer is not a registry name.
const MAX_INPUT: usize = 2048;

/// DNS suffixes of private ECR registries, with which region prefixes belong to them and
/// which endpoint forms they have. Order matters only for readability.
struct Partition {
    suffix: &'static str,
    /// `dkr.ecr` names (`false`: only the dual-stack `dkr-ecr` form lives under this suffix).
    classic: bool,
    /// `dkr-ecr` dual-stack names.
    dual_stack: bool,
    /// `-fips` forms exist.
    fips: bool,
    /// Region must satisfy this.
    region_ok: fn(&str) -> bool,
}

fn region_commercial(r: &str) -> bool {
    !region_china(r) && !r.starts_with("us-iso") && !r.starts_with("eu-iso") && !r.starts_with("eusc-")
}
fn region_china(r: &str) -> bool {
    r.starts_with("cn-")
}
fn region_iso(r: &str) -> bool {
    r.starts_with("us-iso-")
}
fn region_isob(r: &str) -> bool {
    r.starts_with("us-isob-")
}
fn region_isoe(r: &str) -> bool {
    r.starts_with("eu-isoe-")
}
fn region_isof(r: &str) -> bool {
    r.starts_with("us-isof-")
}
fn region_eusc(r: &str) -> bool {
    r.starts_with("eusc-")
}

const PARTITIONS: &[Partition] = &[
    Partition { suffix: "amazonaws.com", classic: true, dual_stack: false, fips: true, region_ok: region_commercial },
    Partition { suffix: "amazonaws.com.cn", classic: true, dual_stack: false, fips: false, region_ok: region_china },
    Partition { suffix: "on.aws", classic: false, dual_stack: true, fips: true, region_ok: region_commercial },
    Partition { suffix: "on.amazonwebservices.com.cn", classic: false, dual_stack: true, fips: false, region_ok: region_china },
    Partition { suffix: "amazonaws.eu", classic: true, dual_stack: false, fips: false, region_ok: region_eusc },
    Partition { suffix: "c2s.ic.gov", classic: true, dual_stack: false, fips: true, region_ok: region_iso },
    Partition { suffix: "sc2s.sgov.gov", classic: true, dual_stack: false, fips: true, region_ok: region_isob },
    Partition { suffix: "cloud.adc-e.uk", classic: true, dual_stack: false, fips: true, region_ok: region_isoe },
    Partition { suffix: "csp.hci.ic.gov", classic: true, dual_stack: false, fips: true, region_ok: region_isof },
];

/// Host names of ECR Public.
const PUBLIC_HOSTS: &[&str] = &["public.ecr.aws", "ecr-public.aws.com"];

impl RegistryHost {
    /// Parse a server URL as docker, containers/image or kubelet sends it.
    /// Returns `None` when it is not an ECR registry.
    pub fn parse(input: &str) -> Option<RegistryHost> {
        if input.len() > MAX_INPUT {
            return None;
        }
        let host = host_of(input)?;
        if PUBLIC_HOSTS.contains(&host.as_str()) {
            return Some(RegistryHost { host, account: None, region: "us-east-1".to_string(), variant: EndpointVariant::Public });
        }
        parse_private(&host)
    }

    /// `https://<host>`, the form docker stores and `list` reports.
    pub fn server_url(&self) -> String {
        format!("https://{}", self.host)
    }
}

impl fmt::Display for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)
    }
}

/// Extract the lower-case host from a server URL: strip white space, an `http(s)://` scheme,
/// a path, a port and one trailing dot. `None` for junk: a host of anything but letters, digits,
/// `-` and `.`, which refuses user info (`user@host`) and IP literals (`[::1]`) too.
fn host_of(input: &str) -> Option<String> {
    let s = input.trim();
    let lower = s.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("https://") {
        r
    } else if let Some(r) = lower.strip_prefix("http://") {
        r
    } else if lower.contains("://") {
        return None;
    } else {
        lower.as_str()
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = match authority.split_once(':') {
        Some((h, port)) => {
            if !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
                return None;
            }
            h
        }
        None => authority,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        return None;
    }
    Some(host.to_string())
}

/// `<account>.dkr.ecr[-fips].<region>.<suffix>` or `<account>.dkr-ecr[-fips].<region>.<suffix>`.
fn parse_private(host: &str) -> Option<RegistryHost> {
    let (account, rest) = host.split_once('.')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (variant, rest) = match rest.split_once('.')? {
        ("dkr", rest) => match rest.split_once('.')? {
            ("ecr", rest) => (EndpointVariant::Standard, rest),
            ("ecr-fips", rest) => (EndpointVariant::Fips, rest),
            _ => return None,
        },
        ("dkr-ecr", rest) => (EndpointVariant::DualStack, rest),
        ("dkr-ecr-fips", rest) => (EndpointVariant::DualStackFips, rest),
        _ => return None,
    };
    let (region, suffix) = rest.split_once('.')?;
    let partition = PARTITIONS.iter().find(|p| p.suffix == suffix)?;
    let form_exists = match variant {
        EndpointVariant::Standard => partition.classic,
        EndpointVariant::Fips => partition.classic && partition.fips,
        EndpointVariant::DualStack => partition.dual_stack,
        EndpointVariant::DualStackFips => partition.dual_stack && partition.fips,
        EndpointVariant::Public => false,
    };
    if !form_exists || !valid_region(region) || !(partition.region_ok)(region) {
        return None;
    }
    Some(RegistryHost { host: host.to_string(), account: Some(account.to_string()), region: region.to_string(), variant })
}

/// A region name: `xx-name-N`, `us-gov-west-1`, `us-isob-east-1`, `eusc-de-east-1`:
/// lower-case letter groups joined by '-', ending in a number.
pub fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    if parts.len() < 3 || region.len() > 32 {
        return false;
    }
    let (last, words) = parts.split_last().expect("at least three parts");
    let number_ok = !last.is_empty() && last.len() <= 2 && last.bytes().all(|b| b.is_ascii_digit());
    let first_ok = (2..=4).contains(&words[0].len());
    let words_ok = words.iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()));
    number_ok && first_ok && words_ok
}

#[cfg(test)]
mod tests {
    use super::EndpointVariant::*;
    use super::*;

    /// (input, expected: None for "not ECR", Some((account, region, variant)))
    type Case = (&'static str, Option<(Option<&'static str>, &'static str, EndpointVariant)>);

    const A: Option<&str> = Some("123456789012");

    const CASES: &[Case] = &[
        // Commercial, in every shape a client sends it.
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", Some((A, "us-east-1", Standard))),
        ("https://123456789012.dkr.ecr.us-east-1.amazonaws.com", Some((A, "us-east-1", Standard))),
        ("http://123456789012.dkr.ecr.us-east-1.amazonaws.com", Some((A, "us-east-1", Standard))),
        ("HTTPS://123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM", Some((A, "us-east-1", Standard))),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/", Some((A, "us-east-1", Standard))),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com:443", Some((A, "us-east-1", Standard))),
        ("https://123456789012.dkr.ecr.us-east-1.amazonaws.com:5443/v2/", Some((A, "us-east-1", Standard))),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.0", Some((A, "us-east-1", Standard))),
        ("  123456789012.dkr.ecr.us-east-1.amazonaws.com\n", Some((A, "us-east-1", Standard))),
        ("\t123456789012.dkr.ecr.eu-west-1.amazonaws.com\r\n", Some((A, "eu-west-1", Standard))),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com.", Some((A, "us-east-1", Standard))),
        ("123456789012.dkr.ecr.ap-southeast-2.amazonaws.com", Some((A, "ap-southeast-2", Standard))),
        ("123456789012.dkr.ecr.me-central-1.amazonaws.com", Some((A, "me-central-1", Standard))),
        ("123456789012.dkr.ecr.il-central-1.amazonaws.com", Some((A, "il-central-1", Standard))),
        ("123456789012.dkr.ecr.ap-southeast-5.amazonaws.com", Some((A, "ap-southeast-5", Standard))),
        ("000000000000.dkr.ecr.us-west-2.amazonaws.com", Some((Some("000000000000"), "us-west-2", Standard))),
        // GovCloud lives under amazonaws.com, with FIPS forms.
        ("123456789012.dkr.ecr.us-gov-west-1.amazonaws.com", Some((A, "us-gov-west-1", Standard))),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", Some((A, "us-gov-west-1", Fips))),
        ("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", Some((A, "us-east-1", Fips))),
        ("https://123456789012.dkr.ecr-fips.us-west-2.amazonaws.com/", Some((A, "us-west-2", Fips))),
        // China.
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", Some((A, "cn-north-1", Standard))),
        ("123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn", Some((A, "cn-northwest-1", Standard))),
        // Dual-stack.
        ("123456789012.dkr-ecr.us-east-1.on.aws", Some((A, "us-east-1", DualStack))),
        ("https://123456789012.dkr-ecr.eu-west-1.on.aws:443/", Some((A, "eu-west-1", DualStack))),
        ("123456789012.dkr-ecr-fips.us-east-1.on.aws", Some((A, "us-east-1", DualStackFips))),
        ("123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn", Some((A, "cn-north-1", DualStack))),
        // EU sovereign cloud and ISO partitions.
        ("123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", Some((A, "eusc-de-east-1", Standard))),
        ("123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov", Some((A, "us-iso-east-1", Standard))),
        ("123456789012.dkr.ecr.us-iso-west-1.c2s.ic.gov", Some((A, "us-iso-west-1", Standard))),
        ("123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov", Some((A, "us-isob-east-1", Standard))),
        ("123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk", Some((A, "eu-isoe-west-1", Standard))),
        ("123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov", Some((A, "us-isof-south-1", Standard))),
        // ECR Public: tokens from us-east-1 whatever the caller's region.
        ("public.ecr.aws", Some((None, "us-east-1", Public))),
        ("https://public.ecr.aws/", Some((None, "us-east-1", Public))),
        ("public.ecr.aws/docker/library/alpine:3", Some((None, "us-east-1", Public))),
        ("ecr-public.aws.com", Some((None, "us-east-1", Public))),
        ("PUBLIC.ECR.AWS", Some((None, "us-east-1", Public))),
        // Not ECR: look-alikes and junk.
        ("", None),
        ("   ", None),
        ("docker.io", None),
        ("https://index.docker.io/v1/", None),
        ("ghcr.io", None),
        ("localhost:5000", None),
        ("12345678901.dkr.ecr.us-east-1.amazonaws.com", None),
        ("1234567890123.dkr.ecr.us-east-1.amazonaws.com", None),
        ("12345678901a.dkr.ecr.us-east-1.amazonaws.com", None),
        ("123456789012.dkr-ecr.us-east-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.us-east-1.on.aws", None),
        ("123456789012.dkr-ecr-fips.cn-north-1.on.amazonwebservices.com.cn", None),
        ("123456789012.dkr.ecr-fips.cn-north-1.amazonaws.com.cn", None),
        ("123456789012.dkr.ecr..amazonaws.com", None),
        ("123456789012..ecr.us-east-1.amazonaws.com", None),
        (".dkr.ecr.us-east-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.com", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.co", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com.cn.evil", None),
        ("evil.com/123456789012.dkr.ecr.us-east-1.amazonaws.com", None),
        ("https://evil.com/123456789012.dkr.ecr.us-east-1.amazonaws.com", None),
        ("https://AWS@123456789012.dkr.ecr.us-east-1.amazonaws.com", None),
        ("https://user:pass@123456789012.dkr.ecr.us-east-1.amazonaws.com/", None),
        ("x.123456789012.dkr.ecr.us-east-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com:", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com:https", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com:123456", None),
        ("ftp://123456789012.dkr.ecr.us-east-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.useast1.amazonaws.com", None),
        ("123456789012.dkr.ecr.us-east.amazonaws.com", None),
        ("123456789012.dkr.ecr.us_east_1.amazonaws.com", None),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com.cn", None),
        ("123456789012.dkr.ecr.us-east-1.c2s.ic.gov", None),
        ("123456789012.dkr.ecr.us-iso-east-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.eusc-de-east-1.amazonaws.com", None),
        ("123456789012.dkr.ecrfips.us-east-1.amazonaws.com", None),
        ("123456789012.api.ecr.us-east-1.amazonaws.com", None),
        ("api.ecr.us-east-1.amazonaws.com", None),
        ("ecr.us-east-1.amazonaws.com", None),
        ("public.ecr.aws.evil.com", None),
        ("evilpublic.ecr.aws", None),
        ("xn--123456789012.dkr.ecr.us-east-1.amazonaws.com", None),
        ("[::1]:5000", None),
        ("127.0.0.1", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com\0", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com extra", None),
        ("123456789012 .dkr.ecr.us-east-1.amazonaws.com", None),
        ("１２３４５６７８９０１２.dkr.ecr.us-east-1.amazonaws.com", None),
    ];

    #[test]
    fn registry_table() {
        assert!(CASES.len() >= 60, "the table keeps at least 60 cases");
        let mut failures = Vec::new();
        for (input, want) in CASES {
            let got = RegistryHost::parse(input).map(|r| (r.account, r.region, r.variant));
            let want = want.map(|(a, r, v)| (a.map(str::to_string), r.to_string(), v));
            if got != want {
                failures.push(format!("{input:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn host_is_canonical_lower_case_without_scheme_port_or_path() {
        let r = RegistryHost::parse(" HTTPS://123456789012.DKR.ECR.EU-WEST-1.AMAZONAWS.COM:443/v2/x ").unwrap();
        assert_eq!(r.host, "123456789012.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(r.server_url(), "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com");
    }

    #[test]
    fn oversized_input_is_not_a_registry() {
        let long = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{}", "a".repeat(5000));
        assert_eq!(RegistryHost::parse(&long), None);
    }

    #[test]
    fn variant_names_round_trip() {
        for v in [Standard, Fips, DualStack, DualStackFips, Public] {
            assert_eq!(EndpointVariant::from_str_opt(v.as_str()), Some(v));
        }
    }

    #[test]
    fn region_shapes_aws_never_uses_are_rejected() {
        for bad in [
            "us-east-",
            "us-east-x",
            "us-east-100",
            "us-e4st-1",
            "us--east-1",
            "-us-east-1",
            "u-east-1",
            "abcde-east-1",
            "us-east",
            "us1",
            "",
        ] {
            assert!(!valid_region(bad), "{bad:?} is not a region name");
            let host = format!("123456789012.dkr.ecr.{bad}.amazonaws.com");
            assert_eq!(RegistryHost::parse(&host), None, "{host:?} is not a registry");
        }
        assert!(!valid_region("US-EAST-1"), "region names are lower case (parse lower-cases the host first)");
        for good in ["us-east-1", "us-east-10", "eusc-de-east-1", "us-gov-west-1", "ap-southeast-5"] {
            assert!(valid_region(good), "{good:?} is a region name");
        }
    }

    #[test]
    fn region_names_are_at_most_32_characters() {
        let at_limit = format!("us-{}-1", "a".repeat(27));
        assert_eq!(at_limit.len(), 32);
        assert!(valid_region(&at_limit));
        let over = format!("us-{}-1", "a".repeat(28));
        assert!(!valid_region(&over));
        assert!(RegistryHost::parse(&format!("123456789012.dkr.ecr.{at_limit}.amazonaws.com")).is_some());
        assert_eq!(RegistryHost::parse(&format!("123456789012.dkr.ecr.{over}.amazonaws.com")), None);
    }

    #[test]
    fn partition_suffixes_refuse_regions_of_other_partitions() {
        let wrong = [
            ("us-east-1", "sc2s.sgov.gov"),
            ("us-iso-east-1", "sc2s.sgov.gov"),
            ("us-east-1", "cloud.adc-e.uk"),
            ("eu-west-1", "cloud.adc-e.uk"),
            ("us-isob-east-1", "cloud.adc-e.uk"),
            ("us-east-1", "csp.hci.ic.gov"),
            ("us-iso-east-1", "csp.hci.ic.gov"),
            ("us-isob-east-1", "c2s.ic.gov"),
            ("eu-central-1", "amazonaws.eu"),
            ("us-east-1", "amazonaws.eu"),
            ("eu-isoe-west-1", "amazonaws.com"),
            ("us-isob-east-1", "amazonaws.com"),
            ("us-isof-south-1", "amazonaws.com"),
            ("cn-north-1", "on.aws"),
            ("eusc-de-east-1", "on.aws"),
            ("us-east-1", "on.amazonwebservices.com.cn"),
        ];
        for (region, suffix) in wrong {
            let form = if suffix.starts_with("on.") { "dkr-ecr" } else { "dkr.ecr" };
            let host = format!("123456789012.{form}.{region}.{suffix}");
            assert_eq!(RegistryHost::parse(&host), None, "{host:?} must not parse");
        }
    }

    #[test]
    fn fips_forms_exist_only_where_aws_has_them() {
        let fips = |h: &str| RegistryHost::parse(h).map(|r| r.variant);
        assert_eq!(fips("123456789012.dkr.ecr-fips.us-iso-east-1.c2s.ic.gov"), Some(Fips));
        assert_eq!(fips("123456789012.dkr.ecr-fips.us-isob-east-1.sc2s.sgov.gov"), Some(Fips));
        assert_eq!(fips("123456789012.dkr.ecr-fips.eusc-de-east-1.amazonaws.eu"), None);
        assert_eq!(fips("123456789012.dkr-ecr-fips.eusc-de-east-1.amazonaws.eu"), None);
        assert_eq!(fips("123456789012.dkr-ecr-fips.us-east-1.amazonaws.com"), None);
    }

    #[test]
    fn input_of_exactly_2048_bytes_is_read_and_one_more_is_not() {
        let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com/";
        let at_limit = format!("{host}{}", "a".repeat(MAX_INPUT - host.len()));
        assert_eq!(at_limit.len(), 2048);
        assert_eq!(RegistryHost::parse(&at_limit).map(|r| r.region), Some("us-east-1".to_string()));
        let over = format!("{at_limit}a");
        assert_eq!(RegistryHost::parse(&over), None);
    }

    #[test]
    fn ports_up_to_65535_are_accepted_and_larger_ones_are_not() {
        let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        for port in ["1", "443", "65535", "00443"] {
            assert!(RegistryHost::parse(&format!("{host}:{port}")).is_some(), "port {port}");
        }
        for port in ["65536", "99999", "123456", "+443", "-1", "4 43"] {
            assert_eq!(RegistryHost::parse(&format!("{host}:{port}")), None, "port {port}");
        }
    }

    #[test]
    fn a_url_without_a_host_is_not_a_registry() {
        for input in ["https://", "https://:443/", "https:///123456789012.dkr.ecr.us-east-1.amazonaws.com", "."] {
            assert_eq!(RegistryHost::parse(input), None, "{input:?}");
        }
    }

    #[test]
    fn endpoint_variant_flags_and_display() {
        let all = [Standard, Fips, DualStack, DualStackFips, Public];
        let shown: Vec<String> = all.iter().map(|v| v.to_string()).collect();
        assert_eq!(shown, ["standard", "fips", "dualstack", "dualstack-fips", "public"]);
        let fips: Vec<bool> = all.iter().map(|v| v.fips()).collect();
        assert_eq!(fips, [false, true, false, true, false]);
        let dual: Vec<bool> = all.iter().map(|v| v.dual_stack()).collect();
        assert_eq!(dual, [false, false, true, true, false]);
        assert_eq!(EndpointVariant::from_str_opt("FIPS"), None);
        assert_eq!(EndpointVariant::from_str_opt(""), None);
    }

    #[test]
    fn a_registry_displays_as_its_canonical_host() {
        let r = RegistryHost::parse("https://PUBLIC.ECR.AWS/x").unwrap();
        assert_eq!(r.to_string(), "public.ecr.aws");
        assert_eq!(r.server_url(), "https://public.ecr.aws");
    }

    #[test]
    fn host_of_keeps_only_letters_digits_dashes_and_dots() {
        assert_eq!(host_of("Exa-mple.COM:8080/x").as_deref(), Some("exa-mple.com"));
        assert_eq!(host_of("a.b.").as_deref(), Some("a.b"));
        for junk in [
            "user@example.com",
            "a:1@example.com",
            "[::1]:5000",
            "[::1]",
            "exa_mple.com",
            "exa mple.com",
            "example.com\0",
            "exa%2emple.com",
            "ex*ample.com",
            "",
            "https://:1",
        ] {
            assert_eq!(host_of(junk), None, "{junk:?}");
        }
    }
}
