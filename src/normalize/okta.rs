//! Okta System Log (`/api/v1/logs` objects, as Okta's log streaming and SIEM pulls deliver them).
//!
//! In: one System Log event. Out: one session event. Sessions: `authenticationContext.externalSessionId`
//! (root: `rootSessionId`); token id: the `id` of an `access_token`/`refresh_token`/`id_token` target (Okta puts the
//! token's jti there, never the token); OAuth client: `client.id`; geo, ASN and proxy flag from `client` and
//! `securityContext`; device from `device.id` or `debugContext.debugData.dtHash`/`deviceFingerprint`. State: none.

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "okta";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &["eventType", "published", "actor"];

/// `[normalize.formats.okta]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: OktaConfig = parse_config(NAME, t)?;
    Ok(Box::new(Okta {
        hint: super::Needles::new(&["\"eventType\"", "\"uuid\"", "\"published\""]),
    }))
}

pub struct Okta {
    hint: super::Needles,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw<'a> {
    /// Optional: SIEM exports drop it; the event then gets an id from where it was read.
    #[serde(borrow, default)]
    uuid: Option<Text<'a>>,
    #[serde(borrow)]
    published: Text<'a>,
    #[serde(borrow)]
    event_type: Text<'a>,
    #[serde(borrow, default)]
    actor: Option<Actor<'a>>,
    #[serde(borrow, default)]
    client: Option<Client<'a>>,
    #[serde(borrow, default)]
    device: Option<Device<'a>>,
    #[serde(borrow, default)]
    authentication_context: Option<AuthCtx<'a>>,
    #[serde(borrow, default)]
    outcome: Option<OutcomeRaw<'a>>,
    #[serde(borrow, default)]
    security_context: Option<SecCtx<'a>>,
    #[serde(borrow, default)]
    debug_context: Option<DebugCtx<'a>>,
    #[serde(borrow, default)]
    target: Option<Vec<Target<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Actor<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    alternate_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    display_name: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Client<'a> {
    #[serde(borrow, default)]
    user_agent: Option<UserAgent<'a>>,
    #[serde(borrow, default)]
    ip_address: Option<Text<'a>>,
    #[serde(borrow, default)]
    geographical_context: Option<GeoCtx<'a>>,
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserAgent<'a> {
    #[serde(borrow, default)]
    raw_user_agent: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct GeoCtx<'a> {
    #[serde(borrow, default)]
    city: Option<Text<'a>>,
    #[serde(borrow, default)]
    country: Option<Text<'a>>,
    #[serde(default)]
    geolocation: Option<LatLon>,
}

#[derive(Deserialize)]
struct LatLon {
    #[serde(default, deserialize_with = "super::lenient_num")]
    lat: Option<f64>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    lon: Option<f64>,
}

#[derive(Deserialize)]
struct Device<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthCtx<'a> {
    #[serde(borrow, default)]
    external_session_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    root_session_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct OutcomeRaw<'a> {
    #[serde(borrow, default)]
    result: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecCtx<'a> {
    #[serde(default, deserialize_with = "super::lenient_num")]
    as_number: Option<u32>,
    #[serde(borrow, default)]
    as_org: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::lenient_bool")]
    is_proxy: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DebugCtx<'a> {
    #[serde(borrow, default)]
    debug_data: Option<DebugData<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DebugData<'a> {
    #[serde(borrow, default)]
    dt_hash: Option<Text<'a>>,
    #[serde(borrow, default)]
    device_fingerprint: Option<Text<'a>>,
    #[serde(borrow, default)]
    grant_type: Option<Text<'a>>,
    /// Okta's risk evaluation: `"{level=HIGH, reasons=Anomalous Device}"`.
    #[serde(borrow, default)]
    risk: Option<Text<'a>>,
}

/// The level inside Okta's `{level=HIGH, reasons=…}` risk string.
fn okta_risk_level(s: &str) -> Option<RiskLevel> {
    let rest = &s[s.find("level=")? + "level=".len()..];
    let word = rest.split([',', '}', ' ']).next().unwrap_or("");
    RiskLevel::parse(word)
}

#[derive(Deserialize)]
struct Target<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow, default, rename = "displayName")]
    display_name: Option<Text<'a>>,
    #[serde(borrow, default, rename = "alternateId")]
    alternate_id: Option<Text<'a>>,
}

