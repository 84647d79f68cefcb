//! Salesforce: Real-Time Event Monitoring objects (`LoginEvent`, `LogoutEvent`, `ApiEvent`, `ReportEvent`,
//! `BulkApiResultEvent`, and `LoginHistory`), `SetupAuditTrail` rows, and EventLogFile rows in JSON form
//! (upper-case columns such as `EVENT_TYPE`, `TIMESTAMP_DERIVED`, `SESSION_KEY`).
//!
//! In: one object or row. Out: one event. Principal: `Username`/`USER_NAME` (e-mail) and the user id; session:
//! `SessionKey` (root: `LoginKey`); geo from `LoginLatitude`/`LoginLongitude`; records from `RowsProcessed`; the
//! destination of an export is the integration that received it (`ConnectedAppId`, else `Client`, else
//! `Application`).
//! The object type is `attributes.type` when present, else inferred from its fields. State: none.

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "salesforce";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &[
    "EVENT_TYPE",
    "EventDate",
    "CreationTime",
    "creationtime",
    "Action",
    "Section",
    "CreatedDate",
];

/// `[normalize.formats.salesforce]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: SalesforceConfig = parse_config(NAME, t)?;
    Ok(Box::new(Salesforce))
}

pub struct Salesforce;

/// An EventLogFile row.
#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct Row<'a> {
    #[serde(borrow)]
    event_type: Text<'a>,
    #[serde(borrow, default)]
    timestamp_derived: Option<Text<'a>>,
    #[serde(borrow, default)]
    timestamp: Option<Text<'a>>,
    #[serde(borrow, default)]
    request_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_id_derived: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    source_ip: Option<Text<'a>>,
    #[serde(borrow, default)]
    client_ip: Option<Text<'a>>,
    #[serde(borrow, default)]
    session_key: Option<Text<'a>>,
    #[serde(borrow, default)]
    login_key: Option<Text<'a>>,
    #[serde(borrow, default)]
    browser_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    login_status: Option<Text<'a>>,
    #[serde(borrow, default)]
    request_status: Option<Text<'a>>,
    #[serde(borrow, default)]
    uri: Option<Text<'a>>,
    #[serde(borrow, default)]
    entity_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    rows_processed: Option<Text<'a>>,
    /// How the user authenticated (`pwd`, `mfa` … as Salesforce abbreviates them).
    #[serde(borrow, default)]
    authentication_method_reference: Option<Text<'a>>,
}

/// A Real-Time Event Monitoring object, LoginHistory or SetupAuditTrail row.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Object<'a> {
    #[serde(borrow, default)]
    event_date: Option<Text<'a>>,
    #[serde(borrow, default)]
    created_date: Option<Text<'a>>,
    #[serde(borrow, default)]
    event_identifier: Option<Text<'a>>,
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    username: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    created_by_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    source_ip: Option<Text<'a>>,
    #[serde(borrow, default)]
    session_key: Option<Text<'a>>,
    #[serde(borrow, default)]
    login_key: Option<Text<'a>>,
    /// A browser name ("Chrome", "Unknown"), not a user agent: read, not used as one.
    #[serde(borrow, default)]
    browser: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_agent: Option<Text<'a>>,
    #[serde(borrow, default)]
    city: Option<Text<'a>>,
    #[serde(borrow, default)]
    country: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    login_latitude: Option<f64>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    login_longitude: Option<f64>,
    #[serde(borrow, default)]
    status: Option<Text<'a>>,
    #[serde(borrow, default)]
    login_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    login_history_id: Option<Text<'a>>,
    /// The admin who logged in as this user ("Login As").
    #[serde(borrow, default)]
    delegated_username: Option<Text<'a>>,
    #[serde(borrow, default)]
    authentication_method_reference: Option<Text<'a>>,
    #[serde(borrow, default)]
    session_level: Option<Text<'a>>,
    #[serde(borrow, default)]
    application: Option<Text<'a>>,
    #[serde(borrow, default)]
    connected_app_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    client: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    rows_processed: Option<f64>,
    #[serde(borrow, default)]
    queried_entities: Option<Text<'a>>,
    #[serde(borrow, default)]
    action: Option<Text<'a>>,
    #[serde(borrow, default)]
    section: Option<Text<'a>>,
    #[serde(borrow, default, rename = "attributes")]
    attributes: Option<Attributes<'a>>,
}

