//! Microsoft Defender XDR advanced hunting rows: `CloudAppEvents` (Defender for Cloud Apps), and the identity and
//! device tables that share its columns (`IdentityLogonEvents`, `IdentityDirectoryEvents`, `IdentityQueryEvents`,
//! `DeviceEvents` …), as the streaming API writes them to Event Hubs or Storage (`{"time", "category":
//! "AdvancedHunting-CloudAppEvents", "properties": {...}}`) or as a hunting query exports them (the columns at
//! the top level).
//!
//! In: one row. Out: one event. State: none.
//!
//! A `CloudAppEvents` row that carries the Microsoft 365 audit record it was made from (`RawEventData` with
//! `CreationTime`, `Operation` and `Workload`) is read through that record (`m365_audit`), which has the session
//! and token ids the columns lack; the columns then fill what the record does not say (address, country, proxy
//! flag). Otherwise the columns are read: principal `AccountObjectId` (the Entra object id, as Entra sign-ins key
//! people) else `AccountId`, e-mail `AccountUpn` (device tables: `InitiatingProcessAccount*`); address
//! `IPAddress`; `IsAnonymousProxy`; country `CountryCode` and `City` (no coordinates: kept as the country alone,
//! never a place to travel from); user agent `UserAgent`; session `SessionData`'s session id; `ActionType` is the
//! action, and `LogonSuccess`/`LogonFailed` are sign-ins.
//!
//! Trust: Defender reports what Microsoft's own services saw for Microsoft's apps (`Application` "Microsoft …",
//! "Office 365", "Active Directory"): those rows vouch for their identities under vendor `microsoft`, except the
//! principal of a failed sign-in. Rows about other vendors' apps (seen through Defender for Cloud Apps
//! connectors) are claims.

use super::{parse_config, ConfigError, Context, Loose, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "defender_xdr";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &["Timestamp", "ActionType", "properties", "category"];

/// `[normalize.formats.defender_xdr]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DefenderConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: DefenderConfig = parse_config(NAME, t)?;
    Ok(Box::new(DefenderXdr))
}

pub struct DefenderXdr;

/// The streaming API's record: the row is in `properties`.
#[derive(Deserialize)]
struct Streamed<'a> {
    #[serde(borrow)]
    properties: &'a serde_json::value::RawValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Row<'a> {
    #[serde(borrow)]
    timestamp: Text<'a>,
    #[serde(borrow)]
    action_type: Text<'a>,
    #[serde(borrow, default)]
    report_id: Loose<'a>,
    #[serde(borrow, default)]
    application: Option<Text<'a>>,
    #[serde(borrow, default)]
    application_id: Loose<'a>,
    #[serde(borrow, default, rename = "OAuthAppId")]
    oauth_app_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    account_object_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    account_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    account_upn: Option<Text<'a>>,
    #[serde(borrow, default)]
    account_display_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    account_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    initiating_process_account_upn: Option<Text<'a>>,
    #[serde(borrow, default)]
    initiating_process_account_object_id: Option<Text<'a>>,
    #[serde(borrow, default, rename = "IPAddress")]
    ip_address: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    is_anonymous_proxy: Option<bool>,
    #[serde(borrow, default)]
    country_code: Option<Text<'a>>,
    #[serde(borrow, default)]
    city: Option<Text<'a>>,
    #[serde(borrow, default, rename = "ISP", alias = "Isp")]
    isp: Option<Text<'a>>,
    #[serde(borrow, default, alias = "UserAgent_string")]
    user_agent: Option<Text<'a>>,
    #[serde(borrow, default)]
    device_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    device_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    object_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    object_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    object_id: Loose<'a>,
    #[serde(borrow, default)]
    session_data: Option<SessionData<'a>>,
    #[serde(borrow, default)]
    raw_event_data: Option<&'a serde_json::value::RawValue>,
}

/// `SessionData`: the Entra session the activity belongs to, when Defender for Cloud Apps knows it.
#[derive(Deserialize, Default)]
struct SessionData<'a> {
    #[serde(borrow, default, alias = "InteractiveSessionId", alias = "SessionId")]
    session_id: Option<Text<'a>>,
}