/// Map an Okta event type to a category.
fn category(event_type: &str, grant_type: Option<&str>) -> Category {
    match event_type {
        "user.session.start" => Category::Login,
        "user.session.end" | "user.session.clear" | "user.session.expire" => Category::SessionEnd,
        "user.authentication.sso" => Category::Sso,
        t if t.starts_with("user.authentication.") => Category::Login,
        t if t.starts_with("app.oauth2.") && t.contains("revoke") => Category::TokenRevoked,
        // a refresh token presented again after rotation: Okta's reuse detection (kept as a refresh with its outcome)
        t if t.starts_with("app.oauth2.") && t.contains("reuse") => Category::TokenRefreshed,
        t if t.starts_with("app.oauth2.") && t.contains("token.grant") => {
            if grant_type == Some("refresh_token") {
                Category::TokenRefreshed
            } else {
                Category::TokenIssued
            }
        }
        t if t.starts_with("user.session.access_admin_app") => Category::Login,
        t if t.starts_with("user.account.")
            || t.starts_with("user.lifecycle.")
            || t.starts_with("group.")
            || t.starts_with("application.")
            || t.starts_with("policy.lifecycle.")
            || t.starts_with("system.") =>
        {
            Category::AdminChange
        }
        _ => Category::Other,
    }
}

impl Normalizer for Okta {
    fn authority(&self) -> super::Authority {
        super::Authority::OwnUsers
    }

    fn hint(&self, raw: &str) -> bool {
        self.hint.all_in(raw)
    }

