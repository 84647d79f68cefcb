//! Kong Gateway `http-log` plugin JSON.
//!
//! In: one request log. Out: one session event (`GET`/`HEAD` → `data_read`, other methods → `data_write`).
//! Principal: `consumer` (username, custom id or id). Token id: the configured JSON path (default
//! `authenticated_entity.id`, the credential Kong authenticated), else a request header (default `x-token-id`).
//! Job: a request header (default `x-agent-job-id`). App: `service.name`; destination of writes: `service.host`.
//! State: none.
//!
//! Trust: Kong vouches for what it authenticated — the consumer and the credential (`authenticated_entity`). The
//! token and job headers are sent by the client: they are facts about the request, not identity, unless the
//! operator lists them in `gateway_set_headers` (a plugin that sets them after authentication). A request Kong
//! answered 401, 403 or 407 vouches for nothing.

use super::{lookup_path, parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;
use serde_json::value::RawValue;

pub const NAME: &str = "kong";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &["request", "response", "started_at", "upstream_uri"];

/// `[normalize.formats.kong]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KongConfig {
    /// Dot-separated JSON path of the token id. Default `"authenticated_entity.id"`.
    pub token_id_path: String,
    /// Request header with a token id, used when the path is absent. Default `"x-token-id"`.
    pub token_id_header: String,
    /// Request header naming the agent job. Default `"x-agent-job-id"`.
    pub job_id_header: String,
    /// What kind of principal a Kong consumer is. Default `"service"`.
    pub consumer_kind: PrincipalKind,
    /// Request headers that Kong itself sets after authentication (e.g. by a request-transformer plugin that
    /// overwrites any client value), so their token and job ids are vouched for. Default `[]`: the token and job
    /// headers are client-supplied.
    pub gateway_set_headers: Vec<String>,
}

impl Default for KongConfig {
    fn default() -> Self {
        KongConfig {
            token_id_path: "authenticated_entity.id".into(),
            token_id_header: "x-token-id".into(),
            job_id_header: "x-agent-job-id".into(),
            consumer_kind: PrincipalKind::Service,
            gateway_set_headers: Vec::new(),
        }
    }
}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let mut cfg: KongConfig = parse_config(NAME, t)?;
    if cfg.token_id_path.is_empty() || cfg.token_id_path.split('.').any(str::is_empty) {
        return Err(ConfigError::Invalid {
            key: "normalize.formats.kong.token_id_path".into(),
            value: cfg.token_id_path,
            why: "must be a dot-separated path like \"authenticated_entity.id\"".into(),
        });
    }
    cfg.token_id_header.make_ascii_lowercase();
    cfg.job_id_header.make_ascii_lowercase();
    for h in &mut cfg.gateway_set_headers {
        h.make_ascii_lowercase();
    }
    Ok(Box::new(Kong::new(cfg)))
}

pub struct Kong {
    cfg: KongConfig,
    hint: super::Needles,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    request: Req<'a>,
    #[serde(default)]
    response: Option<Resp>,
    #[serde(borrow, default)]
    client_ip: Option<Text<'a>>,
    /// Epoch milliseconds as Kong writes it; any epoch unit or a timestamp string as pipelines rewrite it.
    #[serde(default, deserialize_with = "super::lenient_time")]
    started_at: Option<Ts>,
    #[serde(borrow, default)]
    service: Option<Service<'a>>,
    #[serde(borrow, default)]
    route: Option<Named<'a>>,
    #[serde(borrow, default)]
    consumer: Option<Consumer<'a>>,
    #[serde(borrow, default)]
    authenticated_entity: Option<Named<'a>>,
}

#[derive(Deserialize)]
struct Req<'a> {
    #[serde(borrow)]
    method: Text<'a>,
    #[serde(borrow, default)]
    uri: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    size: Option<u64>,
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    headers: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Resp {
    #[serde(default, deserialize_with = "super::lenient_num")]
    status: Option<u16>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct Service<'a> {
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    host: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Consumer<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    username: Option<Text<'a>>,
    #[serde(borrow, default)]
    custom_id: Option<Text<'a>>,
}

