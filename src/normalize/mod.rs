//! Normalize: one raw message in, zero or more unified [`SessionEvent`]s out.
//!
//! In: the bytes of one Kafka message or input line plus its provenance. Out: session events borrowed from those
//! bytes, or a [`NormalizeError`] that says why the message is unusable (it then goes to the dead-letter path).
//! State: none per message; the probe's key table is built once from the registry. Each format is one file
//! holding its config, its raw serde types and its tests.
//!
//! The format is pinned per topic/file or detected by shape: a cheap [`Probe`] reads only the top-level keys and
//! each format's `sniff` says whether it recognises them. The table of discriminating keys is in `README.md` and
//! is tested for ambiguity in `tests::detection_is_unambiguous`.

mod casefold;
mod probe;
pub use probe::Probe;
pub mod dedup;
pub mod defender_xdr;
mod ecs;
pub mod enrich;
mod entra_audit;
mod entra_graph;
mod entra_risk;
mod entra_signin;
pub mod envelope;
mod enveloped;
pub mod envoy_text;
mod fields;
mod github_audit;
mod google_workspace;
mod kong;
pub mod m365_audit;
mod mapping;
mod mcp;
#[cfg(test)]
mod mutations;
mod native;
mod ocsf;
mod okta;
mod otel_genai;
mod redact;
mod salesforce;
mod slack_audit;

pub(crate) use fields::*;
use redact::redact_query_secrets;

use crate::event::{Category, Provenance, SessionEvent, Text, Ts};
use crate::pattern;
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
    #[error("event time {event_time} is more than normalize.max_future_skew_secs = {skew_secs} ahead of {reference_kind} {reference}")]
    FromTheFuture {
        event_time: String,
        reference: String,
        /// "the ingest time" or "the stream's timeline".
        reference_kind: &'static str,
        skew_secs: u64,
    },
}