    fn sniff(&self, p: &Probe) -> bool {
        p.has("eventType") && p.has("published") && p.has("actor")
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let r: Raw<'a> = super::parse_json(NAME, raw)?;
        let time = Ts::parse(&r.published).ok_or_else(|| {
            NormalizeError::invalid(
                NAME,
                format!("published {:?} is not a timestamp", r.published.as_str()),
            )
        })?;
        let debug = r.debug_context.and_then(|d| d.debug_data);
        let grant = debug.as_ref().and_then(|d| d.grant_type.as_deref());
        // Okta's own verdicts: session roaming (Identity Threat Protection), a session's context changing, user
        // risk, and the risk level of a sign-in's behaviour evaluation
        let stated = debug
            .as_ref()
            .and_then(|d| d.risk.as_deref())
            .and_then(okta_risk_level);
        let risk_level = match r.event_type.as_str() {
            "security.session.detect_client_roaming" => {
                Some(stated.unwrap_or(RiskLevel::High).max(RiskLevel::High))
            }
            "user.session.context.change" | "user.risk.detect" | "user.risk.change" => {
                Some(stated.unwrap_or(RiskLevel::Medium))
            }
            _ => stated,
        };
        let cat = category(&r.event_type, grant);
        let src = SourceInfo {
            family: Family::Idp,
            vendor: crate::event::Vendor::Okta.as_str().into(),
            format: NAME.into(),
        };
        let id = r.uuid.unwrap_or_else(|| super::fallback_id(ctx, 0));
        let mut ev = SessionEvent::new(src, id, time, cat);
        ev.risk = risk_level.map(|level| Risk {
            level,
            kind: Text::from(
                r.event_type
                    .rsplit('.')
                    .next()
                    .unwrap_or("risk")
                    .to_string(),
            ),
        });
        ev.outcome = match r.outcome.and_then(|o| o.result).as_deref() {
            Some("SUCCESS") | Some("ALLOW") => Outcome::Success,
            Some("FAILURE") | Some("DENY") | Some("REJECT") => Outcome::Failure,
            _ => Outcome::Unknown,
        };
        if let Some(a) = r.actor {
            ev.principal.kind = match a.kind.as_deref() {
                Some("User") => PrincipalKind::Human,
                Some(_) => PrincipalKind::Service,
                None => PrincipalKind::Unknown,
            };
            ev.principal.email = a.alternate_id.filter(|s| s.contains('@'));
            ev.principal.id = a.id;
            ev.principal.display_name = a.display_name;
        }
        if let Some(c) = r.client {
            ev.network.ip = c.ip_address;
            ev.network.user_agent = c.user_agent.and_then(|u| u.raw_user_agent);
            ev.session.client_id = c.id;
            if let Some(g) = c.geographical_context {
                if let Some(LatLon {
                    lat: Some(lat),
                    lon: Some(lon),
                }) = g
                    .geolocation
                    .filter(|l| l.lat.zip(l.lon).is_some_and(|(a, o)| Geo::valid(a, o)))
                {
                    ev.network.geo = Some(Geo {
                        lat,
                        lon,
                        city: g.city,
                        country: g.country,
                        accuracy_radius_km: None,
                    });
                }
            }
        }
        if let Some(a) = r.authentication_context {
            ev.session.session_id = a
                .external_session_id
                .filter(|s| !s.is_empty() && *s != "unknown");
            ev.session.root_session_id = a.root_session_id;
        }
        if let Some(s) = r.security_context {
            ev.network.asn = s.as_number;
            ev.network.as_org = s.as_org;
            ev.network.is_proxy = s.is_proxy;
        }
        ev.network.device_id = r.device.and_then(|d| d.id).or_else(|| {
            debug
                .as_ref()
                .and_then(|d| d.dt_hash.clone().or_else(|| d.device_fingerprint.clone()))
        });
        for t in r.target.into_iter().flatten() {
            let kind = t.kind.as_deref().unwrap_or("");
            let is = |names: &[&str]| names.iter().any(|n| kind.eq_ignore_ascii_case(n));
            if is(&[
                "access_token",
                "accesstoken",
                "refresh_token",
                "refreshtoken",
                "id_token",
            ]) {
                if ev.session.token_id.is_none() {
                    ev.session.token_id = t.id;
                }
            } else if is(&["appinstance"]) {
                ev.resource.app = t.display_name.or(t.id);
            } else if is(&["user"]) && ev.principal.kind == PrincipalKind::Service {
                // an OAuth client acting for a user (token grants, reuse detection): the user is the principal
                ev.session.client_id = ev.session.client_id.take().or(ev.principal.id.take());
                ev.principal.kind = PrincipalKind::Human;
                ev.principal.email = t.alternate_id.filter(|s| s.contains('@'));
                ev.principal.id = t.id;
                ev.principal.display_name = t.display_name;
            } else if is(&["user"])
                && matches!(ev.category, Category::SessionEnd | Category::TokenRevoked)
                && ev.resource.object_id.is_none()
            {
                // an admin or API client ended this user's sessions (user.session.clear): the user is the object
                ev.resource.object_type = Some("User".into());
                ev.resource.object_id = t.alternate_id.or(t.id);
            }
        }
        // Lockouts and self-service recovery are set off by whoever types the user's name: their client is the
        // requester, not where the user was (travel logic skips the location).
        let requester_not_user = [
            "user.account.lock",
            "user.account.reset_password",
            "user.account.unlock_by_user",
        ]
        .iter()
        .any(|t| r.event_type.starts_with(t));
        if requester_not_user {
            ev.location_untrusted = true;
        }
        ev.action = Some(r.event_type);
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Okta's own verdicts are kept: session roaming is high, a behaviour evaluation says its level.
    #[test]
    fn okta_session_roaming_and_sign_in_risk_are_kept_as_the_vendors_verdict() {
        let roam = r#"{"uuid":"r-1","published":"2026-11-02T08:00:00.000Z","eventType":"security.session.detect_client_roaming","actor":{"id":"00u1","type":"User","alternateId":"alice@example.com"},"client":{"ipAddress":"198.51.100.4"},"authenticationContext":{"externalSessionId":"102abc"},"outcome":{"result":"SUCCESS"}}"#;
        let ev = &crate::normalize::testutil::normalize_one(roam)[0];
        let r = ev.risk.as_ref().unwrap();
        assert_eq!(
            (r.level, r.kind.as_str()),
            (RiskLevel::High, "detect_client_roaming")
        );
        let start = LOGIN.replace(r#""dtHash":"dev-1""#, r#""dtHash":"dev-1","risk":"{reasons=Anomalous Geo-Distance, New Device, level=MEDIUM}""#);
        let ev = &crate::normalize::testutil::normalize_one(&start)[0];
        assert_eq!(ev.risk.as_ref().map(|r| r.level), Some(RiskLevel::Medium));
        let ev = &crate::normalize::testutil::normalize_one(LOGIN)[0];
        assert_eq!(ev.risk, None);
    }

    /// Found on a SIEM's export of the System Log: records without `uuid` were rejected ("missing field `uuid`").
    #[test]
    fn a_record_without_uuid_is_read_with_an_id_from_where_it_was_read() {
        let raw = LOGIN.replace(r#""uuid":"e-1","#, "");
        assert!(!raw.contains("uuid"));
        let evs = crate::normalize::testutil::normalize_one(&raw);
        assert_eq!(evs.len(), 1);
        assert!(!evs[0].event_id.is_empty());
        assert_eq!(evs[0].session.session_id.as_deref(), Some("102abc"));
    }

    use crate::event::*;
    use crate::normalize::testutil::normalize_one;

    const LOGIN: &str = r#"{"uuid":"e-1","published":"2026-11-02 08:00:00.000000000","eventType":"user.session.start","actor":{"id":"00u1","type":"User","alternateId":"alice@example.com","displayName":"Alice"},"client":{"ipAddress":"73.1.2.3","userAgent":{"rawUserAgent":"Mozilla/5.0 Chrome"},"geographicalContext":{"city":"Chicago","country":"United States","postalCode":60601,"geolocation":{"lat":41.88,"lon":-87.63}}},"authenticationContext":{"externalSessionId":"102abc","rootSessionId":"102abc"},"securityContext":{"asNumber":7922,"asOrg":"comcast","isProxy":false},"outcome":{"result":"SUCCESS"},"debugContext":{"debugData":{"dtHash":"dev-1"}},"version":"0"}"#;

    #[test]
    fn session_start_with_space_separated_time_fills_identity_network_and_session() {
        let ev = &normalize_one(LOGIN)[0];
        assert_eq!(ev.event_time, Ts::parse("2026-11-02T08:00:00Z").unwrap());
        assert_eq!(ev.category, Category::Login);
        assert_eq!(ev.outcome, Outcome::Success);
        assert_eq!(ev.principal.email.as_deref(), Some("alice@example.com"));
        assert_eq!(ev.principal.kind, PrincipalKind::Human);
        assert_eq!(ev.session.session_id.as_deref(), Some("102abc"));
        assert_eq!(ev.network.asn, Some(7922));
        assert_eq!(ev.network.device_id.as_deref(), Some("dev-1"));
        let g = ev.network.geo.as_ref().unwrap();
        assert_eq!((g.lat, g.city.as_deref()), (41.88, Some("Chicago")));
    }

    #[test]
    fn a_lockout_set_off_from_elsewhere_is_not_where_the_user_was() {
        let raw = r#"{"uuid":"e-9","published":"2026-11-02T08:00:00.000Z","eventType":"user.account.lock","actor":{"id":"00uceo","type":"User","alternateId":"ceo@example.com"},"client":{"ipAddress":"203.0.113.5","geographicalContext":{"city":"Lagos","geolocation":{"lat":6.45,"lon":3.39}}},"outcome":{"result":"SUCCESS"}}"#;
        let ev = &normalize_one(raw)[0];
        assert!(ev.location_untrusted);
    }

    #[test]
    fn refresh_grant_carries_the_token_id_from_its_target() {
        let raw = r#"{"uuid":"e-2","published":"2026-11-02T08:00:00.000Z","eventType":"app.oauth2.as.token.grant.refresh_token","actor":{"id":"0oa1","type":"PublicClientApp"},"client":{"id":"0oaclient"},"outcome":{"result":"SUCCESS"},"debugContext":{"debugData":{"grantType":"refresh_token"}},"target":[{"id":"rt.abc","type":"refresh_token"}]}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::TokenRefreshed);
        assert_eq!(ev.session.token_id.as_deref(), Some("rt.abc"));
        assert_eq!(ev.session.client_id.as_deref(), Some("0oaclient"));
        assert_eq!(ev.principal.kind, PrincipalKind::Service);
    }

    #[test]
    fn refresh_token_reuse_detection_is_a_failed_refresh() {
        let raw = r#"{"uuid":"e-3","published":"2026-11-02T08:00:00.000Z","eventType":"app.oauth2.as.token.detect_reuse","actor":{"id":"0oa1","type":"PublicClientApp"},"outcome":{"result":"FAILURE"},"target":[{"id":"rt.old","type":"refresh_token"}]}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::TokenRefreshed, Outcome::Failure)
        );
        assert_eq!(ev.session.token_id.as_deref(), Some("rt.old"));
    }

    #[test]
    fn session_end_and_failures_map_to_their_categories() {
        let raw = LOGIN
            .replace("user.session.start", "user.session.end")
            .replace("SUCCESS", "FAILURE");
        let ev = &normalize_one(&raw)[0];
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::SessionEnd, Outcome::Failure)
        );
    }

