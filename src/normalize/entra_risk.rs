//! Entra ID Protection's verdicts: risk detections and risky users and service principals, as Azure Monitor's
//! diagnostic export writes them (`category` `UserRiskEvents`, `RiskyUsers`, `ServicePrincipalRiskEvents`,
//! `RiskyServicePrincipals`, the row in `properties`), as the Log Analytics / Sentinel tables `AADUserRiskEvents`,
//! `AADRiskyUsers`, `AADServicePrincipalRiskEvents` and `AADRiskyServicePrincipals` store them (PascalCase
//! columns), and as Microsoft Graph returns `riskDetection` and `riskyUser` objects.
//!
//! In: one row. Out: one event of category `other` whose `risk` is Microsoft's verdict, for `vendor_risk`.
//! State: none.
//!
//! - Principal: the user (`userId`, `userPrincipalName`; a risky-user row's `id` is the user's), else the service
//!   principal (`servicePrincipalId`, its `appId` as the client).
//! - Verdict: `riskState` `confirmedCompromised` (or an admin's `adminConfirmed…Compromised` detail or detection)
//!   is a confirmed compromise; `remediated`, `dismissed`, `confirmedSafe` and `none` are no verdict; otherwise the
//!   `riskLevel` (`hidden` is no level). Its kind is the `riskEventType` (`anomalousToken`, `unfamiliarFeatures`
//!   …), or `riskyUser` / `riskyServicePrincipal`.
//! - Time: when Microsoft last changed its verdict (a detection's `lastUpdatedDateTime`, else `detectedDateTime`;
//!   a risky entity's `riskLastUpdatedDateTime`), not when the risky sign-in happened: offline detections arrive
//!   hours later, and a verdict escalated or closed later is news from then. The event id is the row's id at that
//!   time, so each update is an event of its own.
//! - Shape: a row lacking `riskState`, `riskLevel`, its time, its principal's id, or a detection's
//!   `riskEventType` is refused with the field named: a verdict is acted on, so it is not read from a few keys.
//!   The detection's address and place are those of the risky activity, not of the principal at that time, so
//!   the event's location is marked untrusted; the sign-in it rates is named as the object (`requestId`).
//! - Microsoft writes these rows about its own users, so they vouch for their principals.

use super::{parse_config, ConfigError, Context, Loose, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "entra_risk";

/// Azure Monitor categories of Entra ID Protection.
const CATEGORIES: &[&str] = &[
    "UserRiskEvents",
    "RiskyUsers",
    "ServicePrincipalRiskEvents",
    "RiskyServicePrincipals",
];

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &[
    "properties",
    "category",
    "riskEventType",
    "RiskEventType",
    "riskLastUpdatedDateTime",
    "RiskLastUpdatedDateTime",
    "riskState",
    "RiskState",
];

/// `[normalize.formats.entra_risk]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RiskConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: RiskConfig = parse_config(NAME, t)?;
    Ok(Box::new(EntraRisk))
}

pub struct EntraRisk;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    #[serde(borrow, default, alias = "Id")]
    id: Loose<'a>,
    #[serde(borrow, default, alias = "RequestId")]
    request_id: Loose<'a>,
    #[serde(borrow, default, alias = "RiskEventType")]
    risk_event_type: Loose<'a>,
    #[serde(borrow, default, alias = "RiskState")]
    risk_state: Loose<'a>,
    #[serde(borrow, default, alias = "RiskLevel")]
    risk_level: Loose<'a>,
    #[serde(borrow, default, alias = "RiskDetail")]
    risk_detail: Loose<'a>,
    #[serde(borrow, default, alias = "IpAddress", alias = "IPAddress")]
    ip_address: Loose<'a>,
    #[serde(default, alias = "Location")]
    location: Option<Located>,
    #[serde(borrow, default, alias = "DetectedDateTime")]
    detected_date_time: Loose<'a>,
    #[serde(borrow, default, alias = "RiskLastUpdatedDateTime")]
    risk_last_updated_date_time: Loose<'a>,
    #[serde(borrow, default, alias = "LastUpdatedDateTime")]
    last_updated_date_time: Loose<'a>,
    #[serde(borrow, default, alias = "UserId")]
    user_id: Loose<'a>,
    #[serde(borrow, default, alias = "UserPrincipalName")]
    user_principal_name: Loose<'a>,
    #[serde(borrow, default, alias = "UserDisplayName")]
    user_display_name: Loose<'a>,
    #[serde(borrow, default, alias = "ServicePrincipalId")]
    service_principal_id: Loose<'a>,
    #[serde(borrow, default, alias = "ServicePrincipalDisplayName")]
    service_principal_display_name: Loose<'a>,
    #[serde(borrow, default, alias = "AppId")]
    app_id: Loose<'a>,
    /// A risky service principal's name (Graph's `riskyServicePrincipal`).
    #[serde(borrow, default, alias = "DisplayName")]
    display_name: Loose<'a>,
    #[serde(borrow, default, alias = "ServicePrincipalType")]
    service_principal_type: Loose<'a>,
    /// Log Analytics' table name (`AADRiskyUsers` …).
    #[serde(borrow, default, rename = "Type")]
    table: Loose<'a>,
}

