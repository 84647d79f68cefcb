//! Microsoft Entra ID sign-in logs: the Graph `signIn` resource, and the Azure Monitor diagnostic row
//! (`category` `SignInLogs`, `NonInteractiveUserSignInLogs`, `ServicePrincipalSignInLogs`,
//! `ManagedIdentitySignInLogs` … — any category ending in `SignInLogs` — with the sign-in in `properties`) that
//! Event Hubs exports deliver inside `{"records":…}`.
//!
//! In: one sign-in. Out: one event. Interactive user sign-ins are `login`; non-interactive ones are
//! `token_refreshed`; service-principal and managed-identity sign-ins are `token_issued` by a service.
//! Token id: `uniqueTokenIdentifier`; session: `sessionId`; geo from `location.geoCoordinates`.
//! A non-interactive row of a confidential client (one with a client credential, or a service principal's) carries
//! the IP where the token was issued, not the caller's: such events are marked `location_untrusted`. State: none.

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "entra_signin";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &[
    "createdDateTime",
    "userPrincipalName",
    "activityDateTime",
    "properties",
    "category",
];

/// `[normalize.formats.entra_signin]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EntraSigninConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: EntraSigninConfig = parse_config(NAME, t)?;
    Ok(Box::new(EntraSignin))
}

pub struct EntraSignin;

/// The Azure Monitor row around a sign-in.
#[derive(Deserialize)]
struct Diagnostic<'a> {
    #[serde(borrow)]
    category: Text<'a>,
    #[serde(borrow)]
    properties: SignIn<'a>,
    #[serde(borrow, default, rename = "callerIpAddress")]
    caller_ip: Option<Text<'a>>,
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default, alias = "eventTime")]
    time: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignIn<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    created_date_time: Option<Text<'a>>,
    #[serde(borrow, default, alias = "userName")]
    user_principal_name: Option<Text<'a>>,
    #[serde(borrow, default, alias = "userObjectId")]
    user_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    ip_addresses: Option<Vec<IpEntry<'a>>>,
    #[serde(borrow, default)]
    user_display_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    service_principal_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    service_principal_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    app_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    app_display_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    resource_display_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    ip_address: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    is_interactive: Option<bool>,
    #[serde(borrow, default)]
    client_credential_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    unique_token_identifier: Option<Text<'a>>,
    #[serde(borrow, default)]
    session_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_agent: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    autonomous_system_number: Option<u32>,
    #[serde(default)]
    status: Option<Status>,
    #[serde(borrow, default)]
    device_detail: Option<DeviceDetail<'a>>,
    #[serde(borrow, default)]
    location: Option<Location<'a>>,
    /// Entra ID Protection: the sign-in's risk, its state, and what was detected.
    #[serde(borrow, default)]
    risk_level_during_sign_in: Option<Text<'a>>,
    #[serde(borrow, default)]
    risk_state: Option<Text<'a>>,
    #[serde(borrow, default, rename = "riskEventTypes_v2")]
    risk_event_types_v2: Option<Vec<Text<'a>>>,
    #[serde(borrow, default)]
    risk_event_types: Option<Vec<Text<'a>>>,
    /// How the user authenticated: each step's method, and whether it succeeded.
    #[serde(borrow, default)]
    authentication_details: Option<Vec<AuthStep<'a>>>,
    /// "singleFactorAuthentication" / "multiFactorAuthentication".
    #[serde(borrow, default)]
    authentication_requirement: Option<Text<'a>>,
    #[serde(borrow, default)]
    conditional_access_status: Option<Text<'a>>,
    #[serde(borrow, default)]
    client_app_used: Option<Text<'a>>,
    #[serde(borrow, default)]
    token_protection_status_details: Option<TokenProtection<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthStep<'a> {
    #[serde(borrow, default)]
    authentication_method: Option<Text<'a>>,
    #[serde(default)]
    succeeded: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenProtection<'a> {
    /// "bound", "unbound", "unknown".
    #[serde(borrow, default)]
    sign_in_session_status: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpEntry<'a> {
    #[serde(borrow, default)]
    ip_address: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default, deserialize_with = "super::lenient_num")]
    error_code: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceDetail<'a> {
    #[serde(borrow, default)]
    device_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    browser: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    is_compliant: Option<bool>,
    #[serde(borrow, default)]
    trust_type: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Location<'a> {
    #[serde(borrow, default)]
    city: Option<Text<'a>>,
    #[serde(borrow, default)]
    country_or_region: Option<Text<'a>>,
    #[serde(default)]
    geo_coordinates: Option<Coordinates>,
}

