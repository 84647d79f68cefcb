//! Declarative mappings: an in-house or unsupported JSON format described in a TOML file
//! (`schemas/mappings/*.toml` ship built in; `normalize.mappings_dir` adds more) becomes a format without
//! recompiling.
//!
//! In: one JSON object. Out: one session event whose fields are read from JSON paths (dot-separated), with type
//! conversion (numbers, timestamps in a strftime format or epoch units), constants and values to ignore.
//! Auto-detection: every key in `detect` is a top-level key of the message. State: none.
//!
//! ```toml
//! name = "aws_apigateway"           # format name (unique)
//! family = "gateway"                # idp | saas | gateway | agent
//! vendor = "aws"
//! detect = ["requestId", "httpMethod", "requestTime"]
//! principal_kind = "service"        # default "unknown"
//! category = { path = "httpMethod", map = { GET = "data_read", "*" = "data_write" } }   # or category = "api_request"
//! [fields]
//! event_id = "requestId"                                            # a path
//! event_time = { path = "requestTime", time_format = "%d/%b/%Y:%H:%M:%S %z" }
//! "principal.id" = { path = "user", ignore = ["-"] }
//! "resource.app" = { const = "orders" }
//! http_status = "status"                                            # outcome: < 400 is success
//! ```
//!
//! Trust: a gateway's log vouches for an identity only where the gateway itself authenticated it. A mapping lists
//! those target fields in `authenticated` (e.g. `["principal.id"]` for AWS's `$context.authorizer.principalId`);
//! every other identity field (a Basic user name, an `X-User` or `X-Token-Id` header) is client-supplied and
//! vouches for nothing. A request answered 401, 403 or 407 vouches for nothing either.

use super::{ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The mappings shipped in `schemas/mappings/`.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "schemas/mappings/aws_apigateway.toml",
        include_str!("../../schemas/mappings/aws_apigateway.toml"),
    ),
    (
        "schemas/mappings/envoy_json.toml",
        include_str!("../../schemas/mappings/envoy_json.toml"),
    ),
    (
        "schemas/mappings/nginx_json.toml",
        include_str!("../../schemas/mappings/nginx_json.toml"),
    ),
];

/// A mapping file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// Format name; must not clash with another format. Required.
    pub name: String,
    /// Source family. Required.
    pub family: Family,
    /// Vendor label. Required.
    pub vendor: String,
    /// Top-level keys that must all be present for auto-detection. Required, at least one.
    pub detect: Vec<String>,
    /// The category: a constant, or a field's value looked up in a table (`"*"` is the fallback). Required.
    pub category: CategorySpec,
    /// Kind of the principal. Default `"unknown"`.
    #[serde(default)]
    pub principal_kind: PrincipalKind,
    /// Target field → where its value comes from. Targets: see [`TARGETS`].
    pub fields: BTreeMap<String, FieldSpec>,
    /// Identity fields the source sets only after authenticating the caller, so they are vouched for: any of
    /// `principal.id`, `principal.email`, `session.token_id`, `session.session_id`, `session.job_id`,
    /// `session.client_id`. Default `[]`: nothing in the log is more than the client's word.
    #[serde(default)]
    pub authenticated: Vec<String>,
}

/// The identity fields a mapping may declare `authenticated`.
const AUTHENTICABLE: [&str; 6] = [
    "principal.id",
    "principal.email",
    "session.token_id",
    "session.session_id",
    "session.job_id",
    "session.client_id",
];

/// How the category is found.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CategorySpec {
    Const(Category),
    Lookup {
        path: String,
        map: BTreeMap<String, Category>,
    },
}

/// Where a field's value comes from.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FieldSpec {
    Path(String),
    Full(FieldTable),
}

/// The long form of a field.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FieldTable {
    /// Dot-separated JSON path.
    #[serde(default)]
    pub path: Option<String>,
    /// A constant instead of a path.
    #[serde(default, rename = "const")]
    pub constant: Option<String>,
    /// Values that mean "absent" (e.g. `"-"`). Default [].
    #[serde(default)]
    pub ignore: Vec<String>,
    /// strftime format of a timestamp (with `%z` for an offset; without, UTC). Default: RFC 3339 and the
    /// common forms Quench knows.
    #[serde(default)]
    pub time_format: Option<String>,
    /// Unit of a numeric timestamp: `s`, `ms`, `us`, `ns`. Default: told apart by magnitude (up to 11 integer
    /// digits seconds, 12-14 milliseconds, 15-17 microseconds, more nanoseconds), as pipelines rewrite units.
    #[serde(default)]
    pub time_unit: Option<String>,
}