#[derive(Deserialize)]
struct Attributes<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Text<'a>>,
}

fn some(t: Option<Text<'_>>) -> Option<Text<'_>> {
    t.filter(|s| !s.is_empty())
}

fn source() -> SourceInfo<'static> {
    SourceInfo {
        family: Family::Saas,
        vendor: crate::event::Vendor::Salesforce.as_str().into(),
        format: NAME.into(),
    }
}

impl Salesforce {
    fn row<'a>(&self, r: Row<'a>, ctx: &Context<'a>) -> Result<SessionEvent<'a>, NormalizeError> {
        let t = r.timestamp_derived.as_ref().or(r.timestamp.as_ref());
        let time = t.and_then(|t| Ts::parse(t)).ok_or_else(|| {
            NormalizeError::invalid(NAME, "row has no parsable TIMESTAMP_DERIVED or TIMESTAMP")
        })?;
        use Category::*;
        let cat = match r.event_type.as_str() {
            "Login" | "LoginAs" => Login,
            "Logout" => SessionEnd,
            "API"
            | "RestApi"
            | "ApexRestApi"
            | "ApexSoap"
            | "AsyncReportRun"
            | "URI"
            | "LightningInteraction" => ApiRequest,
            "BulkApi" | "BulkApi2" | "ReportExport" | "DocumentAttachmentDownloads" => Export,
            "Report" => DataRead,
            _ => Other,
        };
        let id = some(r.request_id).unwrap_or_else(|| super::fallback_id(ctx, 0));
        let mut ev = SessionEvent::new(source(), id, time, cat);
        let failed = r
            .login_status
            .as_deref()
            .is_some_and(|s| s != "LOGIN_NO_ERROR")
            || r.request_status
                .as_deref()
                .is_some_and(|s| s == "F" || s == "Failed");
        ev.outcome = if failed {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        ev.principal.kind = PrincipalKind::Human;
        ev.principal.email = some(r.user_name);
        ev.principal.id = some(r.user_id_derived).or(some(r.user_id));
        ev.network.ip = some(r.source_ip).or(some(r.client_ip));
        ev.network.user_agent = some(r.browser_type);
        ev.session.session_id = some(r.session_key);
        ev.session.root_session_id = some(r.login_key);
        ev.resource.app = Some("salesforce".into());
        ev.resource.object_id = some(r.entity_name).or(some(r.uri));
        ev.resource.records = r.rows_processed.and_then(|n| n.parse().ok());
        if cat == Export {
            ev.resource.destination = Some("api-client".into());
        }
        if let Some(m) = some(r.authentication_method_reference) {
            ev.auth_mut().method = Some(m);
        }
        ev.action = Some(r.event_type);
        Ok(ev)
    }

    fn object<'a>(
        &self,
        o: Object<'a>,
        ctx: &Context<'a>,
    ) -> Result<SessionEvent<'a>, NormalizeError> {
        let kind: &str = match o.attributes.as_ref().and_then(|a| a.kind.as_deref()) {
            Some(k) => k,
            None if o.action.is_some() && o.section.is_some() => "SetupAuditTrail",
            None if o.login_type.is_some() || o.login_history_id.is_some() => "LoginEvent",
            None if o.session_level.is_some() && o.status.is_none() => "LogoutEvent",
            None => "Event",
        };
        let kind = kind.to_string();
        use Category::*;
        let cat = match kind.as_str() {
            "LoginEvent" | "LoginHistory" | "LoginAsEvent" => Login,
            "LogoutEvent" => SessionEnd,
            "ApiEvent" | "ApiEventStream" => DataRead,
            "ReportEvent" | "ReportEventStream" | "ListViewEvent" => DataRead,
            "BulkApiResultEvent" | "BulkApiResultEventStore" => Export,
            "SetupAuditTrail" => AdminChange,
            _ => Other,
        };
        let t = o.event_date.as_ref().or(o.created_date.as_ref());
        let time = t.and_then(|t| Ts::parse(t)).ok_or_else(|| {
            NormalizeError::invalid(NAME, "object has no parsable EventDate or CreatedDate")
        })?;
        let id = some(o.event_identifier)
            .or(some(o.id))
            .unwrap_or_else(|| super::fallback_id(ctx, 0));
        let mut ev = SessionEvent::new(source(), id, time, cat);
        // Salesforce's own detection of a stolen session identifier (Transaction Security / Threat Detection)
        if kind.starts_with("SessionHijackingEvent") {
            ev.risk = Some(Risk {
                level: RiskLevel::High,
                kind: Text::Borrowed("SessionHijackingEvent"),
            });
        }
        ev.outcome = match o.status.as_deref() {
            Some("Success") | None => Outcome::Success,
            Some(_) => Outcome::Failure,
        };
        ev.principal.kind = PrincipalKind::Human;
        ev.principal.email = some(o.username);
        ev.principal.id = some(o.user_id).or(some(o.created_by_id));
        ev.network.ip = some(o.source_ip).filter(|ip| ip.as_str() != "Salesforce.com IP");
        // `Browser` names a browser ("Chrome"); only a real user-agent string is one
        let _ = o.browser;
        ev.network.user_agent = some(o.user_agent);
        if let Some((lat, lon)) = o
            .login_latitude
            .zip(o.login_longitude)
            .filter(|(a, o)| Geo::valid(*a, *o))
        {
            ev.network.geo = Some(Geo {
                lat,
                lon,
                city: some(o.city),
                country: some(o.country),
                accuracy_radius_km: None,
            });
        }
        ev.session.session_id = some(o.session_key);
        ev.session.root_session_id = some(o.login_key);
        ev.resource.app = Some("salesforce".into());
        ev.resource.object_type = some(o.section);
        ev.resource.object_id = some(o.queried_entities);
        ev.resource.records = o.rows_processed.filter(|n| *n >= 0.0).map(|n| n as u64);
        if cat == Export {
            // the integration that received the data: the connected app, else the API client, else the application
            ev.resource.destination = some(o.connected_app_id)
                .or(some(o.client))
                .or(some(o.application))
                .or(Some("api-client".into()));
        }
        let login_type = some(o.login_type.clone());
        let delegated = some(o.delegated_username);
        let method = some(o.authentication_method_reference);
        // a high-assurance session is one that passed multi-factor authentication
        let mfa = o.session_level.as_deref().and_then(|l| match l {
            "HIGH_ASSURANCE" => Some(true),
            "STANDARD" => Some(false),
            _ => None,
        });
        if login_type.is_some() || delegated.is_some() || method.is_some() || mfa.is_some() {
            let a = ev.auth_mut();
            a.login_type = login_type;
            a.delegated_by = delegated;
            a.method = method;
            a.mfa = mfa;
        }
        ev.action = Some(some(o.action).unwrap_or_else(|| Text::from(kind)));
        Ok(ev)
    }
}