    /// Found by the outside review: `"NaN"` and `"inf"` written as strings passed the number reader and became a
    /// place that detector state could not be read back with.
    #[test]
    fn a_place_of_nan_or_infinity_is_no_place() {
        for (lat, lon) in [(r#""NaN""#, r#""inf""#), ("91.5", "10"), (r#""-inf""#, "3")] {
            let raw = LOGIN.replace(
                r#""lat":41.88,"lon":-87.63"#,
                &format!(r#""lat":{lat},"lon":{lon}"#),
            );
            let ev = &normalize_one(&raw)[0];
            assert!(
                ev.network.geo.is_none(),
                "{lat} {lon}: {:?}",
                ev.network.geo
            );
        }
    }

    /// Found by the outside review: a pipeline that writes every value as a string got Okta records dead-lettered
    /// over `asNumber` and `isProxy`.
    #[test]
    fn an_as_number_and_proxy_flag_written_as_strings_are_read() {
        let raw = LOGIN
            .replace(r#""asNumber":7922"#, r#""asNumber":"7922""#)
            .replace(r#""isProxy":false"#, r#""isProxy":"true""#);
        let ev = &normalize_one(&raw)[0];
        assert_eq!(
            (ev.network.asn, ev.network.is_proxy),
            (Some(7922), Some(true))
        );
    }
}
