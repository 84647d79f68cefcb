//! Messages as log pipelines deliver them: gzip-compressed (a streamed log file forwarded whole), and records
//! inside a pipeline's envelope (see [`super::envelope`]), unwrapped before a format reads them.
//!
//! In: one message's bytes. Out: the events of the record(s) inside, borrowed from the message or from an
//! unwrapped copy kept in [`Envelopes`]. State: none.

use super::*;

/// The first two bytes of a gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How many times its compressed size a gzip message may inflate to (JSON audit logs compress 5 to 20 times).
const MAX_GZIP_RATIO: usize = 64;

/// The UTF-8 text of a gzip stream (one member or several, as files written in appends are), refused when it
/// would inflate beyond `limit` bytes (a small message must not become gigabytes).
fn gunzip(raw: &[u8], limit: usize) -> Result<String, NormalizeError> {
    use std::io::Read;
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(raw)
        .take((limit as u64).saturating_add(1))
        .read_to_end(&mut text)
        .map_err(|e| NormalizeError::invalid("gzip", e))?;
    if text.len() > limit {
        return Err(NormalizeError::invalid(
            "gzip",
            format!(
                "inflates beyond {limit} bytes (normalize.max_inflated_bytes, and at most \
                 {MAX_GZIP_RATIO} times its compressed size)"
            ),
        ));
    }
    String::from_utf8(text).map_err(|e| NormalizeError::NotJson(e.to_string()))
}

impl Normalize {
    /// [`Normalize::normalize`], and when no format takes the message as it is, the record inside it if it is a
    /// log pipeline's envelope (ECS `event.original`, Splunk HEC, Vector, Fluent Bit, Cribl, Kafka Connect,
    /// CloudEvents, Pub/Sub; see [`envelope`]), and inside that one if it is an envelope again. A record that had
    /// to be unescaped or decoded is kept in `inner` (one slot per level), which the events then borrow from.
    pub fn normalize_enveloped<'a>(
        &self,
        raw: &'a [u8],
        pinned: Option<&str>,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
        inner: &'a mut Envelopes,
    ) -> Result<&'static str, NormalizeError> {
        let Envelopes { levels, inflated } = inner;
        if raw.len() > self.max_message_bytes {
            return Err(NormalizeError::TooLarge {
                size: raw.len(),
                limit: self.max_message_bytes,
            });
        }
        // a gzip member (a streamed log file forwarded whole): its text, within `max_inflated_bytes` and at the
        // compression ratio of real logs at most (a few kilobytes of repeated bytes must not become megabytes of
        // events)
        let raw = if raw.starts_with(&GZIP_MAGIC) {
            let limit = self
                .max_inflated_bytes
                .min(raw.len().saturating_mul(MAX_GZIP_RATIO));
            inflated.insert(gunzip(raw, limit)?).as_bytes()
        } else {
            raw
        };
        let first = self.normalize_sized(raw, pinned, ctx, out);
        match first {
            Err(e @ (NormalizeError::UnknownFormat(_) | NormalizeError::Invalid { .. })) => {
                let Ok(text) = std::str::from_utf8(raw) else {
                    return Err(e);
                };
                let text = text.trim();
                match self
                    .unwrap_into(text, pinned, ctx, out, levels, true)
                    .unwrap_or(Err(e))
                {
                    // an ECS document whose vendor record is gone (or unreadable): its parsed fields, as claims
                    Err(e) if pinned.is_none_or(|p| p == "auto") && ecs::looks_like(text) => {
                        let start = out.len();
                        self.normalize_sized(raw, Some(ecs::NAME), ctx, out)
                            .map_err(|ecs_error| {
                                out.truncate(start);
                                NormalizeError::Invalid {
                                    format: ecs::NAME,
                                    reason: format!("{ecs_error}; read as an envelope: {e}"),
                                }
                            })
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// The record inside envelope `text` (none when it is no envelope), unwrapping further while slots remain. The
    /// events keep their format's authority only when the topic is pinned to a format (the operator says what it
    /// carries) or every envelope level's `kind:origin` is in `normalize.trusted_envelopes`; otherwise whatever a
    /// shipper carried (a container's stdout, a tailed file) could speak with an IdP's voice.
    fn unwrap_into<'a>(
        &self,
        text: &'a str,
        pinned: Option<&str>,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
        slots: &'a mut [Option<String>],
        trusted_so_far: bool,
    ) -> Option<Result<&'static str, NormalizeError>> {
        let (Some(u), Some((slot, rest))) = (envelope::unwrap(text), slots.split_first_mut())
        else {
            return None;
        };
        let name = u.kind;
        let origin = format!("{}:{}", u.kind, u.origin);
        let trusted = trusted_so_far
            && (pinned.is_some_and(|p| p != "auto")
                || self
                    .trusted_envelopes
                    .iter()
                    .any(|g| pattern::glob(g, &origin)));
        let record: &'a str = match u.record {
            std::borrow::Cow::Borrowed(b) => b,
            std::borrow::Cow::Owned(o) => slot.insert(o).as_str(),
        };
        let named = |e: NormalizeError| NormalizeError::Invalid {
            format: name,
            reason: format!("the record inside the {name} envelope: {e}"),
        };
        let start = out.len();
        // a topic's pin wins; else the format the envelope's origin names, if any
        let inner_pin = pinned
            .filter(|p| *p != "auto")
            .or_else(|| envelope::format_of(u.kind, &u.origin))
            .filter(|f| self.formats.iter().any(|(n, _)| n == f));
        Some(
            match self.normalize(record.as_bytes(), inner_pin.or(pinned), ctx, out) {
                Err(e @ (NormalizeError::UnknownFormat(_) | NormalizeError::Invalid { .. })) => {
                    self.unwrap_into(record.trim(), pinned, ctx, out, rest, trusted)
                        .unwrap_or(Err(e))
                        .map_err(named)
                }
                Ok(f) => {
                    if !trusted {
                        for ev in &mut out[start..] {
                            ev.unvouch_all();
                        }
                    }
                    Ok(f)
                }
                other => other.map_err(named),
            },
        )
    }

    /// `{"records": [...]}` and nothing else that a format would claim.
    pub(super) fn envelope_only(&self, text: &str) -> bool {
        top_level_keys(text).len() == 1
    }
}