/// The Microsoft 365 audit record inside `RawEventData`, just enough to know it is one.
#[derive(Deserialize)]
struct UalProbe {
    #[serde(rename = "CreationTime")]
    _creation_time: serde::de::IgnoredAny,
    #[serde(rename = "Operation")]
    _operation: serde::de::IgnoredAny,
    #[serde(rename = "Workload")]
    _workload: serde::de::IgnoredAny,
}

fn non_empty(t: Option<Text<'_>>) -> Option<Text<'_>> {
    t.filter(|s| !s.trim().is_empty())
}

/// Rows Microsoft's own services produced about Microsoft's own apps.
fn microsoft_app(app: &str) -> bool {
    app.starts_with("Microsoft ")
        || app.starts_with("Azure")
        || matches!(app, "Office 365" | "Active Directory" | "Microsoft")
}

fn category(action: &str) -> Category {
    match action {
        "LogonSuccess" | "LogonFailed" | "LogonAttempted" => Category::Login,
        "Directory Services replication" => Category::DataRead,
        a => super::m365_audit::category_of_operation(a),
    }
}

impl Normalizer for DefenderXdr {
    fn sniff(&self, p: &Probe) -> bool {
        (p.has("Timestamp") && p.has("ActionType"))
            || (p.has("properties")
                && p.category
                    .as_deref()
                    .is_some_and(|c| c.starts_with("AdvancedHunting-")))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let row_text: &'a str = if raw.contains("\"properties\"") {
            match serde_json::from_str::<Streamed<'a>>(raw) {
                // a row is an object; serde would read a struct from an array field by field
                Ok(s) if s.properties.get().trim_start().starts_with('{') => s.properties.get(),
                Ok(_) => return Err(NormalizeError::invalid(NAME, "properties is not an object")),
                Err(_) => raw,
            }
        } else {
            raw
        };
        let r: Row<'a> = super::parse_json(NAME, row_text)?;
        let time = Ts::parse(&r.timestamp).ok_or_else(|| {
            NormalizeError::invalid(
                NAME,
                format!("Timestamp {:?} is not a timestamp", r.timestamp.as_str()),
            )
        })?;
        let app = non_empty(r.application.clone());
        let microsoft = app.as_deref().is_some_and(microsoft_app);
        let audit_record = r
            .raw_event_data
            .filter(|d| super::parse_json::<UalProbe>(NAME, d.get()).is_ok());
        let mut ev = match audit_record {
            Some(record) => {
                let mut inner = Vec::with_capacity(1);
                super::m365_audit::M365Audit.normalize(record.get(), ctx, &mut inner)?;
                inner.pop().ok_or_else(|| {
                    NormalizeError::invalid(NAME, "RawEventData holds no audit record")
                })?
            }
            None => {
                let src = SourceInfo {
                    family: Family::Saas,
                    vendor: crate::event::Vendor::Microsoft.as_str().into(),
                    format: NAME.into(),
                };
                let id = r
                    .report_id
                    .0
                    .clone()
                    .unwrap_or_else(|| super::fallback_id(ctx, 0));
                let cat = category(&r.action_type);
                let mut ev = SessionEvent::new(src, id, time, cat);
                let a = r.action_type.as_str();
                ev.outcome = if a.contains("Failed") || a.ends_with("Failure") {
                    Outcome::Failure // LogonFailed, UserLoginFailed …
                } else if a == "LogonAttempted" || cat == Category::Other {
                    Outcome::Unknown
                } else {
                    Outcome::Success
                };
                let upn = non_empty(r.account_upn.clone())
                    .or(non_empty(r.initiating_process_account_upn.clone()));
                ev.principal.id = non_empty(r.account_object_id.clone())
                    .or(non_empty(r.initiating_process_account_object_id.clone()))
                    .or(non_empty(r.account_id.clone()))
                    .or(upn.clone());
                ev.principal.email = upn.filter(|u| u.contains('@'));
                ev.principal.display_name = non_empty(r.account_display_name.clone());
                ev.principal.kind = match r.account_type.as_deref() {
                    Some("Application" | "ServicePrincipal" | "System") => PrincipalKind::Service,
                    _ => PrincipalKind::Human,
                };
                ev.session.session_id = r.session_data.and_then(|s| non_empty(s.session_id));
                ev.session.client_id = non_empty(r.oauth_app_id.clone());
                ev.network.user_agent = non_empty(r.user_agent.clone());
                ev.resource.app = app.clone();
                ev.resource.object_type = non_empty(r.object_type.clone());
                ev.resource.object_id =
                    non_empty(r.object_name.clone()).or(non_empty(r.object_id.0));
                ev.action = Some(r.action_type.clone());
                ev
            }
        };
        ev.source.format = NAME.into();
        ev.event_time = time;
        if ev.network.ip.is_none() {
            ev.network.ip = non_empty(r.ip_address);
        }
        if ev.network.device_id.is_none() {
            ev.network.device_id = non_empty(r.device_id)
                .filter(|d| d.as_str() != "00000000-0000-0000-0000-000000000000")
                .or(non_empty(r.device_name));
        }
        if ev.network.as_org.is_none() {
            ev.network.as_org = non_empty(r.isp);
        }
        match r.is_anonymous_proxy {
            Some(true) => ev.network.is_proxy = Some(true),
            Some(false) if ev.network.is_proxy.is_none() => ev.network.is_proxy = Some(false),
            _ => {}
        }
        if ev.network.country.is_none() {
            ev.network.country = non_empty(r.country_code);
            ev.network.city = non_empty(r.city);
        }
        if ev.session.client_id.is_none() {
            ev.session.client_id = r.application_id.0.filter(|s| !s.is_empty());
        }
        // the audit record inside is Microsoft's when the row names a Microsoft app or none
        if microsoft || (audit_record.is_some() && app.is_none()) {
            ev.vouch_all();
            let failed_sign_in = ev.outcome == Outcome::Failure
                && matches!(ev.category, Category::Login | Category::Sso);
            if failed_sign_in {
                ev.principal.vouched_by = None;
            }
        } else {
            ev.unvouch_all();
        }
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::event::*;
    use crate::normalize::testutil::normalize_one;

    const CLOUD_APP: &str = r#"{"Timestamp":"2026-11-02T09:00:00.123Z","ActionType":"FileDownloaded","Application":"Microsoft SharePoint Online","ApplicationId":20892,"AccountObjectId":"0b6c-oid","AccountId":"0b6c-oid","AccountDisplayName":"Alice","IsAdminOperation":false,"DeviceType":"Desktop","OSPlatform":"Windows 10","IPAddress":"198.51.100.7","IsAnonymousProxy":false,"CountryCode":"DE","City":"berlin","Isp":"example isp","UserAgent":"Mozilla/5.0 (Windows NT 10.0)","ActivityType":"Download","ObjectName":"q3-plan.xlsx","ObjectType":"File","ReportId":"r-1","AccountType":"Regular","SessionData":{"InteractiveSessionId":"s-9"}}"#;

    #[test]
    fn a_cloud_app_download_names_the_entra_object_id_and_the_country_without_a_place() {
        let ev = &normalize_one(CLOUD_APP)[0];
        assert_eq!(ev.source.format.as_str(), "defender_xdr");
        assert_eq!(ev.category, Category::Export);
        assert_eq!(ev.principal.id.as_deref(), Some("0b6c-oid"));
        assert_eq!(ev.network.ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(ev.network.country.as_deref(), Some("DE"));
        assert!(
            ev.network.geo.is_none(),
            "a country is no place to travel from"
        );
        assert_eq!(ev.network.is_proxy, Some(false));
        assert_eq!(ev.session.session_id.as_deref(), Some("s-9"));
        assert_eq!(
            ev.event_time,
            Ts::parse("2026-11-02T09:00:00.123Z").unwrap()
        );
        assert!(ev.principal.vouched_by.is_some(), "Microsoft's own app");
    }

    #[test]
    fn the_streaming_api_record_reads_its_properties() {
        let raw = format!(
            r#"{{"time":"2026-11-02T09:00:01Z","tenantId":"t","operationName":"Publish","category":"AdvancedHunting-CloudAppEvents","properties":{CLOUD_APP}}}"#
        );
        let ev = &normalize_one(&raw)[0];
        assert_eq!(ev.principal.id.as_deref(), Some("0b6c-oid"));
        assert_eq!(ev.event_id.as_str(), "r-1");
    }

    #[test]
    fn a_row_with_its_audit_record_takes_the_records_session_and_token() {
        let raw = r#"{"Timestamp":"2026-11-02T09:05:00Z","ActionType":"MailItemsAccessed","Application":"Microsoft Exchange Online","ApplicationId":20893,"AccountObjectId":"app-oid","AccountDisplayName":"SomeApp","IPAddress":"203.0.113.9","CountryCode":"US","ReportId":"r-2","RawEventData":{"CreationTime":"2026-11-02T09:05:00","Id":"ual-2","Operation":"MailItemsAccessed","Workload":"Exchange","UserId":"bob@example.com","ResultStatus":"Succeeded","AppAccessContext":{"AADSessionId":"sess-b","UniqueTokenId":"tok-b"}}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.source.format.as_str(), "defender_xdr");
        assert_eq!(ev.principal.email.as_deref(), Some("bob@example.com"));
        assert_eq!(ev.session.session_id.as_deref(), Some("sess-b"));
        assert_eq!(ev.session.token_id.as_deref(), Some("tok-b"));
        assert_eq!(
            ev.network.ip.as_deref(),
            Some("203.0.113.9"),
            "the column fills the address"
        );
        assert_eq!(ev.category, Category::DataRead);
    }

    /// Found by the outside review: `UserLoginFailed` (the audit operation Defender repeats) was a vouched,
    /// successful Microsoft sign-in, so typing the CEO's address into a sign-in page made a finding about the CEO.
    #[test]
    fn a_failed_sign_in_by_operation_name_is_a_failure_and_vouches_for_nobody() {
        let raw = r#"{"Timestamp":"2026-11-02T09:10:00Z","ActionType":"UserLoginFailed","Application":"Microsoft 365","AccountObjectId":"ceo-oid","AccountUpn":"ceo@example.com","IPAddress":"203.0.113.66"}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::Login);
        assert_eq!(ev.outcome, Outcome::Failure);
        assert!(ev.principal.vouched_by.is_none());
    }

    #[test]
    fn properties_that_are_no_object_are_rejected() {
        let raw = r#"{"category":"AdvancedHunting-CloudAppEvents","properties":["2026-11-02T09:10:00Z","LogonSuccess"]}"#;
        let n = crate::normalize::Normalize::new(&Default::default()).unwrap();
        let ctx = crate::normalize::Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        assert!(n.normalize(raw.as_bytes(), None, &ctx, &mut out).is_err());
    }

    #[test]
    fn a_third_party_app_seen_through_defender_vouches_for_nobody() {
        let raw = CLOUD_APP.replace("Microsoft SharePoint Online", "Dropbox");
        let ev = &normalize_one(&raw)[0];
        assert!(ev.principal.vouched_by.is_none());
        assert!(!ev.vouches(Keys::SESSION));
        // nor does an audit record put inside a row about another vendor's app
        let with_record = raw.replacen(
            "\"ReportId\"",
            r#""RawEventData":{"CreationTime":"2026-11-02T09:00:00","Id":"u-9","Operation":"FileDownloaded","Workload":"SharePoint","UserId":"ceo@example.com"},"ReportId""#,
            1,
        );
        let ev = &normalize_one(&with_record)[0];
        assert_eq!(ev.principal.email.as_deref(), Some("ceo@example.com"));
        assert!(ev.principal.vouched_by.is_none());
    }

    #[test]
    fn a_failed_identity_logon_does_not_vouch_for_the_account_tried() {
        let raw = r#"{"Timestamp":"2026-11-02T09:10:00Z","ActionType":"LogonFailed","Application":"Active Directory","LogonType":"Credentials validation","Protocol":"Ntlm","AccountUpn":"carol@example.com","AccountObjectId":"c-oid","IPAddress":"192.0.2.44","DeviceName":"ws-12","ReportId":"r-3"}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::Login);
        assert_eq!(ev.outcome, Outcome::Failure);
        assert_eq!(ev.principal.email.as_deref(), Some("carol@example.com"));
        assert!(ev.principal.vouched_by.is_none());
        assert_eq!(ev.network.device_id.as_deref(), Some("ws-12"));
    }

    #[test]
    fn a_row_without_timestamp_is_rejected_naming_it() {
        let raw = r#"{"Timestamp":"yesterday","ActionType":"LogonSuccess"}"#;
        let n = crate::normalize::Normalize::new(&Default::default()).unwrap();
        let mut out = Vec::new();
        let ctx = crate::normalize::Context::new(Provenance::None, Ts(0));
        let e = n
            .normalize(raw.as_bytes(), None, &ctx, &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("Timestamp"), "{e}");
    }
}