impl Normalizer for Salesforce {
    fn authority(&self) -> super::Authority {
        super::Authority::OwnUsers
    }

    fn sniff(&self, p: &Probe) -> bool {
        p.has("EVENT_TYPE")
            || (p.has("EventDate") && !p.has_any(&["CreationTime", "creationtime"]))
            || (p.has("Action") && p.has("Section") && p.has("CreatedDate"))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        // EventLogFile rows (`EVENT_TYPE`, also as a pipeline lowercased it)
        let ev = if raw.contains("\"EVENT_TYPE\"") || raw.contains("\"event_type\"") {
            self.row(super::parse_json(NAME, raw)?, ctx)?
        } else {
            self.object(super::parse_json(NAME, raw)?, ctx)?
        };
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_session_hijacking_event_is_salesforces_high_risk_verdict() {
        let raw = r#"{"attributes":{"type":"SessionHijackingEvent"},"EventDate":"2026-11-02T08:00:00Z","EventIdentifier":"sh-1","Username":"ann@acme.com","UserId":"005A","SourceIp":"198.51.100.7","SessionKey":"sk-1","LoginKey":"lk-1","Score":0.9}"#;
        let ev = &crate::normalize::testutil::normalize_one(raw)[0];
        assert_eq!(ev.risk.as_ref().map(|r| r.level), Some(RiskLevel::High));
        assert_eq!(ev.session.session_id.as_deref(), Some("sk-1"));
    }

    /// Found by comparing with Elastic's pipeline: the user agent was taken from `Browser` ("Chrome").
    #[test]
    fn the_browser_name_is_not_a_user_agent() {
        let raw = r#"{"EventDate":"2026-11-02T08:00:00Z","LoginType":"Remote Access 2.0","Status":"Success","EventIdentifier":"e-9","SourceIp":"89.160.20.112","Username":"u@acme.com","UserId":"005B","LoginKey":"k","Browser":"Chrome"}"#;
        let ev = &crate::normalize::testutil::normalize_one(raw)[0];
        assert_eq!(ev.network.user_agent, None);
    }

    use crate::event::*;
    use crate::normalize::testutil::normalize_one;

    #[test]
    fn event_log_file_login_row() {
        let raw = r#"{"EVENT_TYPE":"Login","TIMESTAMP":"20261102080000.123","TIMESTAMP_DERIVED":"2026-11-02T08:00:00.123Z","REQUEST_ID":"r-1","USER_ID_DERIVED":"005A","USER_NAME":"ann@acme.com","SOURCE_IP":"198.51.100.7","SESSION_KEY":"","LOGIN_KEY":"lk-1","BROWSER_TYPE":"Mozilla/5.0","LOGIN_STATUS":"LOGIN_NO_ERROR"}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::Login, Outcome::Success)
        );
        assert_eq!(ev.principal.email.as_deref(), Some("ann@acme.com"));
        assert_eq!(ev.session.session_id, None);
        assert_eq!(ev.session.root_session_id.as_deref(), Some("lk-1"));
    }

