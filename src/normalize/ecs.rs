//! ECS documents that carry only parsed fields: what Elastic Agent, Filebeat or Logstash write when the raw vendor
//! record was not kept (`event.original` and `message` absent or dropped by the pipeline).
//!
//! In: one ECS document. Out: one event. State: none.
//!
//! A document that still holds its vendor record is read through that record instead (see `envelope`): this reader
//! is tried only after the document failed as an envelope, so the richer vendor parse always wins. Fields: time
//! `@timestamp`; id `event.id`; action `event.action`; category from `event.category` and `event.type`
//! (authentication start → login, session end → session end, iam changes → admin change, file and web access →
//! data read, creation/change/deletion → data write), else from `http.request.method`; outcome `event.outcome`;
//! principal `user.email` / `user.name` / `user.id`; address `source.ip`, else `client.ip`; place
//! `source.geo.location` (else the country and city alone); ASN `source.as`; user agent `user_agent.original`;
//! object `file.name`, `url.path`, else `url.original`; server `destination.domain`, else `url.domain`;
//! destination `destination.ip`; bytes `http.response.bytes`; app `event.dataset`.
//!
//! Trust: the fields are what some pipeline parsed, not what the vendor wrote, so nothing in them is vouched for
//! (a topic pinned to `ecs` or a trusted envelope does not change that).

use super::{parse_config, ConfigError, Context, Loose, NormalizeError, Normalizer};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "ecs";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &[];

/// `[normalize.formats.ecs]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EcsConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: EcsConfig = parse_config(NAME, t)?;
    Ok(Box::new(Ecs))
}

pub struct Ecs;

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(borrow, rename = "@timestamp")]
    timestamp: Loose<'a>,
    #[serde(borrow)]
    event: Event<'a>,
    #[serde(borrow, default)]
    user: Option<User<'a>>,
    #[serde(borrow, default)]
    source: Option<Endpoint<'a>>,
    #[serde(borrow, default)]
    client: Option<Endpoint<'a>>,
    #[serde(borrow, default)]
    destination: Option<Endpoint<'a>>,
    #[serde(borrow, default)]
    user_agent: Option<UserAgent<'a>>,
    #[serde(borrow, default)]
    url: Option<Url<'a>>,
    #[serde(borrow, default)]
    http: Option<Http<'a>>,
    #[serde(borrow, default)]
    file: Option<File<'a>>,
}

#[derive(Deserialize, Default)]
struct Event<'a> {
    #[serde(borrow, default)]
    id: Loose<'a>,
    #[serde(borrow, default)]
    action: Loose<'a>,
    #[serde(borrow, default)]
    category: OneOrMany<'a>,
    #[serde(borrow, default, rename = "type")]
    kind: OneOrMany<'a>,
    #[serde(borrow, default)]
    outcome: Loose<'a>,
    #[serde(borrow, default)]
    dataset: Loose<'a>,
}

/// ECS keyword arrays (`event.category`) that some pipelines flatten to one string.
#[derive(Default)]
struct OneOrMany<'a>(Vec<Text<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for OneOrMany<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<'a> {
            #[serde(borrow)]
            One(Text<'a>),
            #[serde(borrow)]
            Many(Vec<Text<'a>>),
            Other(serde::de::IgnoredAny),
        }
        Ok(match Either::deserialize(d)? {
            Either::One(t) => OneOrMany(vec![t]),
            Either::Many(v) => OneOrMany(v),
            Either::Other(_) => OneOrMany(Vec::new()),
        })
    }
}

#[derive(Deserialize)]
struct User<'a> {
    #[serde(borrow, default)]
    email: Loose<'a>,
    #[serde(borrow, default)]
    name: Loose<'a>,
    #[serde(borrow, default)]
    id: Loose<'a>,
    #[serde(borrow, default)]
    full_name: Loose<'a>,
}

#[derive(Deserialize)]
struct Endpoint<'a> {
    #[serde(borrow, default)]
    ip: Loose<'a>,
    #[serde(borrow, default)]
    domain: Loose<'a>,
    #[serde(borrow, default)]
    geo: Option<GeoDoc<'a>>,
    #[serde(borrow, default, rename = "as")]
    asys: Option<AsDoc<'a>>,
}

#[derive(Deserialize)]
struct GeoDoc<'a> {
    #[serde(default)]
    location: Option<Location>,
    #[serde(borrow, default)]
    country_iso_code: Loose<'a>,
    #[serde(borrow, default)]
    city_name: Loose<'a>,
}

#[derive(Deserialize)]
struct Location {
    lat: f64,
    lon: f64,
}

#[derive(Deserialize)]
struct AsDoc<'a> {
    #[serde(borrow, default)]
    number: Loose<'a>,
    #[serde(borrow, default)]
    organization: Option<Org<'a>>,
}

#[derive(Deserialize)]
struct Org<'a> {
    #[serde(borrow, default)]
    name: Loose<'a>,
}