/// Every target a mapping may fill.
pub const TARGETS: &[&str] = &[
    "event_id",
    "event_time",
    "action",
    "http_status",
    "principal.id",
    "principal.email",
    "principal.display_name",
    "session.token_id",
    "session.session_id",
    "session.root_session_id",
    "session.job_id",
    "session.client_id",
    "network.ip",
    "network.user_agent",
    "network.device_id",
    "network.asn",
    "network.as_org",
    "network.geo.lat",
    "network.geo.lon",
    "network.geo.city",
    "network.geo.country",
    "resource.app",
    "resource.object_type",
    "resource.object_id",
    "resource.destination",
    "resource.domain",
    "resource.bytes",
    "resource.records",
];

enum Source {
    Path(Vec<String>),
    Const(Arc<str>),
}

struct Field {
    target: usize,
    source: Source,
    ignore: Vec<String>,
    time_format: Option<String>,
    time_unit_ms: f64,
}

enum Cat {
    Const(Category),
    Lookup(Vec<String>, BTreeMap<String, Category>),
}

/// A compiled mapping.
pub struct Mapping {
    name: &'static str,
    family: Family,
    vendor: Arc<str>,
    detect: Vec<String>,
    category: Cat,
    kind: PrincipalKind,
    fields: Vec<Field>,
    /// Whether the principal, and which keys, the source vouches for when present.
    vouch_principal: bool,
    vouch_keys: Keys,
}

fn invalid(file: &str, key: &str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: format!("{file}: {key}"),
        value: value.into(),
        why: why.into(),
    }
}

fn split_path(file: &str, key: &str, p: &str) -> Result<Vec<String>, ConfigError> {
    if p.is_empty() || p.split('.').any(str::is_empty) {
        return Err(invalid(
            file,
            key,
            p,
            "a path is dot-separated keys, like \"identity.sourceIp\"",
        ));
    }
    Ok(p.split('.').map(String::from).collect())
}

