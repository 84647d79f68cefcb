//! The normalize stage: every built format, auto-detection, per-source pinning, envelopes and text formats, and
//! each source's authority applied to what it says.
//!
//! In: one raw message, the format pinned for its source (if any) and its [`Context`]. Out: the message's
//! [`SessionEvent`]s, or the [`NormalizeError`] that refuses it. State: the built formats and the hint finders,
//! fixed at start-up; nothing per message.

use super::*;

/// Buffers for records unwrapped from envelopes (one per level, [`envelope::MAX_DEPTH`] levels) and for a
/// gzip-compressed message's text, which the events of a message borrow from: create one per message, before its
/// events.
#[derive(Default)]
pub struct Envelopes {
    pub(super) levels: [Option<String>; envelope::MAX_DEPTH],
    pub(super) inflated: Option<String>,
}

/// The normalize stage: every built format, auto-detection and per-source pinning.
pub struct Normalize {
    pub(super) formats: Vec<(&'static str, Box<dyn Normalizer>)>,
    pub(super) max_message_bytes: usize,
    pub(super) max_inflated_bytes: usize,
    pub(super) max_age_secs: u64,
    /// Some format (a declarative mapping) detects by arbitrary top-level keys.
    pub(super) wants_keys: bool,
    pub(super) enrich: enrich::Enrich,
    /// `normalize.trusted_envelopes`.
    pub(super) trusted_envelopes: Vec<String>,
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
    pub(super) fn normalize_sized<'a>(
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
    pub(super) fn normalize_text<'a>(
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
    pub(super) fn detect_recased(
        &self,
        text: &str,
    ) -> Option<&(&'static str, Box<dyn Normalizer>)> {
        if !text.bytes().any(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let probe = Probe::deserialize(casefold::CaseFold(&mut de)).ok()?;
        self.formats.iter().find(|(_, n)| n.sniff(&probe))
    }

    /// Plain-text log lines (Envoy's default access log …): the message, or each of its lines, when a text
    /// format's hint takes it (and the topic is not pinned to another format). `None` when none does.
    pub(super) fn normalize_text_lines<'a>(
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
    pub(super) fn apply_authority(&self, ev: &mut SessionEvent<'_>) {
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