#[derive(Deserialize)]
struct UserAgent<'a> {
    #[serde(borrow, default)]
    original: Loose<'a>,
}

#[derive(Deserialize)]
struct Url<'a> {
    #[serde(borrow, default)]
    path: Loose<'a>,
    #[serde(borrow, default)]
    original: Loose<'a>,
    #[serde(borrow, default)]
    domain: Loose<'a>,
}

#[derive(Deserialize)]
struct Http<'a> {
    #[serde(borrow, default)]
    request: Option<HttpRequest<'a>>,
    #[serde(default)]
    response: Option<HttpResponse>,
}

#[derive(Deserialize)]
struct File<'a> {
    #[serde(borrow, default)]
    name: Loose<'a>,
}

#[derive(Deserialize)]
struct HttpRequest<'a> {
    #[serde(borrow, default)]
    method: Loose<'a>,
}

#[derive(Deserialize)]
struct HttpResponse {
    #[serde(default, deserialize_with = "super::lenient_num")]
    bytes: Option<u64>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    status_code: Option<u16>,
}

fn category(cats: &[Text<'_>], types: &[Text<'_>], method: Option<&str>) -> Category {
    let has = |v: &[Text<'_>], w: &str| v.iter().any(|t| t.eq_ignore_ascii_case(w));
    if has(cats, "authentication") || has(cats, "session") {
        if has(types, "end") {
            return Category::SessionEnd;
        }
        if has(types, "start") || has(types, "info") || has(cats, "authentication") {
            return Category::Login;
        }
    }
    if has(cats, "iam") || has(cats, "configuration") {
        return Category::AdminChange;
    }
    let writes = has(types, "creation") || has(types, "change") || has(types, "deletion");
    if has(cats, "file") || has(cats, "database") {
        return if writes {
            Category::DataWrite
        } else {
            Category::DataRead
        };
    }
    match method {
        Some(m) if m.eq_ignore_ascii_case("GET") || m.eq_ignore_ascii_case("HEAD") => {
            Category::DataRead
        }
        Some(_) => Category::DataWrite,
        None if writes => Category::DataWrite,
        None if has(types, "access") => Category::DataRead,
        None => Category::Other,
    }
}

/// A document with ECS's `@timestamp` and an `event` object: what the fallback after envelopes reads.
pub(crate) fn looks_like(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "@timestamp")]
        _timestamp: serde::de::IgnoredAny,
        #[serde(borrow)]
        event: &'a serde_json::value::RawValue,
    }
    text.contains("\"@timestamp\"")
        && serde_json::from_str::<Probe>(text)
            .is_ok_and(|p| p.event.get().trim_start().starts_with('{'))
}

