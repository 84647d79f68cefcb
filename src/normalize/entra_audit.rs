//! Microsoft Entra ID audit logs: the Graph `directoryAudit` resource and the Azure Monitor `AuditLogs` row
//! (the audit in `properties`).
//!
//! In: one audit record. Out: one event: `token_revoked` for session and token revocations ("Revoke sign-in
//! sessions", "Invalidate all refresh tokens …" — the confirmation a revocation took effect), `admin_change`
//! otherwise. Principal: the initiating user (human) or app (service); the first target is the resource.

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "entra_audit";

/// `[normalize.formats.entra_audit]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EntraAuditConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: EntraAuditConfig = parse_config(NAME, t)?;
    Ok(Box::new(EntraAudit))
}

pub struct EntraAudit;

#[derive(Deserialize)]
struct Diagnostic<'a> {
    #[serde(borrow)]
    properties: Audit<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Audit<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    activity_date_time: Text<'a>,
    #[serde(borrow)]
    activity_display_name: Text<'a>,
    #[serde(borrow, default)]
    result: Option<Text<'a>>,
    #[serde(borrow, default)]
    initiated_by: Option<InitiatedBy<'a>>,
    #[serde(borrow, default, alias = "targetResource")]
    target_resources: Option<Vec<Target<'a>>>,
}

#[derive(Deserialize)]
struct InitiatedBy<'a> {
    #[serde(borrow, default)]
    user: Option<User<'a>>,
    #[serde(borrow, default)]
    app: Option<App<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    display_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_principal_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    ip_address: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct App<'a> {
    #[serde(borrow, default)]
    app_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    display_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    service_principal_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default, alias = "Type")]
    r#type: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_principal_name: Option<Text<'a>>,
}

fn some(t: Option<Text<'_>>) -> Option<Text<'_>> {
    t.filter(|s| !s.is_empty())
}

impl Normalizer for EntraAudit {
    fn sniff(&self, p: &Probe) -> bool {
        (p.activity_date_time.is_some() && p.initiated_by.is_some())
            || (p.properties.is_some() && p.category.as_deref() == Some("AuditLogs"))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        _ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let a: Audit<'a> = if raw.contains("\"properties\"") {
            super::parse_json::<Diagnostic<'a>>(NAME, raw)?.properties
        } else {
            super::parse_json(NAME, raw)?
        };
        let time = Ts::parse(&a.activity_date_time).ok_or_else(|| {
            NormalizeError::invalid(
                NAME,
                format!(
                    "activityDateTime {:?} is not a timestamp",
                    a.activity_date_time.as_str()
                ),
            )
        })?;
        let name = a.activity_display_name.to_ascii_lowercase();
        let cat = if name.contains("revoke") || name.contains("invalidate all refresh tokens") {
            Category::TokenRevoked
        } else {
            Category::AdminChange
        };
        let src = SourceInfo {
            family: Family::Idp,
            vendor: "microsoft".into(),
            format: NAME.into(),
        };
        let mut ev = SessionEvent::new(src, a.id, time, cat);
        ev.outcome = match a.result.as_deref() {
            Some("success") => Outcome::Success,
            Some("failure") | Some("timeout") => Outcome::Failure,
            _ => Outcome::Unknown,
        };
        ev.action = Some(a.activity_display_name);
        if let Some(by) = a.initiated_by {
            if let Some(u) = by
                .user
                .filter(|u| u.id.is_some() || u.user_principal_name.is_some())
            {
                ev.principal.kind = PrincipalKind::Human;
                ev.principal.id = some(u.id);
                ev.principal.email = some(u.user_principal_name);
                ev.principal.display_name = some(u.display_name);
                ev.network.ip = some(u.ip_address);
            } else if let Some(app) = by.app {
                ev.principal.kind = PrincipalKind::Service;
                ev.principal.id = some(app.service_principal_id).or(some(app.app_id.clone()));
                ev.principal.display_name = some(app.display_name);
                ev.session.client_id = some(app.app_id);
            }
        }
        if let Some(t) = a.target_resources.and_then(|t| t.into_iter().next()) {
            ev.resource.object_type = some(t.r#type);
            ev.resource.object_id = some(t.user_principal_name).or(some(t.id));
        }
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::event::*;
    use crate::normalize::testutil::normalize_one;

    #[test]
    fn a_session_revocation_in_the_audit_log_is_token_revoked() {
        let raw = r#"{"id":"Directory_1","activityDateTime":"2026-11-02T08:01:00Z","activityDisplayName":"Revoke sign-in sessions","category":"UserManagement","result":"success","initiatedBy":{"app":{"appId":"quench-app","displayName":"Quench","servicePrincipalId":"sp-1"}},"targetResources":[{"id":"u-1","type":"User","userPrincipalName":"alice@contoso.com"}]}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::TokenRevoked, Outcome::Success)
        );
        assert_eq!(ev.principal.kind, PrincipalKind::Service);
        assert_eq!(ev.resource.object_id.as_deref(), Some("alice@contoso.com"));
    }

    #[test]
    fn azure_monitor_audit_row_by_a_user() {
        let raw = r#"{"time":"2026-11-02T08:01:00Z","category":"AuditLogs","operationName":"Add member to role","properties":{"id":"Directory_2","activityDateTime":"2026-11-02T08:01:00.1234567+00:00","activityDisplayName":"Add member to role","result":"success","initiatedBy":{"user":{"id":"u-9","userPrincipalName":"mallory@contoso.com","ipAddress":"203.0.113.9"}},"targetResources":[{"id":"u-2","type":"User"}]}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::AdminChange);
        assert_eq!(ev.principal.email.as_deref(), Some("mallory@contoso.com"));
        assert_eq!(ev.network.ip.as_deref(), Some("203.0.113.9"));
    }
}