    #[test]
    fn bulk_api_result_event_is_an_export_with_rows() {
        let raw = r#"{"attributes":{"type":"BulkApiResultEvent"},"EventDate":"2026-11-02T08:00:00Z","EventIdentifier":"e-9","Username":"ann@acme.com","UserId":"005A","SourceIp":"198.51.100.7","SessionKey":"sk-1","LoginKey":"lk-1","RowsProcessed":250000,"QueriedEntities":"Account","ConnectedAppId":"0H4tableau"}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::Export);
        assert_eq!(ev.resource.destination.as_deref(), Some("0H4tableau"));
        assert_eq!(ev.resource.records, Some(250000));
        assert_eq!(ev.resource.object_id.as_deref(), Some("Account"));
        assert_eq!(ev.session.session_id.as_deref(), Some("sk-1"));
    }

    #[test]
    fn login_history_object_with_geo_and_setup_audit_trail() {
        let raw = r#"{"EventDate":"2026-11-02T08:00:00Z","LoginType":"Remote Access 2.0","Status":"Success","EventIdentifier":"e-1","LoginLatitude":21.19,"City":"Surat","SourceIp":"89.160.20.112","Username":"u@acme.com","UserId":"005B","Country":"India","LoginLongitude":72.83,"LoginKey":"k","SessionLevel":"STANDARD","Browser":"Chrome"}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::Login);
        assert_eq!(
            ev.network.geo.as_ref().unwrap().city.as_deref(),
            Some("Surat")
        );
        let raw = r#"{"Action":"insertConnectedApplication","CreatedById":"005C","CreatedDate":"2026-11-02T08:00:00.000+0000","Id":"0Ym1","Section":"Connected Apps","attributes":{"type":"SetupAuditTrail"}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::AdminChange);
        assert_eq!(ev.action.as_deref(), Some("insertConnectedApplication"));
    }

    /// Issue 13's dropped facts: the login type, an admin's "Login As", and a high-assurance (MFA) session.
    #[test]
    fn a_login_keeps_its_type_delegate_and_assurance() {
        let raw = r#"{"attributes":{"type":"LoginEvent"},"EventDate":"2026-11-02T08:00:00Z","LoginType":"Application","Status":"Success","EventIdentifier":"e-7","SourceIp":"198.51.100.7","Username":"ann@acme.com","UserId":"005A","LoginKey":"k","SessionLevel":"HIGH_ASSURANCE","DelegatedUsername":"admin@acme.com"}"#;
        let ev = &crate::normalize::testutil::normalize_one(raw)[0];
        let a = ev.auth.as_deref().expect("auth facts");
        assert_eq!(a.login_type.as_deref(), Some("Application"));
        assert_eq!(a.delegated_by.as_deref(), Some("admin@acme.com"));
        assert_eq!(a.mfa, Some(true));
    }
}