/// `location` of a detection: an object, or Log Analytics' dynamic column serialized as a JSON string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Located {
    Place(Place),
    Text(String),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Place {
    #[serde(default)]
    city: Option<String>,
    #[serde(default)]
    country_or_region: Option<String>,
}

/// Azure writes times in several forms: ISO 8601 (with 7 fractional digits, or an unpadded hour), and the
/// envelope's `8/22/2022 6:07:16 PM`.
fn azure_time(s: &str) -> Option<Ts> {
    let s = s.trim();
    Ts::parse(s).or_else(|| {
        let bare = s.strip_suffix('Z').unwrap_or(s);
        ["%Y-%m-%dT%H:%M:%S%.f", "%m/%d/%Y %I:%M:%S %p"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(bare, f).ok())
            .map(|t| Ts(t.and_utc().timestamp_millis()))
    })
}

/// An admin's confirmation of a compromise, as a `riskDetail` or a `riskEventType`
/// (`adminConfirmedUserCompromised`, `adminConfirmedServicePrincipalCompromised`).
fn admin_confirmed(s: Option<&str>) -> bool {
    s.is_some_and(|d| {
        let d = d.to_ascii_lowercase();
        d.starts_with("adminconfirmed") && d.ends_with("compromised")
    })
}

/// Microsoft's verdict: a confirmed compromise for `confirmedCompromised`; for an open risk (`atRisk`), a confirmed
/// compromise when an admin confirmed it, else its level. Any other state (closed as safe, remediated or dismissed,
/// `none`, a value added later, a number, nothing) is no verdict: only the states that mean an open risk count.
fn verdict(
    state: Option<&str>,
    level: Option<&str>,
    detail: Option<&str>,
    event_type: Option<&str>,
) -> Option<RiskLevel> {
    let state = state.unwrap_or("").trim();
    if state.eq_ignore_ascii_case("confirmedCompromised") {
        Some(RiskLevel::Compromised)
    } else if !state.eq_ignore_ascii_case("atRisk") {
        None
    } else if admin_confirmed(detail) || admin_confirmed(event_type) {
        Some(RiskLevel::Compromised)
    } else {
        level.and_then(RiskLevel::parse)
    }
}

impl Normalizer for EntraRisk {
    fn authority(&self) -> super::Authority {
        super::Authority::OwnUsers
    }

