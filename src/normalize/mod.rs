//! Normalize: one raw message in, zero or more unified [`SessionEvent`]s out.
//!
//! In: the bytes of one Kafka message or input line plus its provenance. Out: session events borrowed from those
//! bytes, or a [`NormalizeError`] that says why the message is unusable (it then goes to the dead-letter path).
//! State: none; each format is one file holding its config, its raw serde types and its tests.
//!
//! The format is pinned per topic/file or detected by shape: a cheap [`Probe`] reads only the top-level keys and
//! each format's `sniff` says whether it recognises them. The table of discriminating keys is in `README.md` and
//! is tested for ambiguity in `tests::detection_is_unambiguous`.

mod google_workspace;
mod kong;
mod native;
mod okta;
mod otel_genai;

use crate::event::{Provenance, SessionEvent, Text, Ts};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Why a raw message could not be turned into session events.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NormalizeError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("unknown format: no normalizer recognises a message with top-level keys [{0}]")]
    UnknownFormat(String),
    #[error("{format}: {reason}")]
    Invalid {
        format: &'static str,
        reason: String,
    },
    #[error("message is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
}

impl NormalizeError {
    /// A short machine-readable reason code for counters and dead-letter headers.
    pub fn code(&self) -> &'static str {
        match self {
            NormalizeError::NotJson(_) => "not_json",
            NormalizeError::UnknownFormat(_) => "unknown_format",
            NormalizeError::Invalid { .. } => "invalid",
            NormalizeError::TooLarge { .. } => "too_large",
        }
    }
    pub(crate) fn invalid(format: &'static str, e: impl std::fmt::Display) -> Self {
        NormalizeError::Invalid {
            format,
            reason: e.to_string(),
        }
    }
}

/// A configuration problem found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("normalize.{format}: {source}")]
    Parse {
        format: &'static str,
        source: toml::de::Error,
    },
    #[error("unknown format {value:?} for {key}; allowed: {allowed}")]
    UnknownFormat {
        key: String,
        value: String,
        allowed: String,
    },
    #[error("{key} = {value:?}: {why}")]
    Invalid {
        key: String,
        value: String,
        why: String,
    },
}

/// What a normalizer is given besides the bytes.
pub struct Context<'a> {
    pub provenance: Provenance<'a>,
    pub ingest_time: Ts,
}

/// The top-level keys of a message, read without building values; formats sniff it.
#[derive(Deserialize, Default, Debug)]
pub struct Probe<'a> {
    // Okta System Log
    #[serde(rename = "eventType")]
    pub event_type: Option<IgnoredAny>,
    pub published: Option<IgnoredAny>,
    // Google Workspace Reports
    #[serde(borrow)]
    pub kind: Option<Text<'a>>,
    pub events: Option<IgnoredAny>,
    pub id: Option<IgnoredAny>,
    pub actor: Option<IgnoredAny>,
    // Kong http-log
    pub request: Option<IgnoredAny>,
    pub response: Option<IgnoredAny>,
    pub started_at: Option<IgnoredAny>,
    pub upstream_uri: Option<IgnoredAny>,
    // OTLP/JSON
    #[serde(rename = "resourceSpans")]
    pub resource_spans: Option<IgnoredAny>,
    #[serde(rename = "traceId")]
    pub trace_id: Option<IgnoredAny>,
    #[serde(rename = "spanId")]
    pub span_id: Option<IgnoredAny>,
    // native
    pub event_id: Option<IgnoredAny>,
    pub event_time: Option<IgnoredAny>,
    pub category: Option<IgnoredAny>,
}

impl Probe<'_> {
    fn describe(&self) -> String {
        let mut keys = Vec::new();
        macro_rules! k {
            ($($f:ident => $n:literal),*) => { $( if self.$f.is_some() { keys.push($n); } )* };
        }
        k!(event_type => "eventType", published => "published", kind => "kind", events => "events",
           id => "id", actor => "actor", request => "request", response => "response",
           started_at => "started_at", upstream_uri => "upstream_uri", resource_spans => "resourceSpans",
           trace_id => "traceId", span_id => "spanId", event_id => "event_id", event_time => "event_time",
           category => "category");
        if keys.is_empty() {
            "none Quench knows".into()
        } else {
            keys.join(", ")
        }
    }
}

/// One source format. `normalize` is the only required method.
pub trait Normalizer: Send + Sync {
    /// Turn one message into events, appending to `out`.
    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError>;

    /// Whether a message with these top-level keys is in this format (auto-detection). Default: never guess.
    fn sniff(&self, _probe: &Probe) -> bool {
        false
    }
}

