//! Microsoft Entra ID audit logs: the Graph `directoryAudit` resource and the Azure Monitor `AuditLogs` row
//! (the audit in `properties`), and rows of the Log Analytics (Sentinel) `AuditLogs` table (PascalCase columns,
//! `InitiatedBy` and `TargetResources` as JSON strings).
//!
//! In: one audit record. Out: one event: `token_revoked` for session and token revocations ("Revoke sign-in
//! sessions", "Invalidate all refresh tokens …" — the confirmation a revocation took effect), `admin_change`
//! otherwise. Principal: the initiating user (human) or app (service); the first target is the resource.
//! State: none.

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "entra_audit";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &[
    "activityDateTime",
    "initiatedBy",
    "ActivityDateTime",
    "InitiatedBy",
    "properties",
    "category",
];

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
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default, alias = "eventTimestamp")]
    time: Option<Text<'a>>,
    #[serde(borrow, default, rename = "operationName")]
    operation_name: Option<Text<'a>>,
}

/// A row of the Log Analytics (Sentinel) `AuditLogs` table: PascalCase, nested objects as JSON strings.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SentinelRow<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    activity_date_time: Option<Text<'a>>,
    #[serde(borrow, default)]
    time_generated: Option<Text<'a>>,
    #[serde(borrow, default)]
    activity_display_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    operation_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    result: Option<Text<'a>>,
    #[serde(borrow, default)]
    initiated_by: Option<Text<'a>>,
    #[serde(borrow, default)]
    target_resources: Option<Text<'a>>,
}