impl Mapping {
    /// Parse and check a mapping file; `file` names it in errors.
    pub fn compile(file: &str, text: &str) -> Result<Mapping, ConfigError> {
        let m: MappingFile =
            toml::from_str(text).map_err(|e| invalid(file, "(file)", "", e.to_string()))?;
        if m.detect.is_empty() {
            return Err(invalid(
                file,
                "detect",
                "[]",
                "list at least one top-level key that identifies the format",
            ));
        }
        let category = match m.category {
            CategorySpec::Const(c) => Cat::Const(c),
            CategorySpec::Lookup { path, map } => {
                Cat::Lookup(split_path(file, "category.path", &path)?, map)
            }
        };
        let mut fields = Vec::new();
        for (key, spec) in m.fields {
            let target = TARGETS.iter().position(|t| *t == key).ok_or_else(|| {
                invalid(
                    file,
                    "fields",
                    &key,
                    format!("allowed targets: {}", TARGETS.join(", ")),
                )
            })?;
            let t = match spec {
                FieldSpec::Path(p) => FieldTable {
                    path: Some(p),
                    ..Default::default()
                },
                FieldSpec::Full(t) => t,
            };
            let source = match (t.path, t.constant) {
                (Some(p), None) => Source::Path(split_path(file, &key, &p)?),
                (None, Some(c)) => Source::Const(Arc::from(c.as_str())),
                _ => return Err(invalid(file, &key, "", "give exactly one of path or const")),
            };
            let time_unit_ms = match t.time_unit.as_deref() {
                None => 0.0, // by magnitude
                Some("ms") => 1.0,
                Some("s") => 1000.0,
                Some("us") => 0.001,
                Some("ns") => 0.000_001,
                Some(u) => return Err(invalid(file, &key, u, "time_unit is one of s, ms, us, ns")),
            };
            fields.push(Field {
                target,
                source,
                ignore: t.ignore,
                time_format: t.time_format,
                time_unit_ms,
            });
        }
        for required in ["event_time"] {
            if !fields.iter().any(|f| TARGETS[f.target] == required) {
                return Err(invalid(
                    file,
                    "fields",
                    required,
                    "every mapping needs an event_time",
                ));
            }
        }
        let mut vouch_principal = false;
        let mut vouch_keys = Keys::default();
        for a in &m.authenticated {
            match a.as_str() {
                "principal.id" | "principal.email" => vouch_principal = true,
                "session.token_id" => vouch_keys = vouch_keys.with(Keys::TOKEN),
                "session.session_id" => vouch_keys = vouch_keys.with(Keys::SESSION),
                "session.job_id" => vouch_keys = vouch_keys.with(Keys::JOB),
                "session.client_id" => vouch_keys = vouch_keys.with(Keys::CLIENT),
                other => {
                    return Err(invalid(
                        file,
                        "authenticated",
                        other,
                        format!("allowed: {}", AUTHENTICABLE.join(", ")),
                    ))
                }
            }
        }
        Ok(Mapping {
            vouch_principal,
            vouch_keys,
            name: Box::leak(m.name.into_boxed_str()),
            family: m.family,
            vendor: Arc::from(m.vendor.as_str()),
            detect: m.detect,
            category,
            kind: m.principal_kind,
            fields,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// The value at a path: strings and numbers as text; anything else is absent.
fn lookup<'a>(top: &HashMap<Text<'a>, &'a RawValue>, path: &[String]) -> Option<Text<'a>> {
    let (first, rest) = path.split_first()?;
    let mut cur: &'a RawValue = top.get(first.as_str())?;
    for seg in rest {
        let map: HashMap<Text<'a>, &'a RawValue> = serde_json::from_str(cur.get()).ok()?;
        cur = map.get(seg.as_str())?;
    }
    serde_json::from_str::<Text<'a>>(cur.get()).ok()
}

/// The mapping's own time format first; then, as a pipeline may have rewritten the time on the way (ISO,
/// space-separated, epoch in another unit), every form Quench reads.
fn parse_time(v: &str, f: &Field) -> Option<Ts> {
    if let Some(fmt) = &f.time_format {
        if let Ok(t) = chrono::DateTime::parse_from_str(v, fmt) {
            return Some(Ts(t.timestamp_millis()));
        }
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, fmt) {
            return Some(Ts(t.and_utc().timestamp_millis()));
        }
    }
    if f.time_unit_ms > 0.0 {
        if let Ok(n) = v.parse::<f64>() {
            return Some(Ts((n * f.time_unit_ms) as i64));
        }
    }
    Ts::parse(v.trim())
}

impl Normalizer for Mapping {
    fn sniff(&self, p: &Probe) -> bool {
        !p.keys.is_empty()
            && self
                .detect
                .iter()
                .all(|d| p.keys.iter().any(|k| k.as_str() == d))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let top: HashMap<Text<'a>, &'a RawValue> = super::parse_json(self.name, raw)?;
        let src = SourceInfo {
            family: self.family,
            vendor: Text::Shared(self.vendor.clone()),
            format: self.name.into(),
        };
        let mut ev = SessionEvent::new(src, Text::Borrowed(""), Ts(0), Category::Other);
        let mut have_time = false;
        let mut refused = false;
        let mut lat = None;
        let mut lon = None;
        let (mut city, mut country) = (None, None);
        for f in &self.fields {
            let v = match &f.source {
                Source::Const(c) => Some(Text::Shared(c.clone())),
                Source::Path(p) => lookup(&top, p),
            };
            let Some(v) = v.filter(|v| !v.is_empty() && !f.ignore.iter().any(|i| i == v.as_str()))
            else {
                continue;
            };
            match TARGETS[f.target] {
                "event_id" => ev.event_id = v,
                "event_time" => {
                    ev.event_time = parse_time(&v, f).ok_or_else(|| {
                        NormalizeError::invalid(
                            self.name,
                            format!("event_time {:?} is not a timestamp", v.as_str()),
                        )
                    })?;
                    have_time = true;
                }
                "action" => ev.action = Some(v),
                "http_status" => {
                    refused = matches!(v.parse::<u16>(), Ok(401 | 403 | 407));
                    ev.outcome = match v.parse::<u16>() {
                        Ok(s) if s < 400 => Outcome::Success,
                        Ok(_) => Outcome::Failure,
                        Err(_) => Outcome::Unknown,
                    }
                }
                "principal.id" => ev.principal.id = Some(v),
                "principal.email" => ev.principal.email = Some(v),
                "principal.display_name" => ev.principal.display_name = Some(v),
                "session.token_id" => ev.session.token_id = Some(v),
                "session.session_id" => ev.session.session_id = Some(v),
                "session.root_session_id" => ev.session.root_session_id = Some(v),
                "session.job_id" => ev.session.job_id = Some(v),
                "session.client_id" => ev.session.client_id = Some(v),
                "network.ip" => ev.network.ip = Some(v),
                "network.user_agent" => ev.network.user_agent = Some(v),
                "network.device_id" => ev.network.device_id = Some(v),
                "network.asn" => ev.network.asn = v.trim_start_matches("AS").parse().ok(),
                "network.as_org" => ev.network.as_org = Some(v),
                "network.geo.lat" => lat = v.parse::<f64>().ok(),
                "network.geo.lon" => lon = v.parse::<f64>().ok(),
                "network.geo.city" => city = Some(v),
                "network.geo.country" => country = Some(v),
                "resource.app" => ev.resource.app = Some(v),
                "resource.object_type" => ev.resource.object_type = Some(v),
                "resource.object_id" => ev.resource.object_id = Some(v),
                "resource.destination" => ev.resource.destination = Some(v),
                "resource.domain" => ev.resource.domains.push(v),
                "resource.bytes" => ev.resource.bytes = v.parse().ok(),
                "resource.records" => ev.resource.records = v.parse().ok(),
                _ => {}
            }
        }
        if !have_time {
            return Err(NormalizeError::invalid(
                self.name,
                "the event_time field is missing",
            ));
        }
        if let (Some(lat), Some(lon)) = (lat, lon) {
            ev.network.geo = Some(Geo {
                lat,
                lon,
                city,
                country,
                accuracy_radius_km: None,
            });
        }
        if ev.event_id.is_empty() {
            ev.event_id = super::fallback_id(ctx, 0);
        }
        ev.category = match &self.category {
            Cat::Const(c) => *c,
            Cat::Lookup(path, map) => {
                let v = lookup(&top, path);
                v.as_deref()
                    .and_then(|v| map.get(v))
                    .or_else(|| map.get("*"))
                    .copied()
                    .unwrap_or(Category::Other)
            }
        };
        if ev.principal.id.is_some() || ev.principal.email.is_some() {
            ev.principal.kind = self.kind;
            if self.vouch_principal && !refused {
                ev.principal.vouched_by = Some(Vouch {
                    vendor: Text::Shared(self.vendor.clone()),
                    family: self.family,
                });
            }
        }
        if !refused {
            let s = &ev.session;
            for (present, k) in [
                (s.token_id.is_some(), Keys::TOKEN),
                (s.session_id.is_some(), Keys::SESSION),
                (s.job_id.is_some(), Keys::JOB),
                (s.client_id.is_some(), Keys::CLIENT),
            ] {
                if present && self.vouch_keys.has(k) {
                    ev.session.vouched = ev.session.vouched.with(k);
                }
            }
        }
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_mapping_compiles() {
        for (file, text) in BUILTIN {
            Mapping::compile(file, text).unwrap();
        }
    }

    #[test]
    fn bad_targets_and_paths_are_named() {
        let base = "name = \"x\"\nfamily = \"gateway\"\nvendor = \"v\"\ndetect = [\"a\"]\ncategory = \"api_request\"\n[fields]\nevent_time = \"t\"\n";
        let e = Mapping::compile("m.toml", &format!("{base}\"principal.colour\" = \"c\"\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("principal.colour") && e.contains("principal.id"),
            "{e}"
        );
        let e = Mapping::compile("m.toml", &format!("{base}\"network.ip\" = \"a..b\"\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("m.toml") && e.contains("a..b"), "{e}");
        let e = Mapping::compile(
            "m.toml",
            &base.replace("event_time = \"t\"\n", "event_id = \"i\"\n"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("event_time"), "{e}");
    }
}