/// A registry entry: the format's name and how to build it from its config table (`[normalize.NAME]`).
pub struct Registered {
    pub name: &'static str,
    pub build: fn(toml::Table) -> Result<Box<dyn Normalizer>, ConfigError>,
}

/// Every supported format, in auto-detection order. Adding a format is one file plus one line here.
pub fn registry() -> Vec<Registered> {
    vec![
        Registered {
            name: okta::NAME,
            build: okta::build,
        },
        Registered {
            name: google_workspace::NAME,
            build: google_workspace::build,
        },
        Registered {
            name: kong::NAME,
            build: kong::build,
        },
        Registered {
            name: otel_genai::NAME,
            build: otel_genai::build,
        },
        Registered {
            name: native::NAME,
            build: native::build,
        },
    ]
}

/// Parse one message into a format's borrowed raw type, naming the format on error.
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(
    format: &'static str,
    raw: &'a str,
) -> Result<T, NormalizeError> {
    serde_json::from_str(raw).map_err(|e| NormalizeError::invalid(format, e))
}

/// Parse a component's config table into its typed config, naming the component on error.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(
    format: &'static str,
    table: toml::Table,
) -> Result<T, ConfigError> {
    T::deserialize(toml::Value::Table(table))
        .map_err(|source| ConfigError::Parse { format, source })
}

/// The normalize stage: every built format, auto-detection and per-source pinning.
pub struct Normalize {
    formats: Vec<(&'static str, Box<dyn Normalizer>)>,
    max_message_bytes: usize,
}

/// Settings of the normalize stage (`[normalize]`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Largest accepted message in bytes. Default 1 MiB.
    #[serde(default)]
    pub max_message_bytes: Option<usize>,
    /// Per-format settings, `[normalize.formats.kong]` etc. Default: every format with its defaults.
    #[serde(default)]
    pub formats: BTreeMap<String, toml::Table>,
}

impl Normalize {
    /// Build every registered format, applying per-format config. Unknown format names are an error.
    pub fn new(cfg: &NormalizeConfig) -> Result<Self, ConfigError> {
        let reg = registry();
        for name in cfg.formats.keys() {
            if !reg.iter().any(|r| r.name == name) {
                return Err(ConfigError::UnknownFormat {
                    key: "normalize.formats".into(),
                    value: name.clone(),
                    allowed: format_names().join(", "),
                });
            }
        }
        let mut formats = Vec::new();
        for r in reg {
            let table = cfg.formats.get(r.name).cloned().unwrap_or_default();
            formats.push((r.name, (r.build)(table)?));
        }
        Ok(Normalize {
            formats,
            max_message_bytes: cfg.max_message_bytes.unwrap_or(1 << 20),
        })
    }

    /// Check a format name given for a topic or file.
    pub fn check_format(&self, key: &str, name: &str) -> Result<(), ConfigError> {
        if name == "auto" || self.formats.iter().any(|(n, _)| *n == name) {
            Ok(())
        } else {
            Err(ConfigError::UnknownFormat {
                key: key.into(),
                value: name.into(),
                allowed: format!("auto, {}", format_names().join(", ")),
            })
        }
    }

    /// Normalize one message. `pinned` names the format (None or "auto": detect by shape).
    /// Returns the format used.
    pub fn normalize<'a>(
        &self,
        raw: &'a [u8],
        pinned: Option<&str>,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<&'static str, NormalizeError> {
        if raw.len() > self.max_message_bytes {
            return Err(NormalizeError::TooLarge {
                size: raw.len(),
                limit: self.max_message_bytes,
            });
        }
        let text = std::str::from_utf8(raw).map_err(|e| NormalizeError::NotJson(e.to_string()))?;
        let text = text.trim();
        let (name, n) = match pinned.filter(|p| *p != "auto") {
            Some(p) => self.formats.iter().find(|(n, _)| *n == p).ok_or_else(|| {
                NormalizeError::UnknownFormat(format!("pinned format {p:?} is not built"))
            })?,
            None => {
                let probe: Probe = serde_json::from_str(text)
                    .map_err(|e| NormalizeError::NotJson(e.to_string()))?;
                self.formats
                    .iter()
                    .find(|(_, n)| n.sniff(&probe))
                    .ok_or_else(|| NormalizeError::UnknownFormat(probe.describe()))?
            }
        };
        let start = out.len();
        n.normalize(text, ctx, out)?;
        for ev in &mut out[start..] {
            ev.ingest_time = ctx.ingest_time;
            ev.provenance = ctx.provenance.clone();
        }
        if out.len() == start {
            return Err(NormalizeError::Invalid {
                format: name,
                reason: "message holds no event".into(),
            });
        }
        Ok(name)
    }
}

