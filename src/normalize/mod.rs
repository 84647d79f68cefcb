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
mod stage;

pub use stage::{Envelopes, Normalize, NormalizeConfig};

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