    fn sniff(&self, p: &Probe) -> bool {
        (p.has("properties")
            && p.category
                .as_deref()
                .is_some_and(|c| CATEGORIES.contains(&c)))
            || (p.has("riskEventType") && p.has("riskState"))
            || (p.has("RiskEventType") && p.has("RiskState"))
            || (p.has("riskLastUpdatedDateTime") && p.has("riskState"))
            || (p.has("RiskLastUpdatedDateTime") && p.has("RiskState"))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let (row_text, _, category) = super::azure_row(raw);
        let r: Row<'a> = super::parse_json(NAME, row_text)?;
        let kind_of_row = category.or(r.table.0.clone());
        let detection = r.risk_event_type.0.is_some()
            || kind_of_row
                .as_deref()
                .is_some_and(|c| c.ends_with("RiskEvents"));
        // the shape Microsoft writes, whole: a verdict is acted on, so a row missing what makes it one is refused
        // (with the field named) rather than read from the few keys anyone could write
        let need = |present: bool, field: &str| {
            if present {
                Ok(())
            } else {
                Err(NormalizeError::invalid(
                    NAME,
                    format!(
                        "a {} row without {field}",
                        if detection {
                            "risk detection"
                        } else {
                            "risky entity"
                        }
                    ),
                ))
            }
        };
        let given = |l: &Loose<'_>| l.0.as_deref().is_some_and(|s| !s.trim().is_empty());
        need(given(&r.risk_state), "riskState")?;
        need(given(&r.risk_level), "riskLevel")?;
        // when Microsoft last changed its verdict: a detection escalated (or closed) later is news from then
        let last_changed = if detection {
            need(given(&r.risk_event_type), "riskEventType")?;
            [&r.last_updated_date_time, &r.detected_date_time]
        } else {
            need(given(&r.id), "id")?;
            [&r.risk_last_updated_date_time, &r.last_updated_date_time]
        };
        let time = last_changed
            .iter()
            .find_map(|t| t.0.as_deref().and_then(azure_time))
            .ok_or_else(|| {
                NormalizeError::invalid(
                    NAME,
                    if detection {
                        "no parsable lastUpdatedDateTime or detectedDateTime"
                    } else {
                        "no parsable riskLastUpdatedDateTime"
                    },
                )
            })?;
        let src = SourceInfo {
            family: Family::Idp,
            vendor: crate::event::Vendor::Microsoft.as_str().into(),
            format: NAME.into(),
        };
        let user_id = r.user_id.non_empty();
        let user_name = r.user_principal_name.non_empty();
        let sp = r.service_principal_id.non_empty();
        let service = sp.is_some()
            || kind_of_row
                .as_deref()
                .is_some_and(|c| c.contains("ServicePrincipal"))
            || (user_id.is_none()
                && user_name.is_none()
                && (r.app_id.0.is_some() || r.service_principal_type.0.is_some()));
        // a risky entity's row is keyed by the entity (its `id` is the user's or service principal's) and updated in
        // place, so the event is that entity at that update; a detection has its own id
        let entity_id = r.id.non_empty();
        let principal_id = match (service, detection) {
            (false, false) => user_id.or(entity_id.clone()),
            (false, true) => user_id,
            (true, false) => sp.or(entity_id.clone()),
            (true, true) => sp,
        };
        need(
            principal_id.is_some(),
            if service {
                "servicePrincipalId"
            } else {
                "userId"
            },
        )?;
        let id = match &entity_id {
            Some(e) if detection => Text::from(format!("{e}@{}", time.0)),
            Some(e) => Text::from(format!("entra-risky:{e}@{}", time.0)),
            None => super::fallback_id(ctx, 0),
        };
        let mut ev = SessionEvent::new(src, id, time, Category::Other);
        ev.outcome = Outcome::Success;
        ev.principal.id = principal_id;
        if service {
            ev.principal.kind = PrincipalKind::Service;
            ev.principal.display_name = r
                .service_principal_display_name
                .non_empty()
                .or(r.display_name.non_empty());
            ev.session.client_id = r.app_id.non_empty();
        } else {
            ev.principal.kind = PrincipalKind::Human;
            ev.principal.email = user_name;
            ev.principal.display_name = r.user_display_name.non_empty();
        }
        let level = verdict(
            r.risk_state.0.as_deref(),
            r.risk_level.0.as_deref(),
            r.risk_detail.0.as_deref(),
            r.risk_event_type.0.as_deref(),
        );
        let kind =
            r.risk_event_type
                .non_empty()
                .unwrap_or(Text::Borrowed(match (detection, service) {
                    (_, true) => "riskyServicePrincipal",
                    (true, false) => "riskDetection",
                    (false, false) => "riskyUser",
                }));
        ev.risk = level.map(|level| Risk { level, kind });
        ev.network.ip = r.ip_address.non_empty();
        let place: Option<Place> = match r.location {
            Some(Located::Place(p)) => Some(p),
            Some(Located::Text(s)) => serde_json::from_str(&s).ok(),
            Some(Located::Other(_)) | None => None,
        };
        if let Some(p) = place {
            ev.network.country = p
                .country_or_region
                .filter(|c| !c.is_empty())
                .map(Text::from);
            ev.network.city = p.city.filter(|c| !c.is_empty()).map(Text::from);
        }
        // the risky activity's address and place, reported later: not where the principal was at `time`
        ev.location_untrusted = true;
        if let Some(req) = r.request_id.non_empty() {
            ev.resource.object_type = Some(Text::Borrowed("sign_in"));
            ev.resource.object_id = Some(req);
        }
        ev.resource.app = Some(Text::Borrowed("entra-id-protection"));
        ev.action = Some(
            kind_of_row
                .filter(|c| !c.is_empty())
                .unwrap_or(Text::Borrowed(match (detection, service) {
                    (true, _) => "riskDetection",
                    (false, true) => "riskyServicePrincipal",
                    (false, false) => "riskyUser",
                })),
        );
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::testutil::normalize_one;

    /// A risk detection as the diagnostic export writes it: the envelope's time is in Azure's US form, the row's
    /// times are ISO, one with an unpadded hour.
    const EXPORTED_DETECTION: &str = r#"{"time":"11/2/2026 9:14:02 AM","resourceId":"/tenants/t-1/providers/microsoft.aadiam","operationName":"User Risk Detection","operationVersion":"1.0","category":"UserRiskEvents","tenantId":"t-1","resultSignature":"None","durationMs":0,"callerIpAddress":"203.0.113.50","correlationId":"det-1","identity":"ann lee","Level":4,"location":"neu","properties":{"id":"det-1","requestId":"si-77","correlationId":"corr-77","riskType":"anomalousToken","riskEventType":"anomalousToken","riskState":"atRisk","riskLevel":"high","riskDetail":"none","source":"IdentityProtection","detectionTimingType":"offline","activity":"signin","ipAddress":"203.0.113.50","location":{"city":"Lagos","state":"Lagos","countryOrRegion":"NG","geoCoordinates":{"latitude":6.45,"longitude":3.39}},"activityDateTime":"2026-11-02T8:01:10.361Z","detectedDateTime":"2026-11-02T09:14:02.0000000Z","lastUpdatedDateTime":"2026-11-02T09:14:03Z","userId":"0b6c-oid","userDisplayName":"Ann Lee","userPrincipalName":"ann@contoso.com","additionalInfo":"[{\"Key\":\"userAgent\",\"Value\":\"Mozilla/5.0\"}]","tokenIssuerType":"AzureAD"}}"#;

    #[test]
    fn an_exported_risk_detection_is_microsofts_verdict_on_the_user_when_detected() {
        let ev = &normalize_one(EXPORTED_DETECTION)[0];
        assert_eq!(ev.source.format.as_str(), NAME);
        assert_eq!(ev.category, Category::Other);
        let at = Ts::parse("2026-11-02T09:14:03Z").unwrap();
        assert_eq!(ev.event_id.as_str(), format!("det-1@{}", at.0));
        assert_eq!(
            ev.event_time, at,
            "dated by the verdict's last change, not the sign-in"
        );
        let r = ev.risk.as_ref().expect("a verdict");
        assert_eq!(
            (r.level, r.kind.as_str()),
            (RiskLevel::High, "anomalousToken")
        );
        assert_eq!(ev.principal.id.as_deref(), Some("0b6c-oid"));
        assert_eq!(ev.principal.key(), Some("ann@contoso.com"));
        assert_eq!(ev.principal.kind, PrincipalKind::Human);
        assert!(ev.principal.vouched_by.is_some());
        assert_eq!(ev.network.ip.as_deref(), Some("203.0.113.50"));
        assert_eq!(ev.network.country.as_deref(), Some("NG"));
        assert!(ev.location_untrusted);
        assert_eq!(ev.resource.object_id.as_deref(), Some("si-77"));
        assert_eq!(ev.action.as_deref(), Some("UserRiskEvents"));
    }

    #[test]
    fn a_closed_risk_is_no_verdict_and_a_confirmed_one_is_a_compromise() {
        let with = |state: &str, level: &str| {
            EXPORTED_DETECTION
                .replace(
                    r#""riskState":"atRisk""#,
                    &format!(r#""riskState":"{state}""#),
                )
                .replace(
                    r#""riskLevel":"high""#,
                    &format!(r#""riskLevel":"{level}""#),
                )
        };
        let level = |raw: String| normalize_one(&raw)[0].risk.as_ref().map(|r| r.level);
        assert_eq!(level(with("remediated", "high")), None);
        assert_eq!(level(with("dismissed", "high")), None);
        assert_eq!(level(with("confirmedSafe", "medium")), None);
        assert_eq!(
            level(with("confirmedCompromised", "high")),
            Some(RiskLevel::Compromised)
        );
        assert_eq!(level(with("atRisk", "medium")), Some(RiskLevel::Medium));
        // a level hidden from the tenant's licence is no level
        assert_eq!(level(with("atRisk", "hidden")), None);
        // found by the second outside review: only the states of an open risk count; a state added later, or one
        // an exporter wrote as a number (Graph's 3 is dismissed), is no verdict
        assert_eq!(level(with("unknownFutureValue", "high")), None);
        assert_eq!(level(with("3", "high")), None);
        // found by the outside review: an admin's confirmation that was later remediated is closed
        let closed = with("remediated", "high").replace(
            r#""riskEventType":"anomalousToken""#,
            r#""riskEventType":"adminConfirmedUserCompromised""#,
        );
        assert_eq!(level(closed), None);
        let open = with("atRisk", "high").replace(
            r#""riskDetail":"none""#,
            r#""riskDetail":"adminConfirmedUserCompromised""#,
        );
        assert_eq!(level(open), Some(RiskLevel::Compromised));
    }

    /// Found by the outside review: a detection escalated later keeps its id and detection time; read by those, the
    /// update would be dropped as a duplicate of the first export.
    #[test]
    fn an_escalated_detection_is_a_new_event_dated_by_its_update() {
        let first = &normalize_one(EXPORTED_DETECTION)[0];
        let escalated = EXPORTED_DETECTION
            .replace(
                r#""riskState":"atRisk""#,
                r#""riskState":"confirmedCompromised""#,
            )
            .replace(
                r#""lastUpdatedDateTime":"2026-11-02T09:14:03Z""#,
                r#""lastUpdatedDateTime":"2026-11-02T11:40:00Z""#,
            );
        let later = &normalize_one(&escalated)[0];
        assert_ne!(first.event_id, later.event_id);
        assert_eq!(later.event_time, Ts::parse("2026-11-02T11:40:00Z").unwrap());
        assert_eq!(
            later.risk.as_ref().map(|r| r.level),
            Some(RiskLevel::Compromised)
        );
    }

    /// Found by the outside review: a verdict is acted on, so the few keys anyone could write are not one.
    #[test]
    fn a_row_without_the_shape_of_a_verdict_is_refused_with_the_field_named() {
        let n = crate::normalize::Normalize::new(&Default::default()).unwrap();
        let ctx = crate::normalize::Context::new(Provenance::None, Ts(0));
        let forged = r#"{"riskState":"confirmedCompromised","riskLastUpdatedDateTime":"2026-11-02T09:00:00Z","userPrincipalName":"ceo@contoso.com"}"#;
        let e = n
            .normalize(forged.as_bytes(), None, &ctx, &mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("riskLevel"), "{e}");
        let no_id = forged.replace(r#""riskState""#, r#""riskLevel":"high","riskState""#);
        let e = n
            .normalize(no_id.as_bytes(), None, &ctx, &mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("without id"), "{e}");
        // an empty value is not the field
        let empty = EXPORTED_DETECTION.replace(r#""riskState":"atRisk""#, r#""riskState":"""#);
        let e = n
            .normalize(empty.as_bytes(), None, &ctx, &mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("riskState"), "{e}");
    }

    #[test]
    fn a_risky_user_row_rates_the_user_it_is_keyed_by() {
        let raw = r#"{"time":"2026-11-02T10:00:00Z","category":"RiskyUsers","operationName":"Risky user","properties":{"id":"0b6c-oid","userDisplayName":"Ann Lee","userPrincipalName":"ann@contoso.com","riskLastUpdatedDateTime":"2026-11-02T09:59:00Z","riskState":"confirmedCompromised","riskDetail":"adminConfirmedUserCompromised","riskLevel":"high","isGuest":false,"isDeleted":false,"isProcessing":false}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.principal.id.as_deref(), Some("0b6c-oid"));
        assert_eq!(ev.principal.key(), Some("ann@contoso.com"));
        let r = ev.risk.as_ref().expect("a verdict");
        assert_eq!(
            (r.level, r.kind.as_str()),
            (RiskLevel::Compromised, "riskyUser")
        );
        assert_eq!(ev.event_time, Ts::parse("2026-11-02T09:59:00Z").unwrap());
        // the same user's next update is another event
        let later = raw.replace("09:59:00Z", "10:30:00Z");
        assert_ne!(ev.event_id, normalize_one(&later)[0].event_id);
    }

    #[test]
    fn log_analytics_rows_and_graph_objects_are_read() {
        let table = r#"{"TimeGenerated":"2026-11-02T09:15:00Z","Id":"det-2","RequestId":"si-78","RiskEventType":"unfamiliarFeatures","RiskState":"atRisk","RiskLevel":"medium","RiskDetail":"none","IpAddress":"198.51.100.3","Location":"{\"city\":\"Oslo\",\"countryOrRegion\":\"NO\"}","DetectedDateTime":"2026-11-02T09:10:00Z","UserId":"u-2","UserPrincipalName":"bo@contoso.com","Type":"AADUserRiskEvents"}"#;
        let ev = &normalize_one(table)[0];
        assert_eq!(ev.source.format.as_str(), NAME);
        assert_eq!(ev.risk.as_ref().map(|r| r.level), Some(RiskLevel::Medium));
        assert_eq!(ev.network.city.as_deref(), Some("Oslo"));
        assert_eq!(ev.event_time, Ts::parse("2026-11-02T09:10:00Z").unwrap());
        assert_eq!(ev.action.as_deref(), Some("AADUserRiskEvents"));
        let graph = r#"{"id":"det-3","requestId":"si-79","correlationId":"c","riskEventType":"leakedCredentials","riskState":"atRisk","riskLevel":"high","riskDetail":"none","source":"IdentityProtection","detectionTimingType":"offline","activity":"user","activityDateTime":"2026-11-01T00:00:00Z","detectedDateTime":"2026-11-02T06:00:00Z","lastUpdatedDateTime":"2026-11-02T06:00:00Z","userId":"u-3","userDisplayName":"Cy","userPrincipalName":"cy@contoso.com"}"#;
        let ev = &normalize_one(graph)[0];
        assert_eq!(ev.source.format.as_str(), NAME);
        assert_eq!(
            ev.risk.as_ref().map(|r| (r.level, r.kind.as_str())),
            Some((RiskLevel::High, "leakedCredentials"))
        );
    }

    #[test]
    fn a_service_principals_detection_rates_the_service_principal() {
        let raw = r#"{"time":"2026-11-02T10:00:00Z","category":"ServicePrincipalRiskEvents","properties":{"id":"det-4","riskEventType":"suspiciousSignins","riskState":"atRisk","riskLevel":"high","detectedDateTime":"2026-11-02T09:00:00Z","servicePrincipalId":"sp-1","servicePrincipalDisplayName":"ci-deployer","appId":"app-1","ipAddress":"203.0.113.9"}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            (ev.principal.id.as_deref(), ev.principal.kind),
            (Some("sp-1"), PrincipalKind::Service)
        );
        assert_eq!(ev.session.client_id.as_deref(), Some("app-1"));
        assert_eq!(ev.risk.as_ref().map(|r| r.level), Some(RiskLevel::High));
        // found by the outside review: Graph's riskyServicePrincipal has no category to say what it is
        let graph = r#"{"id":"sp-2","appId":"app-2","displayName":"etl","servicePrincipalType":"Application","riskLastUpdatedDateTime":"2026-11-02T09:00:00Z","riskState":"atRisk","riskLevel":"high","riskDetail":"none","isEnabled":true,"isProcessing":false}"#;
        let ev = &normalize_one(graph)[0];
        assert_eq!(
            (ev.principal.id.as_deref(), ev.principal.kind),
            (Some("sp-2"), PrincipalKind::Service)
        );
        assert_eq!(ev.principal.display_name.as_deref(), Some("etl"));
    }

    #[test]
    fn azure_times_in_their_several_forms() {
        let want = Ts::parse("2022-08-22T18:07:16Z");
        assert_eq!(azure_time("8/22/2022 6:07:16 PM"), want);
        assert_eq!(
            azure_time("2022-09-09T8:48:50.361Z"),
            Ts::parse("2022-09-09T08:48:50.361Z")
        );
        assert_eq!(azure_time("not a time"), None);
    }
}