/// Names of all formats, for messages.
pub fn format_names() -> Vec<&'static str> {
    registry().iter().map(|r| r.name).collect()
}

/// An event id for sources that have none: derived from where the message came from, so it is stable on replay.
pub(crate) fn fallback_id(ctx: &Context<'_>, idx: usize) -> Text<'static> {
    Text::from(format!("{}#{idx}", ctx.provenance))
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    /// Normalize one fixture string with auto-detection, panicking with the reason on failure.
    pub fn normalize_one(raw: &str) -> Vec<SessionEvent<'_>> {
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let ctx = Context {
            provenance: Provenance::None,
            ingest_time: Ts(0),
        };
        let mut out = Vec::new();
        n.normalize(raw.as_bytes(), None, &ctx, &mut out).unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each fixture must be recognised by exactly one format: the detection table has no overlaps.
    #[test]
    fn detection_is_unambiguous() {
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/formats");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let expect = path.file_stem().unwrap().to_str().unwrap().to_string();
            for line in std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                let probe: Probe = serde_json::from_str(line).unwrap();
                let hits: Vec<_> = n
                    .formats
                    .iter()
                    .filter(|(_, f)| f.sniff(&probe))
                    .map(|(n, _)| *n)
                    .collect();
                assert_eq!(hits, vec![expect.as_str()], "{}: {line}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 10, "only {seen} fixture lines");
    }

    #[test]
    fn bad_input_is_rejected_with_a_reason() {
        let n = Normalize::new(&NormalizeConfig {
            max_message_bytes: Some(64),
            ..Default::default()
        })
        .unwrap();
        let ctx = Context {
            provenance: Provenance::None,
            ingest_time: Ts(0),
        };
        let mut out = Vec::new();
        let e = n.normalize(b"{not json", None, &ctx, &mut out).unwrap_err();
        assert_eq!(e.code(), "not_json");
        let e = n
            .normalize(br#"{"hello":"world"}"#, None, &ctx, &mut out)
            .unwrap_err();
        assert_eq!(e.code(), "unknown_format");
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(100));
        let e = n
            .normalize(big.as_bytes(), None, &ctx, &mut out)
            .unwrap_err();
        assert_eq!(
            e,
            NormalizeError::TooLarge {
                size: big.len(),
                limit: 64
            }
        );
        let e = n
            .normalize(
                br#"{"eventType":"user.session.start"}"#,
                Some("okta"),
                &ctx,
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e.code(), "invalid");
        assert!(out.is_empty());
    }

    #[test]
    fn unknown_format_names_in_config_are_rejected_with_the_allowed_list() {
        let mut cfg = NormalizeConfig::default();
        cfg.formats.insert("splunk".into(), toml::Table::new());
        let e = Normalize::new(&cfg).err().unwrap().to_string();
        assert!(
            e.contains("\"splunk\"") && e.contains("okta") && e.contains("kong"),
            "{e}"
        );
    }
}

/// The string at a dot-separated path of a JSON object (`authenticated_entity.id`), reading only the objects on
/// the way. Used for user-configured paths; formats read their default fields through typed structs.
pub(crate) fn lookup_path<'a>(raw: &'a str, path: &str) -> Option<Text<'a>> {
    let mut cur: &'a str = raw;
    for seg in path.split('.') {
        let map: std::collections::HashMap<Text<'a>, &'a serde_json::value::RawValue> =
            serde_json::from_str(cur).ok()?;
        cur = map.get(seg)?.get();
    }
    serde_json::from_str::<Text<'a>>(cur).ok()
}

#[cfg(test)]
mod path_tests {
    use super::lookup_path;
    #[test]
    fn lookup_path_finds_nested_strings_and_numbers_only() {
        let raw = r#"{"a":{"b":{"c":"x\"y","n":12,"o":{}}},"z":"top"}"#;
        assert_eq!(lookup_path(raw, "a.b.c").as_deref(), Some("x\"y"));
        assert_eq!(lookup_path(raw, "a.b.n").as_deref(), Some("12"));
        assert_eq!(lookup_path(raw, "z").as_deref(), Some("top"));
        assert_eq!(lookup_path(raw, "a.b.o"), None);
        assert_eq!(lookup_path(raw, "a.q"), None);
    }
}
