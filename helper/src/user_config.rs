//! `configure --registry HOST --profile NAME` / `--role-arn ARN`: write "this registry is
//! served by that identity" into the user's config file (`~/.config/ecr-cred/config.toml`, the
//! broker's format), which the helper and a user broker both read.
//!
//! The file is edited with `toml_edit`, so comments, order and every other table stay as they
//! were. The identity is `[identities.NAME]` (NAME from the profile and role); the rule is a
//! `[[rules]]` entry for the registry's exact account and region (`ACCOUNT.REGION`, or
//! `public` for ECR Public), put first so no broader rule shadows it, or updated in place when
//! one for that pattern exists. The result is checked as a whole config before anything is
//! written.

use ecr_cred::config::Config;
use ecr_cred::registry::{EndpointVariant, RegistryHost};
use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

/// The identity asked for on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

impl Wanted {
    pub fn is_empty(&self) -> bool {
        self.profile.is_none() && self.role_arn.is_none()
    }

    /// `[identities.NAME]`: the profile, the role's name, or both joined by `-`; only
    /// letters, digits, `-` and `_`.
    fn name(&self) -> String {
        let role = self.role_arn.as_deref().map(|a| a.rsplit('/').next().unwrap_or(a));
        let raw = match (self.profile.as_deref(), role) {
            (Some(p), Some(r)) => format!("{p}-{r}"),
            (Some(p), None) => p.to_string(),
            (None, Some(r)) => format!("role-{r}"),
            (None, None) => "default".to_string(),
        };
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
    }
}

/// The rule pattern that matches exactly this registry's account and region.
pub fn pattern_for(registry: &RegistryHost) -> String {
    match (&registry.variant, &registry.account) {
        (EndpointVariant::Public, _) => "public".to_string(),
        (_, Some(account)) => format!("{account}.{}", registry.region),
        (_, None) => format!("*.{}", registry.region),
    }
}

/// `text` (the file as it is, empty when absent) with the identity and one rule per registry.
/// Returns the new text and one line per change for the report.
pub fn with_rules(text: &str, registries: &[RegistryHost], wanted: &Wanted) -> Result<(String, Vec<String>), String> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| format!("is not valid TOML: {}", e.to_string().trim()))?;
    let mut report = Vec::new();
    let name = wanted.name();

    let identities = doc.entry("identities").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let identities = identities.as_table_mut().ok_or("\"identities\" is not a table")?;
    let mut identity = Table::new();
    if let Some(p) = &wanted.profile {
        identity["profile"] = value(p.as_str());
    }
    if let Some(r) = &wanted.role_arn {
        identity["role_arn"] = value(r.as_str());
    }
    if let Some(x) = &wanted.external_id {
        identity["external_id"] = value(x.as_str());
    }
    match identities.get_mut(&name).and_then(Item::as_table_mut) {
        Some(existing) => {
            for key in ["profile", "role_arn", "external_id"] {
                match identity.get(key) {
                    Some(v) => existing[key] = v.clone(),
                    None => {
                        existing.remove(key);
                    }
                }
            }
            report.push(format!("  identity {name}: updated"));
        }
        None => {
            identities.insert(&name, Item::Table(identity));
            report.push(format!("  identity {name}: added"));
        }
    }

    let rules = doc.entry("rules").or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    let rules = rules.as_array_of_tables_mut().ok_or("\"rules\" is not an array of tables ([[rules]])")?;
    for registry in registries {
        let pattern = pattern_for(registry);
        let existing = rules.iter_mut().find(|t| t.get("registry").and_then(Item::as_str) == Some(pattern.as_str()));
        match existing {
            Some(rule) => {
                rule["identity"] = value(name.as_str());
                report.push(format!("  rule {pattern} -> {name}: updated"));
            }
            None => {
                let mut rule = Table::new();
                rule["registry"] = value(pattern.as_str());
                rule["identity"] = value(name.as_str());
                // First, so that no broader rule ("*", an account, a region) decides before it.
                // toml_edit writes tables in the order of their document positions (ties in
                // array order): the first old rule's position puts the new one just before it.
                let old: Vec<Table> = rules.iter().cloned().collect();
                if let Some(p) = old.first().and_then(Table::position) {
                    rule.set_position(p);
                }
                rules.clear();
                rules.push(rule);
                for t in old {
                    rules.push(t);
                }
                report.push(format!("  rule {pattern} -> {name}: added"));
            }
        }
    }
    let new_text = doc.to_string();
    Config::parse(&new_text).map_err(|e| format!("the result would not be a valid config ({e})"))?;
    Ok((new_text, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(h: &str) -> RegistryHost {
        RegistryHost::parse(h).unwrap()
    }

    #[test]
    fn a_new_rule_goes_first_and_comments_stay() {
        let text = "# my settings\nprefetch = []\n\n[identities.old]\nprofile = \"old\" # keep me\n\n[[rules]]\nregistry = \"*\"\nidentity = \"old\"\n";
        let (out, report) = with_rules(
            text,
            &[reg("210987654321.dkr.ecr.eu-west-1.amazonaws.com")],
            &Wanted { profile: Some("b".into()), ..Default::default() },
        )
        .unwrap();
        assert!(out.contains("# my settings") && out.contains("# keep me"), "{out}");
        let c = Config::parse(&out).unwrap();
        assert_eq!(c.rules[0].registry, "210987654321.eu-west-1");
        assert_eq!(c.rules[0].identity, "b");
        assert_eq!(c.rules[1].registry, "*");
        assert_eq!(c.identities["b"].profile.as_deref(), Some("b"));
        assert_eq!(report.len(), 2, "{report:?}");
        // Again: updated in place, not duplicated.
        let (again, _) = with_rules(
            &out,
            &[reg("210987654321.dkr.ecr.eu-west-1.amazonaws.com")],
            &Wanted { profile: Some("b".into()), ..Default::default() },
        )
        .unwrap();
        assert_eq!(Config::parse(&again).unwrap().rules.len(), 2, "{again}");
    }

    #[test]
    fn a_new_rule_goes_first_also_when_identities_follow_the_rules() {
        let text = "[[rules]]\nregistry = \"*\"\nidentity = \"old\"\n\n[identities.old]\nprofile = \"old\"\n";
        let (out, _) = with_rules(text, &[reg("public.ecr.aws")], &Wanted { profile: Some("p".into()), ..Default::default() }).unwrap();
        let c = Config::parse(&out).unwrap();
        assert_eq!((c.rules[0].registry.as_str(), c.rules[1].registry.as_str()), ("public", "*"), "{out}");
    }

    #[test]
    fn role_names_become_identity_names() {
        let w =
            Wanted { profile: Some("dev".into()), role_arn: Some("arn:aws:iam::210987654321:role/path/EcrPull".into()), external_id: None };
        assert_eq!(w.name(), "dev-EcrPull");
        assert_eq!(pattern_for(&reg("public.ecr.aws")), "public");
    }
}