fn some(l: Loose<'_>) -> Option<Text<'_>> {
    l.non_empty()
}

impl Normalizer for Ecs {
    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let d: Doc<'a> = super::parse_json(NAME, raw)?;
        let time = d
            .timestamp
            .0
            .as_deref()
            .and_then(super::ms_or_timestamp)
            .ok_or_else(|| NormalizeError::invalid(NAME, "no parsable @timestamp"))?;
        let method = d
            .http
            .as_ref()
            .and_then(|h| h.request.as_ref())
            .and_then(|r| r.method.0.clone());
        let cat = category(&d.event.category.0, &d.event.kind.0, method.as_deref());
        let src = SourceInfo {
            family: Family::Saas,
            vendor: "ecs".into(),
            format: NAME.into(),
        };
        let id = some(d.event.id).unwrap_or_else(|| super::fallback_id(ctx, 0));
        let mut ev = SessionEvent::new(src, id, time, cat);
        let status = d
            .http
            .as_ref()
            .and_then(|h| h.response.as_ref())
            .and_then(|r| r.status_code);
        ev.outcome = match d.event.outcome.0.as_deref() {
            Some("success") => Outcome::Success,
            Some("failure") => Outcome::Failure,
            _ => match status {
                Some(s) if s >= 400 => Outcome::Failure,
                Some(_) => Outcome::Success,
                None => Outcome::Unknown,
            },
        };
        if let Some(u) = d.user {
            let email = some(u.email);
            let name = some(u.name);
            ev.principal.email = email
                .clone()
                .or_else(|| name.clone().filter(|n| n.contains('@')));
            ev.principal.id = some(u.id).or(name.clone()).or(email);
            ev.principal.display_name = some(u.full_name).or(name);
            ev.principal.kind = PrincipalKind::Human;
        }
        let from = d.source.or(d.client);
        if let Some(s) = from {
            ev.network.ip = some(s.ip).filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
            if let Some(g) = s.geo {
                match g.location {
                    Some(l)
                        if (-90.0..=90.0).contains(&l.lat) && (-180.0..=180.0).contains(&l.lon) =>
                    {
                        ev.network.geo = Some(Geo {
                            lat: l.lat,
                            lon: l.lon,
                            city: some(g.city_name),
                            country: some(g.country_iso_code),
                            accuracy_radius_km: None,
                        })
                    }
                    _ => {
                        ev.network.country = some(g.country_iso_code);
                        ev.network.city = some(g.city_name);
                    }
                }
            }
            if let Some(a) = s.asys {
                ev.network.asn = a.number.0.and_then(|n| n.parse().ok());
                ev.network.as_org = a.organization.and_then(|o| some(o.name));
            }
        }
        ev.network.user_agent = d.user_agent.and_then(|u| some(u.original));
        let url = d.url;
        ev.resource.object_id = d
            .file
            .and_then(|f| some(f.name))
            .or_else(|| url.as_ref().and_then(|u| some(Loose(u.path.0.clone()))))
            .or_else(|| url.as_ref().and_then(|u| some(Loose(u.original.0.clone()))));
        let dest = d.destination;
        ev.resource.server = dest
            .as_ref()
            .and_then(|x| some(Loose(x.domain.0.clone())))
            .or_else(|| url.and_then(|u| some(u.domain)));
        ev.resource.destination = dest.and_then(|x| some(x.ip));
        ev.resource.bytes = d.http.and_then(|h| h.response).and_then(|r| r.bytes);
        ev.resource.app = some(d.event.dataset);
        ev.action = some(d.event.action).or(method);
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str) -> Result<Vec<String>, crate::normalize::NormalizeError> {
        let n = crate::normalize::Normalize::new(&Default::default()).unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        let mut inner = crate::normalize::Envelopes::default();
        let f = n.normalize_enveloped(raw.as_bytes(), None, &ctx, &mut out, &mut inner)?;
        Ok(out
            .iter()
            .map(|e| {
                format!(
                    "{f} {:?} {:?} {:?} {} {:?} {:?} {}",
                    e.category,
                    e.outcome,
                    e.principal.key(),
                    e.event_time.to_rfc3339(),
                    e.network.ip.as_deref(),
                    e.network.user_agent.as_deref(),
                    e.principal.vouched_by.is_some()
                )
            })
            .collect())
    }

    #[test]
    fn a_parsed_only_sign_in_is_read_from_its_ecs_fields_and_vouches_for_nobody() {
        let raw = r#"{"@timestamp":"2026-11-02T08:00:00.000Z","ecs":{"version":"8.11.0"},"event":{"kind":"event","category":["authentication"],"type":["start"],"action":"user.session.start","outcome":"success","dataset":"okta.system","id":"e-1"},"user":{"name":"alice","email":"alice@example.com","id":"00u1"},"source":{"ip":"198.51.100.7","geo":{"location":{"lat":41.88,"lon":-87.63},"country_iso_code":"US","city_name":"Chicago"},"as":{"number":7922,"organization":{"name":"Comcast"}}},"user_agent":{"original":"Mozilla/5.0 Chrome/130"}}"#;
        assert_eq!(
            read(raw).unwrap(),
            vec![
                r#"ecs Login Success Some("alice@example.com") 2026-11-02T08:00:00.000Z Some("198.51.100.7") Some("Mozilla/5.0 Chrome/130") false"#
            ]
        );
    }

    #[test]
    fn a_document_that_kept_its_vendor_record_is_read_through_the_record() {
        let okta = r#"{"uuid":"u-1","published":"2026-11-02T08:00:00.000Z","eventType":"user.session.start","actor":{"id":"00u1","type":"User","alternateId":"alice@example.com"},"client":{"ipAddress":"198.51.100.7"},"outcome":{"result":"SUCCESS"}}"#;
        let raw = format!(
            r#"{{"@timestamp":"2026-11-02T08:00:01Z","event":{{"category":["authentication"],"type":["start"],"original":{}}},"user":{{"name":"someone-else"}}}}"#,
            serde_json::to_string(okta).unwrap()
        );
        let got = read(&raw).unwrap();
        assert!(got[0].starts_with("okta Login"), "{got:?}");
        assert!(got[0].contains("alice@example.com"), "{got:?}");
    }

    #[test]
    fn a_gateway_access_is_a_read_or_write_by_method_and_fails_from_status_400() {
        let raw = r#"{"@timestamp":"2026-11-02T08:00:00Z","event":{"category":"web","type":"access","dataset":"nginx.access"},"source":{"ip":"203.0.113.5","geo":{"country_iso_code":"DE"}},"http":{"request":{"method":"POST"},"response":{"status_code":"403","bytes":512}},"url":{"path":"/api/export","domain":"api.example.com"}}"#;
        let got = read(raw).unwrap();
        assert!(got[0].starts_with("ecs DataWrite Failure None"), "{got:?}");
    }

    #[test]
    fn an_ecs_document_without_a_time_is_rejected_naming_it() {
        let raw =
            r#"{"@timestamp":"soon","event":{"category":["authentication"]},"user":{"name":"a"}}"#;
        let e = read(raw).unwrap_err().to_string();
        assert!(e.contains("@timestamp"), "{e}");
    }
}