fn owned(t: Option<Text<'_>>) -> Option<Text<'static>> {
    t.map(|x| Text::from(x.to_string()))
}

impl<'a> SentinelRow<'a> {
    /// The row as an audit record; the JSON-string columns are parsed and copied out.
    fn into_audit(self) -> Audit<'a> {
        let by = self
            .initiated_by
            .as_deref()
            .and_then(|s| serde_json::from_str::<InitiatedBy>(s).ok())
            .map(|b| InitiatedBy {
                user: b.user.map(|u| User {
                    id: owned(u.id),
                    display_name: owned(u.display_name),
                    user_principal_name: owned(u.user_principal_name),
                    ip_address: owned(u.ip_address),
                }),
                app: b.app.map(|a| App {
                    app_id: owned(a.app_id),
                    display_name: owned(a.display_name),
                    service_principal_id: owned(a.service_principal_id),
                }),
            });
        let targets = self
            .target_resources
            .as_deref()
            .and_then(|s| serde_json::from_str::<Vec<Target>>(s).ok())
            .map(|v| {
                v.into_iter()
                    .map(|t| Target {
                        id: owned(t.id),
                        r#type: owned(t.r#type),
                        user_principal_name: owned(t.user_principal_name),
                    })
                    .collect()
            });
        Audit {
            id: self.id,
            activity_date_time: self.activity_date_time.or(self.time_generated),
            activity_display_name: self.activity_display_name.or(self.operation_name),
            result: self.result,
            initiated_by: by,
            target_resources: targets,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Audit<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    activity_date_time: Option<Text<'a>>,
    #[serde(borrow, default)]
    activity_display_name: Option<Text<'a>>,
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

/// Entra audit categories: some exports put the audit's own category (`DirectoryManagement`) where Azure Monitor
/// writes `AuditLogs`.
const AUDIT_CATEGORIES: &[&str] = &[
    "AdministrativeUnit",
    "ApplicationManagement",
    "Authentication",
    "Authorization",
    "AuthorizationPolicy",
    "Agreement",
    "CertificateBasedAuthentication",
    "Contact",
    "Device",
    "DeviceConfiguration",
    "DeviceManagement",
    "DirectoryManagement",
    "EntitlementManagement",
    "GroupManagement",
    "IdentityProtection",
    "KerberosDomain",
    "KeyManagement",
    "Label",
    "PermissionGrantPolicy",
    "Policy",
    "ProvisioningManagement",
    "ResourceManagement",
    "RoleManagement",
    "UserManagement",
];

impl Normalizer for EntraAudit {
    fn authority(&self) -> super::Authority {
        super::Authority::OwnUsers
    }

    fn sniff(&self, p: &Probe) -> bool {
        (p.has("activityDateTime") && p.has("initiatedBy"))
            || (p.has("ActivityDateTime") && p.has("InitiatedBy"))
            || (p.has("properties")
                && p.category
                    .as_deref()
                    .is_some_and(|c| c == "AuditLogs" || AUDIT_CATEGORIES.contains(&c)))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let a: Audit<'a> = if raw.contains("\"properties\"") {
            let d = super::parse_json::<Diagnostic<'a>>(NAME, raw)?;
            let mut a = d.properties;
            a.id = a.id.or(d.id);
            a.activity_date_time = a.activity_date_time.or(d.time);
            a.activity_display_name = a.activity_display_name.or(d.operation_name);
            a
        } else if raw.contains("\"InitiatedBy\"") {
            super::parse_json::<SentinelRow<'a>>(NAME, raw)?.into_audit()
        } else {
            super::parse_json(NAME, raw)?
        };
        let time = a
            .activity_date_time
            .as_deref()
            .and_then(Ts::parse)
            .ok_or_else(|| {
                NormalizeError::invalid(NAME, "no parsable activityDateTime (or row time)")
            })?;
        let display = a.activity_display_name.unwrap_or(Text::Borrowed("audit"));
        let name = display.to_ascii_lowercase();
        let cat = if name.contains("revoke") || name.contains("invalidate all refresh tokens") {
            Category::TokenRevoked
        } else {
            Category::AdminChange
        };
        let src = SourceInfo {
            family: Family::Idp,
            vendor: crate::event::Vendor::Microsoft.as_str().into(),
            format: NAME.into(),
        };
        let id = a.id.unwrap_or_else(|| super::fallback_id(ctx, 0));
        let mut ev = SessionEvent::new(src, id, time, cat);
        ev.outcome = match a.result.as_deref() {
            Some("success") => Outcome::Success,
            Some("failure") | Some("timeout") => Outcome::Failure,
            _ => Outcome::Unknown,
        };
        ev.action = Some(display);
        if let Some(by) = a.initiated_by {
            if let Some(u) = by
                .user
                .filter(|u| u.id.is_some() || u.user_principal_name.is_some())
            {
                ev.principal.kind = PrincipalKind::Human;
                ev.principal.id = some(u.id);
                ev.principal.email = some(u.user_principal_name);
                ev.principal.display_name = some(u.display_name);
                // "0.0.0.0" (and "::") is Entra's placeholder for "no address", not an address
                ev.network.ip =
                    some(u.ip_address).filter(|ip| !matches!(ip.as_str(), "0.0.0.0" | "::"));
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
    /// Found by comparing with Elastic's pipeline: Entra's placeholder initiator address was kept as an address.
    #[test]
    fn the_placeholder_address_0_0_0_0_is_no_address() {
        let raw = r#"{"id":"Directory_3","activityDateTime":"2026-11-02T08:01:00Z","activityDisplayName":"Update user","category":"UserManagement","result":"success","initiatedBy":{"user":{"id":"u-9","userPrincipalName":"mallory@contoso.com","ipAddress":"0.0.0.0"}},"targetResources":[{"id":"u-2","type":"User"}]}"#;
        let ev = &crate::normalize::testutil::normalize_one(raw)[0];
        assert_eq!(ev.network.ip, None);
    }

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

    /// Issue 13: a SIEM's export put the audit's own category where Azure Monitor writes `AuditLogs`, and the
    /// rows were rejected as an unknown format.
    #[test]
    fn an_exported_row_with_the_audits_own_category_is_read() {
        let raw = r#"{"time":"2026-11-02T08:01:00Z","category":"DirectoryManagement","operationName":"Set domain authentication","properties":{"id":"Directory_3","activityDateTime":"2026-11-02T08:01:00Z","activityDisplayName":"Set domain authentication","result":"success","initiatedBy":{"user":{"id":"u-9","userPrincipalName":"mallory@contoso.com","ipAddress":"203.0.113.9"}},"targetResources":[{"id":"d-1","type":"Domain"}]}}"#;
        let ev = &crate::normalize::testutil::normalize_one(raw)[0];
        assert_eq!(ev.source.format.as_str(), "entra_audit");
        assert_eq!(ev.principal.email.as_deref(), Some("mallory@contoso.com"));
        assert_eq!(ev.category, Category::AdminChange);
    }
}