/// The few request headers Quench reads, picked out of the header object in one pass without building a map.
/// Kong logs repeated headers as arrays; the first value counts.
const REQUEST_ID: usize = 0;
const KONG_REQUEST_ID: usize = 1;
const USER_AGENT: usize = 2;
const TOKEN: usize = 3;
const JOB: usize = 4;

struct Wanted<'n> {
    names: [&'n str; 5],
}

impl<'de, 'n> serde::de::DeserializeSeed<'de> for Wanted<'n> {
    type Value = [Option<Text<'de>>; 5];
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, 'n> serde::de::Visitor<'de> for Wanted<'n> {
    type Value = [Option<Text<'de>>; 5];
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of request headers")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: [Option<Text<'de>>; 5] = Default::default();
        while let Some(k) = map.next_key::<Text<'de>>()? {
            match self.names.iter().position(|n| k.eq_ignore_ascii_case(n)) {
                Some(i) if out[i].is_none() => out[i] = map.next_value::<FirstText<'de>>()?.0,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// A header's value: a string, or the first string of an array (a repeated header); anything else is none. Read
/// without buffering the value (as an untagged enum would) or collecting the array.
struct FirstText<'a>(Option<Text<'a>>);

impl<'de> Deserialize<'de> for FirstText<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FirstText<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a header value")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(FirstText(Some(Text::Borrowed(v))))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FirstText(Some(Text::Owned(v.into()))))
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut s: S,
            ) -> Result<Self::Value, S::Error> {
                let first = s.next_element::<FirstText<'de>>()?.and_then(|t| t.0);
                while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(FirstText(first))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Self::Value, M::Error> {
                while m
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(FirstText(None))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(FirstText(None))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(FirstText(None))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(FirstText(None))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(FirstText(None))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(FirstText(None))
            }
        }
        d.deserialize_any(V)
    }
}

impl Kong {
    fn new(cfg: KongConfig) -> Kong {
        Kong {
            cfg,
            hint: super::Needles::new(&["\"started_at\"", "\"upstream_uri\""]),
        }
    }

    fn headers<'a>(&self, raw: Option<&'a RawValue>) -> [Option<Text<'a>>; 5] {
        let wanted = Wanted {
            names: [
                "x-request-id",
                "x-kong-request-id",
                "user-agent",
                &self.cfg.token_id_header,
                &self.cfg.job_id_header,
            ],
        };
        let Some(raw) = raw else {
            return Default::default();
        };
        let mut de = serde_json::Deserializer::from_str(raw.get());
        serde::de::DeserializeSeed::deserialize(wanted, &mut de).unwrap_or_default()
    }
}

impl Normalizer for Kong {
    fn hint(&self, raw: &str) -> bool {
        self.hint.all_in(raw)
    }