#[derive(Deserialize)]
struct Coordinates {
    #[serde(default, deserialize_with = "super::lenient_num")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    longitude: Option<f64>,
}

fn non_empty(t: Option<Text<'_>>) -> Option<Text<'_>> {
    t.filter(|s| !s.is_empty())
}

impl Normalizer for EntraSignin {
    fn authority(&self) -> super::Authority {
        super::Authority::OwnUsers
    }

    fn sniff(&self, p: &Probe) -> bool {
        (p.has("createdDateTime") && p.has("userPrincipalName") && !p.has("activityDateTime"))
            || (p.has("properties")
                && p.category
                    .as_deref()
                    .is_some_and(|c| c.ends_with("SignInLogs")))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let (category, mut s, caller_ip) = if raw.contains("\"properties\"") {
            let d: Diagnostic<'a> = super::parse_json(NAME, raw)?;
            let mut s = d.properties;
            s.id = s.id.or(d.id);
            s.created_date_time = s.created_date_time.or(d.time);
            (Some(d.category), s, d.caller_ip)
        } else {
            (None, super::parse_json::<SignIn<'a>>(NAME, raw)?, None)
        };
        let time = s
            .created_date_time
            .as_deref()
            .and_then(Ts::parse)
            .ok_or_else(|| {
                NormalizeError::invalid(NAME, "no parsable createdDateTime (or row time)")
            })?;
        let id = s.id.take().unwrap_or_else(|| super::fallback_id(ctx, 0));
        let service = category
            .as_deref()
            .is_some_and(|c| c.contains("ServicePrincipal") || c.contains("ManagedIdentity"))
            || (s.user_principal_name.is_none()
                && s.service_principal_id
                    .as_deref()
                    .is_some_and(|x| !x.is_empty()));
        let interactive = s
            .is_interactive
            .unwrap_or(category.as_deref() == Some("SignInLogs"));
        let cat = if service {
            Category::TokenIssued
        } else if interactive {
            Category::Login
        } else {
            Category::TokenRefreshed
        };
        let src = SourceInfo {
            family: Family::Idp,
            vendor: crate::event::Vendor::Microsoft.as_str().into(),
            format: NAME.into(),
        };
        let mut ev = SessionEvent::new(src, id, time, cat);
        ev.action = Some(category.unwrap_or(Text::Borrowed("signIn")));
        ev.outcome = match s.status.and_then(|st| st.error_code) {
            Some(0) => Outcome::Success,
            Some(_) => Outcome::Failure,
            None => Outcome::Unknown,
        };
        if service {
            ev.principal.kind = PrincipalKind::Service;
            // the service principal, else the application signing in
            ev.principal.id = non_empty(s.service_principal_id).or(non_empty(s.app_id.clone()));
            ev.principal.display_name =
                non_empty(s.service_principal_name).or(non_empty(s.app_display_name.clone()));
        } else {
            ev.principal.kind = PrincipalKind::Human;
            ev.principal.id = non_empty(s.user_id);
            ev.principal.email = non_empty(s.user_principal_name);
            ev.principal.display_name = non_empty(s.user_display_name);
        }
        let confidential = s
            .client_credential_type
            .as_deref()
            .is_some_and(|c| !c.is_empty() && c != "none");
        ev.location_untrusted = !interactive && (confidential || service);
        ev.session.token_id = non_empty(s.unique_token_identifier);
        ev.session.session_id = non_empty(s.session_id);
        ev.session.client_id = non_empty(s.app_id);
        ev.resource.app = non_empty(s.app_display_name);
        ev.resource.object_id = non_empty(s.resource_display_name);
        let listed = s
            .ip_addresses
            .and_then(|v| v.into_iter().find_map(|e| non_empty(e.ip_address)));
        ev.network.ip = non_empty(s.ip_address).or(listed).or(caller_ip);
        ev.network.asn = s.autonomous_system_number;
        // how the user authenticated, the conditional access result, the device's standing and the client kind
        let steps = s.authentication_details.unwrap_or_default();
        let method = steps
            .iter()
            .rev()
            .filter(|a| a.succeeded != Some(false))
            .filter_map(|a| non_empty(a.authentication_method.clone()))
            .find(|m| !m.eq_ignore_ascii_case("Previously satisfied"));
        let mfa = s
            .authentication_requirement
            .as_deref()
            .map(|r| r.eq_ignore_ascii_case("multiFactorAuthentication"));
        let compliant = s.device_detail.as_ref().and_then(|d| d.is_compliant);
        let trust = s
            .device_detail
            .as_ref()
            .and_then(|d| non_empty(d.trust_type.clone()));
        let access = non_empty(s.conditional_access_status);
        let client = non_empty(s.client_app_used);
        let binding = s
            .token_protection_status_details
            .and_then(|t| non_empty(t.sign_in_session_status));
        if method.is_some()
            || mfa.is_some()
            || compliant.is_some()
            || trust.is_some()
            || access.is_some()
            || client.is_some()
            || binding.is_some()
        {
            let a = ev.auth_mut();
            a.method = method;
            a.mfa = mfa;
            a.device_compliant = compliant;
            a.device_trust = trust;
            a.conditional_access = access;
            a.client_app = client;
            a.token_binding = binding;
        }
        if let Some(d) = s.device_detail {
            ev.network.device_id = non_empty(d.device_id);
            // `deviceDetail.browser` ("Chrome 77.0.3865") names a browser, it is not a user agent: mixed with real
            // user-agent strings it would look like another client
            let _ = d.browser;
            ev.network.user_agent = non_empty(s.user_agent);
        } else {
            ev.network.user_agent = non_empty(s.user_agent);
        }
        // Entra ID Protection's verdict: a remediated or dismissed risk is none
        let state = s.risk_state.as_deref().unwrap_or("");
        let level = if state.eq_ignore_ascii_case("confirmedCompromised") {
            Some(RiskLevel::Compromised)
        } else if state.eq_ignore_ascii_case("remediated")
            || state.eq_ignore_ascii_case("dismissed")
        {
            None
        } else {
            s.risk_level_during_sign_in
                .as_deref()
                .and_then(RiskLevel::parse)
        };
        ev.risk = level.map(|level| Risk {
            level,
            kind: s
                .risk_event_types_v2
                .into_iter()
                .chain(s.risk_event_types)
                .flatten()
                .next()
                .unwrap_or(Text::Borrowed("riskySignIn")),
        });
        if let Some(l) = s.location {
            if let Some(Coordinates {
                latitude: Some(lat),
                longitude: Some(lon),
            }) = l.geo_coordinates.filter(|c| {
                c.latitude
                    .zip(c.longitude)
                    .is_some_and(|(a, o)| Geo::valid(a, o))
            }) {
                ev.network.geo = Some(Geo {
                    lat,
                    lon,
                    city: non_empty(l.city),
                    country: non_empty(l.country_or_region),
                    accuracy_radius_km: None,
                });
            }
        }
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Found on a SIEM's export: numbers rewritten as strings (`"8075"`, `"0"`).
    #[test]
    fn numbers_written_as_strings_are_read() {
        let raw = r#"{"id":"si-4","createdDateTime":"2026-11-02T08:00:00Z","userPrincipalName":"a@contoso.com","userId":"u-1","ipAddress":"131.107.1.2","isInteractive":true,"status":{"errorCode":"0"},"autonomousSystemNumber":"8075"}"#;
        let ev = &crate::normalize::testutil::normalize_one(raw)[0];
        assert_eq!(ev.network.asn, Some(8075));
        assert_eq!(ev.outcome, Outcome::Success);
    }

    /// Entra ID Protection's verdict is kept; a remediated risk is none.
    #[test]
    fn entra_sign_in_risk_is_kept_unless_remediated() {
        let row = |level: &str, state: &str| {
            format!(
                r#"{{"id":"si-3","createdDateTime":"2026-11-02T08:00:00Z","userPrincipalName":"a@contoso.com","userId":"u-1","ipAddress":"131.107.1.2","isInteractive":true,"status":{{"errorCode":0}},"riskLevelDuringSignIn":"{level}","riskState":"{state}","riskEventTypes_v2":["anomalousToken"]}}"#
            )
        };
        let high = row("high", "atRisk");
        let ev = &crate::normalize::testutil::normalize_one(&high)[0];
        let r = ev.risk.as_ref().unwrap();
        assert_eq!(
            (r.level, r.kind.as_str()),
            (RiskLevel::High, "anomalousToken")
        );
        let done = row("high", "remediated");
        assert_eq!(
            crate::normalize::testutil::normalize_one(&done)[0].risk,
            None
        );
        let none = row("none", "none");
        assert_eq!(
            crate::normalize::testutil::normalize_one(&none)[0].risk,
            None
        );
        let confirmed = row("hidden", "confirmedCompromised");
        assert_eq!(
            crate::normalize::testutil::normalize_one(&confirmed)[0]
                .risk
                .as_ref()
                .map(|r| r.level),
            Some(RiskLevel::Compromised)
        );
    }

    /// Found by comparing with Elastic's pipeline: the user agent was `deviceDetail.browser`, a browser name.
    #[test]
    fn the_browser_name_of_device_detail_is_not_a_user_agent() {
        let raw = r#"{"id":"si-2","createdDateTime":"2026-11-02T08:00:00Z","userPrincipalName":"a@contoso.com","userId":"u-1","ipAddress":"131.107.1.2","isInteractive":true,"status":{"errorCode":0},"deviceDetail":{"deviceId":"dev-9","browser":"Chrome 77.0.3865"}}"#;
        let ev = &crate::normalize::testutil::normalize_one(raw)[0];
        assert_eq!(ev.network.user_agent, None);
        assert_eq!(ev.network.device_id.as_deref(), Some("dev-9"));
    }

    use crate::event::*;
    use crate::normalize::testutil::normalize_one;

    const GRAPH: &str = r#"{"id":"si-1","createdDateTime":"2026-11-02T08:00:00.1234567Z","userDisplayName":"Alice","userPrincipalName":"alice@contoso.com","userId":"u-1","appId":"app-1","appDisplayName":"Office 365","ipAddress":"131.107.1.2","isInteractive":true,"status":{"errorCode":0},"deviceDetail":{"deviceId":"dev-9","browser":"Edge 120"},"location":{"city":"Redmond","countryOrRegion":"US","geoCoordinates":{"latitude":47.68,"longitude":-122.12}},"uniqueTokenIdentifier":"utiX","sessionId":"sess-7","autonomousSystemNumber":8075}"#;

    #[test]
    fn graph_sign_in_fills_identity_token_session_and_geo() {
        let ev = &normalize_one(GRAPH)[0];
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::Login, Outcome::Success)
        );
        assert_eq!(ev.principal.email.as_deref(), Some("alice@contoso.com"));
        assert_eq!(ev.session.token_id.as_deref(), Some("utiX"));
        assert_eq!(ev.session.session_id.as_deref(), Some("sess-7"));
        assert_eq!(ev.network.asn, Some(8075));
        assert_eq!(
            ev.network.geo.as_ref().unwrap().city.as_deref(),
            Some("Redmond")
        );
        assert!(!ev.location_untrusted);
    }

    #[test]
    fn non_interactive_confidential_client_rows_do_not_vouch_for_the_location() {
        let inner = GRAPH.replace(
            "\"isInteractive\":true",
            "\"isInteractive\":false,\"clientCredentialType\":\"clientSecret\"",
        );
        let row = format!(
            r#"{{"time":"2026-11-02T08:00:00Z","category":"NonInteractiveUserSignInLogs","callerIpAddress":"131.107.1.2","properties":{inner}}}"#
        );
        let ev = &normalize_one(&row)[0];
        assert_eq!(ev.category, Category::TokenRefreshed);
        assert!(ev.location_untrusted);
        assert_eq!(ev.action.as_deref(), Some("NonInteractiveUserSignInLogs"));
    }

    #[test]
    fn failed_sign_in_is_a_failure() {
        let raw = GRAPH.replace("\"errorCode\":0", "\"errorCode\":50126");
        let ev = &normalize_one(&raw)[0];
        assert_eq!(ev.outcome, Outcome::Failure);
    }

    /// Issue 13's dropped facts: how the user authenticated, conditional access, the device's standing, the
    /// client kind and token protection are kept.
    #[test]
    fn a_sign_in_keeps_its_authentication_device_and_token_binding_facts() {
        let raw = r#"{"id":"si-9","createdDateTime":"2026-11-02T08:00:00Z","userPrincipalName":"a@contoso.com","userId":"u-1","ipAddress":"131.107.1.2","isInteractive":true,"status":{"errorCode":0},"clientAppUsed":"Browser","conditionalAccessStatus":"success","authenticationRequirement":"multiFactorAuthentication","authenticationDetails":[{"authenticationMethod":"Password","succeeded":true},{"authenticationMethod":"FIDO2 security key","succeeded":true}],"deviceDetail":{"deviceId":"d-1","isCompliant":true,"isManaged":true,"trustType":"Azure AD joined"},"tokenProtectionStatusDetails":{"signInSessionStatus":"bound","signInSessionStatusCode":0}}"#;
        let ev = &crate::normalize::testutil::normalize_one(raw)[0];
        let a = ev.auth.as_deref().expect("auth facts");
        assert_eq!(a.method.as_deref(), Some("FIDO2 security key"));
        assert_eq!(a.mfa, Some(true));
        assert_eq!(a.conditional_access.as_deref(), Some("success"));
        assert_eq!(a.device_compliant, Some(true));
        assert_eq!(a.device_trust.as_deref(), Some("Azure AD joined"));
        assert_eq!(a.client_app.as_deref(), Some("Browser"));
        assert_eq!(a.token_binding.as_deref(), Some("bound"));
    }
}