impl NormalizeError {
    /// A short machine-readable reason code for counters and dead-letter headers.
    pub fn code(&self) -> &'static str {
        match self {
            NormalizeError::NotJson(_) => "not_json",
            NormalizeError::UnknownFormat(_) => "unknown_format",
            NormalizeError::Invalid { .. } => "invalid",
            NormalizeError::TooLarge { .. } => "too_large",
            NormalizeError::FromTheFuture { .. } => "from_the_future",
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
    /// Index of the record within an envelope (array, `records`, lines); 0 for a single record.
    pub part: u32,
}

impl<'a> Context<'a> {
    pub fn new(provenance: Provenance<'a>, ingest_time: Ts) -> Self {
        Context {
            provenance,
            ingest_time,
            part: 0,
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

    /// What this format's source vouches for. Default [`Authority::PerField`]: the normalizer marks what it vouches
    /// for itself ([`SessionEvent::vouch_all`], `session.vouched`), and nothing else is trusted.
    fn authority(&self) -> Authority {
        Authority::PerField
    }

    /// A cheap byte-level hint that the message is probably in this format, checked before the key probe. Only
    /// formats whose typed parse rejects other formats' messages implement it: a hinted message that fails to
    /// normalize goes through full detection. Default: no hint.
    fn hint(&self, _raw: &str) -> bool {
        false
    }

    /// Whether this format reads plain-text lines (not JSON); such a format's `hint` is tried on messages that
    /// are no JSON, and no JSON format's hint is. Default: false.
    fn reads_text(&self) -> bool {
        false
    }
}

/// What a format's source vouches for (see the README's threat model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// The system that authenticated the identities in its logs: an IdP, or a SaaS audit log for its own users and
    /// sessions. Every identity and key of its events is vouched for, except the principal of a failed sign-in (the
    /// account someone tried, not who acted).
    OwnUsers,
    /// The normalizer decides field by field (gateways, agent spans, native events); nothing is vouched by default.
    PerField,
}

/// A registry entry: the format's name, how to build it from its config table (`[normalize.NAME]`), and the
/// top-level keys its [`Normalizer::sniff`] asks the [`Probe`] about.
pub struct Registered {
    pub name: &'static str,
    pub build: fn(toml::Table) -> Result<Box<dyn Normalizer>, ConfigError>,
    pub keys: &'static [&'static str],
}

/// Every supported format, in auto-detection order. Adding a format is one file plus one line here.
pub fn registry() -> Vec<Registered> {
    vec![
        Registered {
            name: okta::NAME,
            build: okta::build,
            keys: okta::KEYS,
        },
        Registered {
            name: google_workspace::NAME,
            build: google_workspace::build,
            keys: google_workspace::KEYS,
        },
        Registered {
            name: kong::NAME,
            build: kong::build,
            keys: kong::KEYS,
        },
        Registered {
            name: otel_genai::NAME,
            build: otel_genai::build,
            keys: otel_genai::KEYS,
        },
        Registered {
            name: entra_signin::NAME,
            build: entra_signin::build,
            keys: entra_signin::KEYS,
        },
        Registered {
            name: entra_audit::NAME,
            build: entra_audit::build,
            keys: entra_audit::KEYS,
        },
        Registered {
            name: entra_graph::NAME,
            build: entra_graph::build,
            keys: entra_graph::KEYS,
        },
        Registered {
            name: entra_risk::NAME,
            build: entra_risk::build,
            keys: entra_risk::KEYS,
        },
        Registered {
            name: m365_audit::NAME,
            build: m365_audit::build,
            keys: m365_audit::KEYS,
        },
        Registered {
            name: salesforce::NAME,
            build: salesforce::build,
            keys: salesforce::KEYS,
        },
        Registered {
            name: slack_audit::NAME,
            build: slack_audit::build,
            keys: slack_audit::KEYS,
        },
        Registered {
            name: github_audit::NAME,
            build: github_audit::build,
            keys: github_audit::KEYS,
        },
        Registered {
            name: defender_xdr::NAME,
            build: defender_xdr::build,
            keys: defender_xdr::KEYS,
        },
        Registered {
            name: ocsf::NAME,
            build: ocsf::build,
            keys: ocsf::KEYS,
        },
        Registered {
            name: ecs::NAME,
            build: ecs::build,
            keys: ecs::KEYS,
        },
        Registered {
            name: envoy_text::NAME,
            build: envoy_text::build,
            keys: envoy_text::KEYS,
        },
        Registered {
            name: mcp::NAME,
            build: mcp::build,
            keys: mcp::KEYS,
        },
        Registered {
            name: native::NAME,
            build: native::build,
            keys: native::KEYS,
        },
    ]
}

thread_local! {
    /// Set while a record whose keys a pipeline re-cased is read again: struct fields then match in any case.
    static CASEFOLD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` with struct field names matched in any ASCII case by [`parse_json`] (on this thread).
fn with_casefold<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the flag even if `f` unwinds, so later records on this thread are read as written.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CASEFOLD.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CASEFOLD.with(|c| c.replace(true)));
    f()
}

/// Parse one message into a format's borrowed raw type, naming the format on error. While a record is read
/// again with its keys matched in any case ([`with_casefold`]), struct fields match `creationtime` as well as
/// `CreationTime`.
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(
    format: &'static str,
    raw: &'a str,
) -> Result<T, NormalizeError> {
    if CASEFOLD.with(std::cell::Cell::get) {
        let mut de = serde_json::Deserializer::from_str(raw);
        let v = T::deserialize(casefold::CaseFold(&mut de))
            .map_err(|e| NormalizeError::invalid(format, e))?;
        de.end().map_err(|e| NormalizeError::invalid(format, e))?;
        return Ok(v);
    }
    serde_json::from_str(raw).map_err(|e| NormalizeError::invalid(format, e))
}

/// Strings a format's [`Normalizer::hint`] looks for in every message, each searched with a SIMD finder built
/// once (the hints run on every message before any parse, so they are searched a few hundred thousand times a
/// second).
pub(crate) struct Needles(Vec<memchr::memmem::Finder<'static>>);

impl Needles {
    pub(crate) fn new(needles: &[&'static str]) -> Needles {
        Needles(
            needles
                .iter()
                .map(|n| memchr::memmem::Finder::new(n.as_bytes()))
                .collect(),
        )
    }

    /// Whether every needle occurs in `raw`.
    pub(crate) fn all_in(&self, raw: &str) -> bool {
        self.0.iter().all(|f| f.find(raw.as_bytes()).is_some())
    }
}

/// An Azure Monitor diagnostic record (`{"time": …, "category": …, "properties": ROW}`): the row's text and the
/// record's time and category. A bare row (a Log Analytics table's, a Graph object) is its own text.
pub(crate) fn azure_row(raw: &str) -> (&str, Option<Text<'_>>, Option<Text<'_>>) {
    #[derive(Deserialize)]
    struct Record<'a> {
        #[serde(borrow, default)]
        time: Loose<'a>,
        #[serde(borrow, default)]
        category: Loose<'a>,
        #[serde(borrow)]
        properties: &'a serde_json::value::RawValue,
    }
    match serde_json::from_str::<Record<'_>>(raw) {
        Ok(r) if r.properties.get().trim_start().starts_with('{') => {
            (r.properties.get(), r.time.0, r.category.0)
        }
        _ => (raw, None, None),
    }
}

/// Parse a component's config table into its typed config, naming the component on error.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(
    format: &'static str,
    table: toml::Table,
) -> Result<T, ConfigError> {
    T::deserialize(toml::Value::Table(table))
        .map_err(|source| ConfigError::Parse { format, source })
}

/// Buffers for records unwrapped from envelopes (one per level, [`envelope::MAX_DEPTH`] levels) and for a
/// gzip-compressed message's text, which the events of a message borrow from: create one per message, before its
/// events.
#[derive(Default)]
pub struct Envelopes {
    levels: [Option<String>; envelope::MAX_DEPTH],
    inflated: Option<String>,
}

/// The normalize stage: every built format, auto-detection and per-source pinning.
pub struct Normalize {
    formats: Vec<(&'static str, Box<dyn Normalizer>)>,
    max_message_bytes: usize,
    max_inflated_bytes: usize,
    max_age_secs: u64,
    /// Some format (a declarative mapping) detects by arbitrary top-level keys.
    wants_keys: bool,
    enrich: enrich::Enrich,
    /// `normalize.trusted_envelopes`.
    trusted_envelopes: Vec<String>,
}

/// Settings of the normalize stage (`[normalize]`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Largest accepted message in bytes. Default 1 MiB.
    #[serde(default)]
    pub max_message_bytes: Option<usize>,
    /// Largest text a gzip-compressed message (a streamed log file forwarded whole, as GitHub's audit-log
    /// streaming writes them) may inflate to, in bytes, and never more than 64 times its compressed size; a
    /// message inflating further is rejected. Default 16 MiB.
    #[serde(default)]
    pub max_inflated_bytes: Option<usize>,
    /// Per-format settings, `[normalize.formats.kong]` etc. Default: every format with its defaults.
    #[serde(default)]
    pub formats: BTreeMap<String, toml::Table>,
    /// Directory of declarative mapping files (`*.toml`, see `schemas/mappings/`) adding formats without
    /// recompiling. Default: only the built-in mappings.
    #[serde(default)]
    pub mappings_dir: Option<std::path::PathBuf>,
    /// Geo/ASN enrichment and known egress ranges. Default: none.
    #[serde(default)]
    pub enrich: enrich::EnrichConfig,
    /// How far an event may be dated ahead of the time it was ingested (in `replay`, ahead of the stream's own
    /// timeline) before it is dead-lettered, in seconds. Default 300.
    #[serde(default)]
    pub max_future_skew_secs: Option<u64>,
    /// Events older than this behind the processing clock are counted and kept out of keyed state, in seconds.
    /// Default 86400 (the correlation TTL's default).
    #[serde(default)]
    pub max_age_secs: Option<u64>,
    /// How far behind its newest event a source's records may still arrive out of order, in seconds: each
    /// source's watermark is its newest event time less this, and keyed state expires by the lowest watermark
    /// ([`crate::watermark`]). Default 600.
    #[serde(default)]
    pub allowed_lateness_secs: Option<u64>,
    /// A source (a topic partition's records of one format) that delivered nothing for this many seconds of
    /// processing time stops holding the watermark back. Default 300.
    #[serde(default)]
    pub watermark_idle_secs: Option<u64>,
    /// A source whose newest event is more than this many seconds behind the processing clock stops holding the
    /// watermark back, so no source can keep every key past its TTL. Default 21600.
    #[serde(default)]
    pub watermark_max_lag_secs: Option<u64>,
    /// Hold every event for this many seconds (from its record's delivery to the topic in `run`, else of processing
    /// time) and process the held events in event-time order ([`crate::reorder`]): when every source delivers
    /// within it, decisions do not depend on the order the sources delivered in, at the price of delaying every
    /// decision by it. Needs `[state] dir` in `run` (the
    /// held events are state), is refused with `[kafka.keyed]`, and is at most `max_age_secs`. 0 turns it off.
    /// Default 0.
    #[serde(default)]
    pub reorder_secs: Option<u64>,
    /// Most bytes of held events (as JSON), at least 1048576 while the hold is on; beyond, the earliest event no
    /// source vouches for (else the earliest) is released before its time and counted
    /// (`quench_reorder_overflow_total`). Default 268435456 (256 MiB).
    #[serde(default)]
    pub reorder_max_bytes: Option<usize>,
    /// Events seen again within this many seconds of event time (the same format, vendor id, time, principal and
    /// action: an Okta hook redelivered, an Entra row written twice, Kafka redelivering after a crash) are
    /// counted and dropped; 0 turns this off. Default 3600.
    #[serde(default)]
    pub dedup_window_secs: Option<u64>,
    /// Most event fingerprints kept for that (the least recently seen make room first). Default 500000.
    #[serde(default)]
    pub dedup_max_keys: Option<usize>,
    /// Envelopes whose records keep their own format's authority, as `kind:origin` globs (see
    /// [`envelope::Unwrapped`]): e.g. `"splunk_hec:OktaIM2:log"`, `"ecs:okta.system"`,
    /// `"pubsub:projects/acme/subscriptions/workspace-audit"`. Records from any other envelope are read as claims
    /// (no identity in them is vouched for), unless their topic is pinned to a format. Default: none.
    #[serde(default)]
    pub trusted_envelopes: Vec<String>,
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
        let mut files: Vec<(String, String)> = mapping::BUILTIN
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect();
        if let Some(dir) = &cfg.mappings_dir {
            let bad = |why: String| ConfigError::Invalid {
                key: "normalize.mappings_dir".into(),
                value: dir.display().to_string(),
                why,
            };
            let mut paths: Vec<_> = std::fs::read_dir(dir)
                .map_err(|e| bad(e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for p in paths {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| bad(format!("{}: {e}", p.display())))?;
                files.push((p.display().to_string(), text));
            }
        }
        let mut wants_keys = false;
        for (file, text) in files {
            let m = mapping::Mapping::compile(&file, &text)?;
            if let Some(i) = formats.iter().position(|(n, _)| *n == m.name()) {
                if i < registry().len() {
                    return Err(ConfigError::Invalid {
                        key: format!("{file}: name"),
                        value: m.name().into(),
                        why: "a built-in format has this name".into(),
                    });
                }
                formats.remove(i); // a user mapping replaces a built-in mapping of the same name
            }
            formats.push((m.name(), Box::new(m)));
            wants_keys = true;
        }
        Ok(Normalize {
            formats,
            max_message_bytes: cfg.max_message_bytes.unwrap_or(1 << 20),
            max_inflated_bytes: cfg.max_inflated_bytes.unwrap_or(16 << 20),
            max_age_secs: cfg.max_age_secs.unwrap_or(86_400),
            wants_keys,
            enrich: enrich::Enrich::new(&cfg.enrich)?,
            trusted_envelopes: cfg.trusted_envelopes.clone(),
        })
    }

    /// Whether events that carry only an IP can get coordinates (a geo database or network table is configured).
    pub fn max_age_secs(&self) -> u64 {
        self.max_age_secs
    }

    pub fn has_geo(&self) -> bool {
        self.enrich.has_geo()
    }

    /// The registered name equal to `name`, if it is one of the configured formats.
    pub fn format_name(&self, name: &str) -> Option<&'static str> {
        self.formats.iter().map(|(n, _)| *n).find(|n| *n == name)
    }

    /// Check a format name given for a topic or file.
    pub fn check_format(&self, key: &str, name: &str) -> Result<(), ConfigError> {
        if name == "auto" || self.formats.iter().any(|(n, _)| *n == name) {
            Ok(())
        } else {
            Err(ConfigError::UnknownFormat {
                key: key.into(),
                value: name.into(),
                allowed: format!(
                    "auto, {}",
                    self.formats
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
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
        self.normalize_sized(raw, pinned, ctx, out)
    }

    /// [`Normalize::normalize`] of a message whose size was checked.
    fn normalize_sized<'a>(
        &self,
        raw: &'a [u8],
        pinned: Option<&str>,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<&'static str, NormalizeError> {
        let text = std::str::from_utf8(raw).map_err(|e| NormalizeError::NotJson(e.to_string()))?;
        let start = out.len();
        let result = self.normalize_text(text.trim(), pinned, ctx, out, 0);
        let name = match result {
            Ok(n) => n,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        let enrich = self.enrich.is_active();
        for ev in &mut out[start..] {
            redact_query_secrets(&mut ev.resource.object_id);
            self.apply_authority(ev);
            ev.ingest_time = ctx.ingest_time;
            ev.provenance = ctx.provenance.clone();
            if enrich {
                self.enrich.enrich(ev);
            }
        }
        if out.len() == start {
            return Err(NormalizeError::Invalid {
                format: name,
                reason: "message holds no event".into(),
            });
        }
        Ok(name)
    }

    /// One record, or an envelope of records: a JSON array, `{"records": [...]}` (Azure Monitor / Event Hubs
    /// exports) or several JSON lines in one message. An envelope fails as a whole when any record fails, so the
    /// message goes to the dead-letter path intact. Returns the format of the first record.
    fn normalize_text<'a>(
        &self,
        text: &'a str,
        pinned: Option<&str>,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
        depth: u32,
    ) -> Result<&'static str, NormalizeError> {
        // a JSON object or array of values is no text line; `[2019-04-08T…] "GET …` (Envoy) is
        let json = text.starts_with('{')
            || (text.starts_with('[')
                && !text[1..]
                    .trim_start()
                    .starts_with(|c: char| c.is_ascii_digit()));
        if !json {
            if let Some(name) = self.normalize_text_lines(text, pinned, ctx, out)? {
                return Ok(name);
            }
        }
        let parts: Option<Vec<&'a str>> = if depth < 2 && text.starts_with('[') {
            let items: Vec<&'a serde_json::value::RawValue> =
                serde_json::from_str(text).map_err(|e| NormalizeError::NotJson(e.to_string()))?;
            Some(items.into_iter().map(|r| r.get()).collect())
        } else if depth < 2
            && text.starts_with('{')
            && memchr::memchr(b'\n', text.as_bytes()).is_some()
            && text.contains("}\n")
        {
            Some(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect(),
            )
        } else {
            None
        };
        // Fast path: a format's byte-level hint, confirmed by its strict typed parse; anything else is probed.
        if parts.is_none() && pinned.is_none_or(|p| p == "auto") {
            if let Some((name, n)) = self.formats.iter().find(|(_, n)| n.hint(text)) {
                let start = out.len();
                if n.normalize(text, ctx, out).is_ok() && out.len() > start {
                    return Ok(name);
                }
                out.truncate(start);
            }
        }
        let probe = match parts {
            Some(_) => None,
            None if pinned.is_some_and(|p| p != "auto") && !text.contains("\"records\"") => None,
            None => Some(
                serde_json::from_str::<Probe>(text)
                    .map_err(|e| NormalizeError::NotJson(e.to_string()))?,
            ),
        };
        let parts = match (parts, &probe) {
            (Some(p), _) => Some(p),
            (None, Some(p)) if depth < 2 && p.has("records") && self.envelope_only(text) => {
                #[derive(Deserialize)]
                struct Records<'a> {
                    #[serde(borrow)]
                    records: Vec<&'a serde_json::value::RawValue>,
                }
                let r: Records<'a> = serde_json::from_str(text)
                    .map_err(|e| NormalizeError::NotJson(e.to_string()))?;
                Some(r.records.into_iter().map(|r| r.get()).collect())
            }
            _ => None,
        };
        if let Some(parts) = parts {
            let mut first = None;
            for (i, p) in parts.into_iter().enumerate() {
                let sub = Context {
                    provenance: ctx.provenance.clone(),
                    ingest_time: ctx.ingest_time,
                    part: i as u32 + 1,
                };
                let f = self
                    .normalize_text(p.trim(), pinned, &sub, out, depth + 1)
                    .map_err(|e| NormalizeError::Invalid {
                        format: "envelope",
                        reason: format!("record {i}: {e}"),
                    })?;
                first.get_or_insert(f);
            }
            return first.ok_or_else(|| NormalizeError::Invalid {
                format: "envelope",
                reason: "no records".into(),
            });
        }
        let mut folded = false;
        let (name, n) = match pinned.filter(|p| *p != "auto") {
            Some(p) => self.formats.iter().find(|(n, _)| *n == p).ok_or_else(|| {
                NormalizeError::UnknownFormat(format!("pinned format {p:?} is not built"))
            })?,

            None => {
                let mut probe = probe.unwrap_or_default();
                let found = match self.formats.iter().find(|(_, n)| n.sniff(&probe)) {
                    Some(f) => Some(f),
                    // mappings detect by arbitrary keys: read them only when no built-in format claims the message
                    None if self.wants_keys => {
                        probe.keys = top_level_keys(text);
                        self.formats.iter().find(|(_, n)| n.sniff(&probe))
                    }
                    None => None,
                };
                match found.or_else(|| self.detect_recased(text)) {
                    Some(f) => {
                        folded = found.is_none();
                        f
                    }
                    None => return Err(NormalizeError::UnknownFormat(probe.describe())),
                }
            }
        };
        let start = out.len();
        if folded {
            with_casefold(|| n.normalize(text, ctx, out))?;
            return Ok(name);
        }
        match n.normalize(text, ctx, out) {
            Ok(()) => Ok(name),
            // a record of this format whose keys a pipeline re-cased (`eventtype`): read it again, keys in any case
            Err(e @ NormalizeError::Invalid { .. }) => {
                out.truncate(start);
                match with_casefold(|| n.normalize(text, ctx, out)) {
                    Ok(()) => Ok(name),
                    Err(_) => {
                        out.truncate(start);
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The built-in format that recognises `text` once its top-level keys are matched in any case (a pipeline
    /// lowercased them), if any.
    fn detect_recased(&self, text: &str) -> Option<&(&'static str, Box<dyn Normalizer>)> {
        if !text.bytes().any(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let probe = Probe::deserialize(casefold::CaseFold(&mut de)).ok()?;
        self.formats.iter().find(|(_, n)| n.sniff(&probe))
    }

    /// Plain-text log lines (Envoy's default access log …): the message, or each of its lines, when a text
    /// format's hint takes it (and the topic is not pinned to another format). `None` when none does.
    fn normalize_text_lines<'a>(
        &self,
        text: &'a str,
        pinned: Option<&str>,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<Option<&'static str>, NormalizeError> {
        let find = |line: &str| {
            self.formats
                .iter()
                .filter(|(n, f)| f.reads_text() && pinned.is_none_or(|p| p == "auto" || p == *n))
                .find(|(_, f)| f.hint(line))
        };
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let (Some(first), Some((name, f))) = (lines.next(), find(text)) else {
            return Ok(None);
        };
        if lines.next().is_none() {
            f.normalize(first, ctx, out)?;
            return Ok(Some(name));
        }
        for (i, line) in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let sub = Context {
                provenance: ctx.provenance.clone(),
                ingest_time: ctx.ingest_time,
                part: i as u32 + 1,
            };
            let (_, f) = find(line).ok_or_else(|| NormalizeError::Invalid {
                format: name,
                reason: format!("line {i} is not a {name} line"),
            })?;
            f.normalize(line, &sub, out)?;
        }
        Ok(Some(name))
    }

    /// Mark what the event's format vouches for. Formats are found by the event's own `source.format`, which the
    /// normalizer set (native events get theirs from their input's configuration, never from the event).
    fn apply_authority(&self, ev: &mut SessionEvent<'_>) {
        let own = self
            .formats
            .iter()
            .find(|(n, _)| *n == ev.source.format.as_str())
            .is_some_and(|(_, f)| f.authority() == Authority::OwnUsers);
        if own {
            ev.vouch_all();
            let failed_sign_in = ev.outcome == crate::event::Outcome::Failure
                && matches!(ev.category, Category::Login | Category::Sso);
            if failed_sign_in {
                ev.principal.vouched_by = None;
            }
        }
    }
}

/// The top-level keys of a JSON object (empty when it is not one).
pub(crate) fn top_level_keys(text: &str) -> Vec<Text<'_>> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<Text<'de>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut v = Vec::new();
            while let Some(k) = m.next_key::<Text<'de>>()? {
                m.next_value::<IgnoredAny>()?;
                v.push(k);
            }
            Ok(v)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_map(&mut de, Keys).unwrap_or_default()
}

/// Names of all formats, for messages.
pub fn format_names() -> Vec<&'static str> {
    registry().iter().map(|r| r.name).collect()
}

/// An event id for sources that have none: derived from where the message came from, so it is stable on replay.
pub(crate) fn fallback_id(ctx: &Context<'_>, idx: usize) -> Text<'static> {
    use crate::event::push_int;
    let mut id = String::with_capacity(match &ctx.provenance {
        Provenance::Kafka { topic, .. } => topic.len() + 32,
        Provenance::File { path, .. } => path.len() + 24,
        Provenance::None => 8,
    });
    ctx.provenance.write_to(&mut id);
    id.push('#');
    if ctx.part != 0 {
        push_int(&mut id, i128::from(ctx.part));
        id.push('.');
    }
    push_int(&mut id, idx as i128);
    Text::from(id)
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    /// Normalize one fixture string with auto-detection, panicking with the reason on failure.
    pub fn normalize_one(raw: &str) -> Vec<SessionEvent<'_>> {
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
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
            let text_lines = path.extension().is_some_and(|x| x == "log");
            for line in std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                if text_lines {
                    // plain-text formats: only the text format's hint takes the line
                    let hits: Vec<_> = n
                        .formats
                        .iter()
                        .filter(|(_, f)| f.reads_text() && f.hint(line))
                        .map(|(n, _)| *n)
                        .collect();
                    assert_eq!(hits, vec![expect.as_str()], "{}: {line}", path.display());
                    let ctx = Context::new(Provenance::None, Ts(0));
                    let got = n.normalize(line.as_bytes(), None, &ctx, &mut Vec::new());
                    assert_eq!(got, Ok(expect.as_str()), "{line}");
                    seen += 1;
                    continue;
                }
                let mut probe: Probe = serde_json::from_str(line).unwrap();
                probe.keys = top_level_keys(line);
                let hits: Vec<_> = n
                    .formats
                    .iter()
                    .filter(|(_, f)| f.sniff(&probe))
                    .map(|(n, _)| *n)
                    .collect();
                assert_eq!(hits, vec![expect.as_str()], "{}: {line}", path.display());
                // the byte-level hints agree with detection
                let ctx = Context::new(Provenance::None, Ts(0));
                assert_eq!(
                    n.normalize(line.as_bytes(), None, &ctx, &mut Vec::new())
                        .unwrap(),
                    expect,
                    "{line}"
                );
                seen += 1;
            }
        }
        assert!(seen >= 10, "only {seen} fixture lines");
    }

    /// Ids built without `format!` read as they did with it.
    #[test]
    fn fallback_ids_spell_the_provenance_part_and_index() {
        let kafka = Provenance::Kafka {
            topic: "audit-events".into(),
            partition: 3,
            offset: -1,
        };
        for (prov, part, idx) in [
            (kafka.clone(), 0, 0),
            (kafka, 7, 12),
            (
                Provenance::File {
                    path: "a.jsonl".into(),
                    line: u64::MAX,
                },
                0,
                9,
            ),
            (Provenance::None, 1, 0),
        ] {
            let want = if part == 0 {
                format!("{prov}#{idx}")
            } else {
                format!("{prov}#{part}.{idx}")
            };
            let ctx = Context {
                provenance: prov,
                ingest_time: Ts(0),
                part,
            };
            assert_eq!(fallback_id(&ctx, idx).as_str(), want);
        }
    }

    #[test]
    fn bad_input_is_rejected_with_a_reason() {
        let n = Normalize::new(&NormalizeConfig {
            max_message_bytes: Some(64),
            ..Default::default()
        })
        .unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
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

    fn fixture_lines(name: &str) -> Vec<String> {
        let p = format!(
            "{}/fixtures/formats/{name}.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn arrays_records_envelopes_and_json_lines_are_split_into_records() {
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
        let okta = fixture_lines("okta");
        let kong = fixture_lines("kong");
        for msg in [
            format!("[{},{}]", okta[0], kong[0]),
            format!("{{\"records\":[{},{}]}}", okta[0], kong[0]),
            format!("{}\n{}\n", okta[0], kong[0]),
        ] {
            let mut out = Vec::new();
            assert_eq!(
                n.normalize(msg.as_bytes(), None, &ctx, &mut out).unwrap(),
                "okta",
                "{msg}"
            );
            assert_eq!(out.len(), 2);
            assert_eq!(out[1].source.format, "kong");
        }
    }

    fn gzip(text: &str) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    /// Issue 13: GitHub's audit-log streaming writes gzip-compressed JSON Lines files; forwarded whole, each is
    /// one message, and every line in it is an event. Files appended in pieces hold several gzip members.
    #[test]
    fn a_gzip_compressed_github_streaming_file_is_read_line_by_line() {
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
        let line = |i: u32| {
            format!(
                r#"{{"@timestamp":17936064{i:05},"_document_id":"gh-{i}","action":"git.clone","actor":"octo","actor_id":11,"created_at":17936064{i:05},"org":"acme","repo":"acme/app","hashed_token":"h="}}"#
            )
        };
        let first: String = (0..3).map(|i| line(i) + "\n").collect();
        let mut file = gzip(&first);
        file.extend(gzip(&(line(3) + "\n")));
        let mut out = Vec::new();
        let mut inner = Envelopes::default();
        let got = n.normalize_enveloped(&file, None, &ctx, &mut out, &mut inner);
        assert_eq!(got, Ok(github_audit::NAME));
        let ids: Vec<&str> = out.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["gh-0", "gh-1", "gh-2", "gh-3"]);
        assert!(out.iter().all(|e| e.category == Category::Export));
    }

    /// A small message must not inflate into gigabytes: the inflated text is bounded, and the limit is named.
    #[test]
    fn a_gzip_message_inflating_beyond_its_limit_is_refused() {
        let n = Normalize::new(&NormalizeConfig {
            max_inflated_bytes: Some(4096),
            ..Default::default()
        })
        .unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
        let bomb = gzip(&" ".repeat(1 << 20));
        assert!(bomb.len() < 4096, "{} bytes compressed", bomb.len());
        let mut inner = Envelopes::default();
        let e = n
            .normalize_enveloped(&bomb, None, &ctx, &mut Vec::new(), &mut inner)
            .unwrap_err();
        assert!(e.to_string().contains("inflates beyond 4096 bytes"), "{e}");
        // found by the outside reviews: under the configured bound, a few kilobytes of repeated bytes may still
        // inflate only at the ratio of real logs
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let mut inner = Envelopes::default();
        let e = n
            .normalize_enveloped(&bomb, None, &ctx, &mut Vec::new(), &mut inner)
            .unwrap_err();
        let want = format!("inflates beyond {} bytes", bomb.len() * 64);
        assert!(e.to_string().contains(&want), "{e}");
        // a damaged stream is refused with the decoder's reason, never half-read
        let mut cut = gzip(&fixture_lines("okta")[0]);
        cut.truncate(cut.len() / 2);
        let mut inner = Envelopes::default();
        let mut out = Vec::new();
        let e = n
            .normalize_enveloped(&cut, None, &ctx, &mut out, &mut inner)
            .unwrap_err();
        assert!(e.to_string().starts_with("gzip: "), "{e}");
        assert!(out.is_empty());
    }

    #[test]
    fn an_envelope_with_a_bad_record_fails_whole_and_emits_nothing() {
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        let msg = format!("[{},{{\"hello\":1}}]", fixture_lines("okta")[0]);
        let e = n
            .normalize(msg.as_bytes(), None, &ctx, &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("record 1"), "{e}");
        assert!(out.is_empty());
    }

    /// Found by the OCSF review: a session ending carried as a claim (an Okta record in a shipper's envelope
    /// nobody trusts, an OCSF event naming Okta) could confirm that a revocation took effect.
    #[test]
    fn a_claimed_session_end_confirms_no_revocation() {
        let okta_end = r#"{"uuid":"e-1","published":"2026-11-02T08:00:00.000Z","eventType":"user.session.end","actor":{"id":"00u1","type":"User","alternateId":"ceo@example.com"},"client":{"ipAddress":"198.51.100.4"},"outcome":{"result":"SUCCESS"}}"#;
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
        let ended = |raw: &str| {
            let mut out = Vec::new();
            let mut inner = Envelopes::default();
            n.normalize_enveloped(raw.as_bytes(), None, &ctx, &mut out, &mut inner)
                .unwrap();
            out.iter().find_map(|e| e.ended()).map(|e| e.subjects)
        };
        assert!(ended(okta_end).is_some(), "Okta's own record confirms");
        let wrapped = format!(
            r#"{{"message":{}}}"#,
            serde_json::to_string(okta_end).unwrap()
        );
        assert_eq!(ended(&wrapped), None, "a container's stdout is no Okta");
        let ocsf = r#"{"class_uid":3002,"activity_id":2,"status_id":1,"time":1793606400000,"metadata":{"uid":"o-1","product":{"vendor_name":"Okta"}},"user":{"email_addr":"ceo@example.com"}}"#;
        assert_eq!(ended(ocsf), None, "an OCSF event naming Okta is no Okta");
        // nor a session the source vouches for, when it does not vouch for whose session it names
        let mut cfg = NormalizeConfig::default();
        cfg.formats.insert(
            "ocsf".into(),
            toml::from_str(r#"vouched_vendors = ["Okta"]"#).unwrap(),
        );
        let vouching = Normalize::new(&cfg).unwrap();
        let unknown_logoff = r#"{"class_uid":3002,"activity_id":2,"time":1793606400000,"metadata":{"uid":"o-2","product":{"vendor_name":"Okta"}},"user":{"email_addr":"ceo@example.com"},"session":{"uid":"s-ceo"}}"#;
        let mut out = Vec::new();
        vouching
            .normalize(unknown_logoff.as_bytes(), None, &ctx, &mut out)
            .unwrap();
        assert!(out[0].principal.vouched_by.is_none());
        assert!(out[0].ended().is_none(), "{:?}", out[0].ended());
    }

    #[test]
    fn records_of_an_envelope_without_ids_get_distinct_fallback_ids() {
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let prov = Provenance::Kafka {
            topic: "gw".into(),
            partition: 0,
            offset: 7,
        };
        let ctx = Context::new(prov, Ts(0));
        let k = &fixture_lines("kong")[0];
        let mut out = Vec::new();
        let msg = format!("[{k},{k}]");
        n.normalize(msg.as_bytes(), None, &ctx, &mut out).unwrap();
        assert_eq!(out[0].event_id, "gw/0@7#1.0");
        assert_eq!(out[1].event_id, "gw/0@7#2.0");
    }

    /// A team adds a gateway format with a mapping file alone: no code change, no rebuild.
    /// A mapping file named like a built-in one replaces it: here an operator whose NGINX authenticates users
    /// itself (`auth_request`) declares `remote_user` authenticated, and only then does it vouch for the user.
    #[test]
    fn a_mapping_file_with_a_built_in_name_replaces_it() {
        let line = br#"{"time_iso8601":"2026-11-02T08:00:00+00:00","remote_addr":"198.51.100.8","remote_user":"ann@example.com","request_method":"GET","request_uri":"/r/7","status":"200","body_bytes_sent":"10","http_user_agent":"curl","request_id":"7c1d","host":"h","http_x_token_id":"-"}"#;
        let vouched = |n: &Normalize| {
            let ctx = Context::new(Provenance::None, Ts(0));
            let mut out = Vec::new();
            n.normalize(line, None, &ctx, &mut out).unwrap();
            out[0].principal.vouched_by.is_some()
        };
        assert!(!vouched(
            &Normalize::new(&NormalizeConfig::default()).unwrap()
        ));
        let dir = std::env::temp_dir().join(format!("quench-replace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = include_str!("../../schemas/mappings/nginx_json.toml").replacen(
            "[fields]",
            "authenticated = [\"principal.id\"]\n\n[fields]",
            1,
        );
        std::fs::write(dir.join("nginx_json.toml"), text).unwrap();
        let n = Normalize::new(&NormalizeConfig {
            mappings_dir: Some(dir.clone()),
            ..Default::default()
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(vouched(&n));
    }

    #[test]
    fn a_mapping_file_in_the_mappings_dir_adds_a_new_gateway_format() {
        let dir = std::env::temp_dir().join(format!("quench-mappings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("traefik.toml"),
            r#"
name = "traefik_json"
family = "gateway"
vendor = "traefik"
detect = ["RouterName", "DownstreamStatus"]
category = "api_request"
principal_kind = "service"
[fields]
event_time = "StartUTC"
"network.ip" = "ClientHost"
"principal.id" = { path = "request_X-User", ignore = [""] }
"session.token_id" = "request_X-Token-Id"
"resource.app" = "ServiceName"
http_status = "DownstreamStatus"
"resource.bytes" = "DownstreamContentSize"
"#,
        )
        .unwrap();
        let cfg = NormalizeConfig {
            mappings_dir: Some(dir.clone()),
            ..Default::default()
        };
        let n = Normalize::new(&cfg).unwrap();
        let raw = r#"{"StartUTC":"2026-11-02T08:00:00.5Z","ClientHost":"10.9.8.7","RouterName":"api@docker","ServiceName":"billing@docker","DownstreamStatus":502,"DownstreamContentSize":77,"request_X-User":"svc-42","request_X-Token-Id":"tok-t1"}"#;
        let ctx = Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        assert_eq!(
            n.normalize(raw.as_bytes(), None, &ctx, &mut out).unwrap(),
            "traefik_json"
        );
        let ev = &out[0];
        assert_eq!(ev.event_time, Ts::parse("2026-11-02T08:00:00.5Z").unwrap());
        assert_eq!(
            (ev.category, ev.outcome),
            (
                crate::event::Category::ApiRequest,
                crate::event::Outcome::Failure
            )
        );
        assert_eq!(ev.session.token_id.as_deref(), Some("tok-t1"));
        assert_eq!(ev.principal.id.as_deref(), Some("svc-42"));
        assert_eq!(ev.resource.bytes, Some(77));
        assert_eq!(ev.source.vendor, "traefik");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_mapping_may_not_take_a_built_in_format_name() {
        let dir =
            std::env::temp_dir().join(format!("quench-mappings-clash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("okta.toml"), "name = \"okta\"\nfamily = \"idp\"\nvendor = \"x\"\ndetect = [\"a\"]\ncategory = \"login\"\n[fields]\nevent_time = \"t\"\n").unwrap();
        let e = Normalize::new(&NormalizeConfig {
            mappings_dir: Some(dir.clone()),
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("okta") && e.contains("built-in"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
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