    fn sniff(&self, p: &Probe) -> bool {
        p.has("request") && p.has("response") && (p.has("started_at") || p.has("upstream_uri"))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let r: Raw<'a> = super::parse_json(NAME, raw)?;
        let time = r
            .started_at
            .ok_or_else(|| NormalizeError::invalid(NAME, "missing or unparsable started_at"))?;
        let write = !matches!(r.request.method.as_str(), "GET" | "HEAD" | "OPTIONS");
        let cat = if write {
            Category::DataWrite
        } else {
            Category::DataRead
        };
        let src = SourceInfo {
            family: Family::Gateway,
            vendor: "kong".into(),
            format: NAME.into(),
        };
        let mut headers = self.headers(r.request.headers);
        let set_by_gateway = |h: &str| self.cfg.gateway_set_headers.iter().any(|g| g == h);
        // Kong's own request id, or a request-id header only when the gateway sets it: a client chooses its own
        // headers, and an id it chooses must not decide which events count as duplicates
        let id = r
            .request
            .id
            .or_else(|| {
                set_by_gateway("x-kong-request-id")
                    .then(|| headers[KONG_REQUEST_ID].take())
                    .flatten()
            })
            .or_else(|| {
                set_by_gateway("x-request-id")
                    .then(|| headers[REQUEST_ID].take())
                    .flatten()
            })
            .unwrap_or_else(|| super::fallback_id(ctx, 0));
        let mut ev = SessionEvent::new(src, id, time, cat);
        ev.outcome = match r.response.as_ref().and_then(|s| s.status) {
            Some(s) if s < 400 => Outcome::Success,
            Some(_) => Outcome::Failure,
            None => Outcome::Unknown,
        };
        ev.action = Some(r.request.method);
        ev.network.ip = r.client_ip;
        ev.network.user_agent = headers[USER_AGENT].take();
        let status = r.response.as_ref().and_then(|s| s.status);
        let refused = matches!(status, Some(401 | 403 | 407));
        if let Some(c) = r.consumer {
            ev.principal.id = c.username.or(c.custom_id).or(c.id);
            ev.principal.kind = self.cfg.consumer_kind;
            if ev.principal.id.is_some() {
                ev.principal.vouched_by = Some(Vouch {
                    vendor: "kong".into(),
                    family: Family::Gateway,
                });
            }
        }
        let authenticated = if self.cfg.token_id_path == "authenticated_entity.id" {
            r.authenticated_entity.and_then(|e| e.id)
        } else {
            lookup_path(raw, &self.cfg.token_id_path)
        };
        if authenticated.is_some() {
            ev.session.token_id = authenticated;
            ev.session.vouched = ev.session.vouched.with(Keys::TOKEN);
        } else if let Some(t) = headers[TOKEN].take() {
            ev.session.token_id = Some(t);
            if set_by_gateway(&self.cfg.token_id_header) {
                ev.session.vouched = ev.session.vouched.with(Keys::TOKEN);
            }
        }
        ev.session.job_id = headers[JOB].take();
        if ev.session.job_id.is_some() && set_by_gateway(&self.cfg.job_id_header) {
            ev.session.vouched = ev.session.vouched.with(Keys::JOB);
        }
        if refused {
            ev.unvouch_all();
        }
        if let Some(s) = r.service {
            ev.resource.app = s.name;
            if write {
                ev.resource.destination = s.host;
            }
        }
        ev.resource.object_type = r.route.and_then(|r| r.name.or(r.id));
        ev.resource.object_id = r.request.uri;
        ev.resource.bytes = if write {
            r.request.size
        } else {
            r.response.and_then(|s| s.size)
        };
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Provenance;
    use crate::normalize::testutil::normalize_one;

    const LOG: &str = r#"{"request":{"method":"GET","uri":"/v1/invoices?page=2","size":120,"headers":{"user-agent":"sync/1.2","x-token-id":"hdr-tok","x-agent-job-id":"job-7"}},"upstream_uri":"/v1/invoices","response":{"status":200,"size":5120},"client_ip":"10.0.0.9","started_at":1793606400000,"service":{"name":"billing-api","host":"billing.internal"},"route":{"name":"invoices"},"consumer":{"id":"c-1","username":"crm-sync"},"authenticated_entity":{"id":"cred-42"}}"#;

    #[test]
    fn http_log_fills_principal_token_job_and_resource() {
        let ev = &normalize_one(LOG)[0];
        assert_eq!(ev.category, Category::DataRead);
        assert_eq!(ev.principal.id.as_deref(), Some("crm-sync"));
        assert_eq!(ev.session.token_id.as_deref(), Some("cred-42"));
        assert_eq!(ev.session.job_id.as_deref(), Some("job-7"));
        assert_eq!(ev.resource.app.as_deref(), Some("billing-api"));
        assert_eq!(ev.resource.bytes, Some(5120));
        assert_eq!(ev.network.user_agent.as_deref(), Some("sync/1.2"));
        assert_eq!(ev.event_time, Ts(1793606400000));
    }

    /// Found by an outside review: a request id the client chose became the event id, so bursts sharing one
    /// header and one millisecond were dropped as duplicates and a scraper's rate went unseen.
    #[test]
    fn a_client_chosen_request_id_is_not_the_event_id() {
        let line = LOG.replace(
            r#""x-token-id":"hdr-tok""#,
            r#""x-token-id":"hdr-tok","x-request-id":"r-1","x-kong-request-id":"r-1""#,
        );
        let ev = &normalize_one(&line)[0];
        assert_ne!(ev.event_id.as_str(), "r-1");
        // a header the gateway sets itself is Kong's word
        let mut k = Kong::new(KongConfig::default());
        k.cfg.gateway_set_headers = vec!["x-kong-request-id".into()];
        let ctx = crate::normalize::Context::new(crate::event::Provenance::None, Ts(0));
        let mut out = Vec::new();
        k.normalize(&line, &ctx, &mut out).unwrap();
        assert_eq!(out[0].event_id.as_str(), "r-1");
    }

    #[test]
    fn kong_vouches_for_the_consumer_and_credential_it_authenticated_not_for_client_headers() {
        let ev = &normalize_one(LOG)[0];
        assert_eq!(
            ev.principal.vouched_by.as_ref().map(|v| v.vendor.as_str()),
            Some("kong")
        );
        assert!(
            ev.vouches(Keys::TOKEN),
            "authenticated_entity is Kong's own"
        );
        assert!(
            !ev.vouches(Keys::JOB),
            "x-agent-job-id came from the client"
        );
        let anonymous = LOG
            .replace(r#","consumer":{"id":"c-1","username":"crm-sync"}"#, "")
            .replace(r#","authenticated_entity":{"id":"cred-42"}"#, "");
        let ev = &normalize_one(&anonymous)[0];
        assert_eq!(ev.session.token_id.as_deref(), Some("hdr-tok"));
        assert!(ev.principal.vouched_by.is_none());
        assert!(!ev.vouches(Keys::TOKEN) && !ev.vouches(Keys::JOB));
    }

    #[test]
    fn a_request_kong_refused_vouches_for_nothing() {
        let raw = LOG.replace(r#""status":200"#, r#""status":401"#);
        let ev = &normalize_one(&raw)[0];
        assert_eq!(ev.outcome, Outcome::Failure);
        assert!(ev.principal.vouched_by.is_none());
        assert!(ev.session.vouched.is_empty());
    }

    #[test]
    fn headers_the_operator_marks_as_set_by_kong_are_vouched_for() {
        let k =
            build(toml::from_str(r#"gateway_set_headers = ["X-Agent-Job-Id"]"#).unwrap()).unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        k.normalize(LOG, &ctx, &mut out).unwrap();
        assert!(out[0].vouches(Keys::JOB));
    }

    #[test]
    fn token_falls_back_to_the_header_and_writes_get_a_destination() {
        let raw = LOG
            .replace(r#","authenticated_entity":{"id":"cred-42"}"#, "")
            .replace("\"GET\"", "\"POST\"");
        let ev = &normalize_one(&raw)[0];
        assert_eq!(ev.session.token_id.as_deref(), Some("hdr-tok"));
        assert_eq!(ev.category, Category::DataWrite);
        assert_eq!(ev.resource.destination.as_deref(), Some("billing.internal"));
        assert_eq!(ev.resource.bytes, Some(120));
    }

    #[test]
    fn configured_token_path_and_array_headers() {
        let mut t = toml::Table::new();
        t.insert(
            "token_id_path".into(),
            toml::Value::String("consumer.custom_id".into()),
        );
        let k = build(t).unwrap();
        let raw = LOG
            .replace(r#""username":"crm-sync""#, r#""custom_id":"tok-from-path""#)
            .replace(
                r#""x-agent-job-id":"job-7""#,
                r#""x-agent-job-id":["job-8","job-9"]"#,
            );
        let ctx = Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        k.normalize(&raw, &ctx, &mut out).unwrap();
        assert_eq!(out[0].session.token_id.as_deref(), Some("tok-from-path"));
        assert_eq!(out[0].session.job_id.as_deref(), Some("job-8"));
    }

    #[test]
    fn an_empty_token_path_is_rejected_naming_the_key() {
        let mut t = toml::Table::new();
        t.insert("token_id_path".into(), toml::Value::String("a..b".into()));
        let e = build(t).err().unwrap().to_string();
        assert!(
            e.contains("normalize.formats.kong.token_id_path") && e.contains("a..b"),
            "{e}"
        );
    }
}
