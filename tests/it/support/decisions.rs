//! Decisions and targets for the tests: the one decision builder (an agent's token revocation, to adjust with
//! struct update syntax), trust vouched by an IdP, a signing key, and every target of the example config.
//!
//! In: ids. Out: decisions, trust, keys, targets. State: none.

#![allow(clippy::unwrap_used, dead_code, unused_imports)]

use super::*;

/// A token revocation for an agent, decided now.
pub fn agent_revocation(id: &str) -> Decision {
    Decision {
        decision_id: id.repeat(32 / id.len().max(1)),
        decided_at: quench::clock::WallTime::now().as_ts(),
        event_time: quench::clock::WallTime::now().as_ts(),
        action: Action::RevokeToken,
        principal: Some("agent-7".into()),
        principal_kind: PrincipalKind::Agent,
        token_id: Some("tok-7".into()),
        score: 0.8,
        trust: vouched(None),
        ..Default::default()
    }
}

/// The trust a decision from the principal's own vendor's log carries (the vendor told by the id's shape), with
/// the e-mail verified by the IdP.
pub fn vouched(principal_id: Option<&str>) -> quench::decide::Trust {
    let vendor = match principal_id {
        Some(i) if i.starts_with("00u") => "okta",
        Some(i) if i.starts_with('W') || i.starts_with('U') => "slack",
        Some(i) if i.starts_with("005") => "salesforce",
        Some(_) => "github",
        None => "okta",
    };
    quench::decide::Trust {
        principal_vendor: Some(vendor.into()),
        email_verified_by: Some("okta".into()),
        token_vendor: Some(vendor.into()),
        session_vendor: Some("okta".into()),
        evidence: vec!["e1".into()],
    }
}

/// A fresh P-256 private key in PKCS#8 PEM (what a CAEP target signs with).
pub fn ec_private_key_pem() -> String {
    let key = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let pem = openssl::pkey::PKey::from_ec_key(key)
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap();
    String::from_utf8(pem).unwrap()
}

/// The targets of the shipped `quench.example.toml` (one of every target type), built with test credentials.
pub fn example_targets() -> Vec<quench::respond::Target> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/quench.example.toml");
    let cfg = quench::config::Config::load(std::path::Path::new(path)).unwrap();
    for var in [
        "OKTA_API_TOKEN",
        "GRAPH_CLIENT_SECRET",
        "QUENCH_WEBHOOK_SECRET",
        "GOOGLE_ADMIN_ACCESS_TOKEN",
        "SALESFORCE_ACCESS_TOKEN",
        "SLACK_ADMIN_TOKEN",
        "GITHUB_TOKEN",
    ] {
        std::env::set_var(var, "example-credential-0123456789");
    }
    std::env::set_var("QUENCH_CAEP_SIGNING_KEY", ec_private_key_pem());
    quench::respond::build_targets(&cfg.respond).unwrap()
}
