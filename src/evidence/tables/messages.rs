//! The `events` table's rows as the messages they came from: on the pipeline's thread each stored event is kept as
//! its message's bytes (copied once per message) and what correlation added to it; the writer's thread normalizes
//! the message again and correlates the event again from that, then records it as [`EventRows`] does.
//!
//! In: the messages the pipeline read (bytes, pinned format, provenance, ingest time), and per stored event its
//! place among the message's events, its event time and its [`Attribution`]. Out: the same correlated
//! [`SessionEvent`]s on the writer's thread, pushed into an [`EventRows`]. State: the messages since the last take
//! in one byte buffer, their topics, paths and pinned formats in another, and one entry per stored event.
//!
//! Why: copying every value of every event (60 columns, some 1,700 instructions and the cache lines they write)
//! was most of what the store cost the pipeline's thread. Normalizing is a function of the message, its pinned
//! format, provenance and ingest time alone (the normalize stage keeps no state), and a correlated event is a
//! function of the normalized event and its [`Attribution`]; so the writer can make the event again, and the
//! pipeline's thread only copies the message once. An event made differently (fewer events, another event time)
//! fails the chunk as any write failure does: never a silently different row.

use super::*;
use crate::correlate::Attribution;
use crate::normalize::{Context, Envelopes, Normalize};

/// One message as the pipeline read it.
pub struct Message<'m> {
    pub raw: &'m [u8],
    /// The format its topic is pinned to, if any.
    pub pinned: Option<&'m str>,
    pub provenance: &'m Provenance<'m>,
    pub ingest_time: Ts,
    /// Tells messages apart (the pipeline's count of messages read): the bytes are copied for the first stored
    /// event of a message only.
    pub seq: u64,
}

/// Where one message's strings are in [`MessageRows::text`], and its numbers.
#[derive(Clone, Copy)]
enum At {
    None,
    Kafka {
        topic: (u32, u32),
        partition: i32,
        offset: i64,
    },
    File {
        path: (u32, u32),
        line: u64,
    },
}

struct Recorded {
    /// Where its bytes end in `raw` (they start where the message before ends).
    end: usize,
    pinned: Option<(u32, u32)>,
    at: At,
    ingest_time: Ts,
}

/// One stored event: its message, its place among the message's events, its event time (checked when the
/// writer makes it again) and what correlation added.
struct Stored {
    message: u32,
    index: u32,
    event_time: Ts,
    attribution: Attribution,
}

/// Stored events kept as their messages (see the module's documentation).
#[derive(Default)]
pub struct MessageRows {
    raw: Vec<u8>,
    text: String,
    messages: Vec<Recorded>,
    events: Vec<Stored>,
    /// The seq of the last message copied.
    last: Option<u64>,
}

fn bad(what: String) -> ArrowError {
    ArrowError::SchemaError(format!("events: {what}"))
}

impl MessageRows {
    pub fn with_capacity(rows: usize) -> MessageRows {
        MessageRows {
            raw: Vec::with_capacity(rows * 1024),
            text: String::with_capacity(1024),
            messages: Vec::with_capacity(rows),
            events: Vec::with_capacity(rows),
            last: None,
        }
    }

    /// Stored events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The bytes of messages kept.
    pub fn bytes_len(&self) -> usize {
        self.raw.len() + self.text.len()
    }

    pub fn clear(&mut self) {
        self.raw.clear();
        self.text.clear();
        self.messages.clear();
        self.events.clear();
        self.last = None;
    }

    pub fn shrink_to(&mut self, bytes: usize) {
        self.raw.shrink_to(bytes);
        self.text.shrink_to(bytes / 64);
        self.messages.shrink_to(bytes / 256);
        self.events.shrink_to(bytes / 256);
    }

    /// `text`'s range of `v` after appending it, or none past 4 GiB (a chunk is sent long before).
    fn text(&mut self, v: &str) -> Option<(u32, u32)> {
        let a = u32::try_from(self.text.len()).ok()?;
        let b = u32::try_from(self.text.len() + v.len()).ok()?;
        self.text.push_str(v);
        Some((a, b))
    }

    /// Keep event `index` of message `m` (made with `attribution`); the message's bytes the first time. Whether it
    /// was kept (a message whose topic or path would pass 4 GiB of text is not).
    pub fn push(
        &mut self,
        m: &Message<'_>,
        index: usize,
        event_time: Ts,
        attribution: Attribution,
    ) -> bool {
        if self.last != Some(m.seq) || self.messages.is_empty() {
            let at = match m.provenance {
                Provenance::None => Some(At::None),
                Provenance::Kafka {
                    topic,
                    partition,
                    offset,
                } => self.text(topic).map(|topic| At::Kafka {
                    topic,
                    partition: *partition,
                    offset: *offset,
                }),
                Provenance::File { path, line } => {
                    self.text(path).map(|path| At::File { path, line: *line })
                }
            };
            let pinned = match m.pinned {
                Some(p) => self.text(p).map(Some),
                None => Some(None),
            };
            let (Some(at), Some(pinned)) = (at, pinned) else {
                return false;
            };
            self.raw.extend_from_slice(m.raw);
            self.messages.push(Recorded {
                end: self.raw.len(),
                pinned,
                at,
                ingest_time: m.ingest_time,
            });
            self.last = Some(m.seq);
        }
        let (Ok(message), Ok(index)) =
            (u32::try_from(self.messages.len() - 1), u32::try_from(index))
        else {
            return false;
        };
        self.events.push(Stored {
            message,
            index,
            event_time,
            attribution,
        });
        true
    }

    fn str(&self, (a, b): (u32, u32)) -> Result<&str, ArrowError> {
        self.text
            .get(a as usize..b as usize)
            .ok_or_else(|| bad("a kept message's text out of range".into()))
    }

    /// Normalize every kept message again with `normalize`, correlate its stored events again and push them
    /// into `rows`, in the order they were stored; then forget the messages (keeping the buffers).
    pub fn make_into(
        &mut self,
        normalize: &Normalize,
        rows: &mut EventRows,
    ) -> Result<(), ArrowError> {
        let r = self.make(normalize, rows);
        self.clear();
        r
    }

    fn make(&self, normalize: &Normalize, rows: &mut EventRows) -> Result<(), ArrowError> {
        let mut start = 0;
        let mut stored = self.events.iter().peekable();
        for (i, m) in self.messages.iter().enumerate() {
            let raw = self
                .raw
                .get(start..m.end)
                .ok_or_else(|| bad("a kept message out of range".into()))?;
            start = m.end;
            let provenance = match m.at {
                At::None => Provenance::None,
                At::Kafka {
                    topic,
                    partition,
                    offset,
                } => Provenance::Kafka {
                    topic: Text::Borrowed(self.str(topic)?),
                    partition,
                    offset,
                },
                At::File { path, line } => Provenance::File {
                    path: Text::Borrowed(self.str(path)?),
                    line,
                },
            };
            let pinned = m.pinned.map(|p| self.str(p)).transpose()?;
            let ctx = Context::new(provenance, m.ingest_time);
            let mut inner = Envelopes::default();
            let mut events = Vec::new();
            let made = normalize.normalize_enveloped(raw, pinned, &ctx, &mut events, &mut inner);
            while let Some(s) = stored.next_if(|s| s.message as usize == i) {
                let ev = match (&made, events.get_mut(s.index as usize)) {
                    (Ok(_), Some(ev)) if ev.event_time == s.event_time => ev,
                    (Err(e), _) => {
                        return Err(bad(format!(
                            "the message at {} normalized on the pipeline's thread but not on the writer's: {e}",
                            ctx.provenance
                        )))
                    }
                    (Ok(_), _) => {
                        return Err(bad(format!(
                            "the message at {} made other events on the writer's thread than on the pipeline's",
                            ctx.provenance
                        )))
                    }
                };
                s.attribution.apply(ev);
                rows.push(ev);
            }
        }
        if stored.next().is_some() {
            return Err(bad("stored events of no kept message".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::NormalizeConfig;

    const OKTA: &str = r#"{"uuid":"m-1","published":"2026-11-02T08:00:00.000Z","eventType":"user.session.start","actor":{"id":"00u1","type":"User","alternateId":"alice@example.com"},"client":{"ipAddress":"73.1.2.3"},"authenticationContext":{"externalSessionId":"102abc"},"outcome":{"result":"SUCCESS"}}"#;

    fn message<'m>(p: &'m Provenance<'m>, seq: u64) -> Message<'m> {
        Message {
            raw: OKTA.as_bytes(),
            pinned: None,
            provenance: p,
            ingest_time: Ts(1_793_000_000_000),
            seq,
        }
    }

    /// The event time of the message's event, as the pipeline's thread normalizes it.
    fn event_time(n: &Normalize) -> Ts {
        let ctx = Context::new(Provenance::None, Ts(1_793_000_000_000));
        let mut inner = Envelopes::default();
        let mut out = Vec::new();
        n.normalize_enveloped(OKTA.as_bytes(), None, &ctx, &mut out, &mut inner)
            .unwrap();
        assert_eq!(out.len(), 1);
        out[0].event_time
    }

    #[test]
    fn a_message_is_copied_once_for_all_its_stored_events_and_made_again_in_order() {
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let p = Provenance::Kafka {
            topic: "okta".into(),
            partition: 3,
            offset: 77,
        };
        let t = event_time(&n);
        let mut m = MessageRows::default();
        assert!(m.push(&message(&p, 1), 0, t, Attribution::default()));
        assert!(m.push(&message(&p, 1), 0, t, Attribution::default()));
        assert_eq!(m.bytes_len(), OKTA.len() + "okta".len());
        assert!(m.push(&message(&p, 2), 0, t, Attribution::default()));
        assert_eq!(m.bytes_len(), 2 * (OKTA.len() + "okta".len()));
        let mut rows = EventRows::default();
        m.make_into(&n, &mut rows).unwrap();
        assert!(m.is_empty() && m.bytes_len() == 0);
        assert_eq!(rows.len(), 3);
        let b = rows.take().unwrap();
        let c = super::super::Cols::new(&b);
        for i in 0..3 {
            assert_eq!(c.str("event_id", i), Some("m-1"));
            assert_eq!(c.str("provenance", i), Some("okta/3@77"));
            assert_eq!(c.str("principal", i), Some("alice@example.com"));
        }
    }

    #[test]
    fn a_message_that_makes_other_events_on_the_writer_fails_the_chunk_instead_of_storing_them() {
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let p = Provenance::None;
        let t = event_time(&n);
        // an event the message does not have
        let mut m = MessageRows::default();
        assert!(m.push(&message(&p, 1), 1, t, Attribution::default()));
        let e = m.make_into(&n, &mut EventRows::default()).unwrap_err();
        assert!(e.to_string().contains("made other events"), "{e}");
        // another event time than the pipeline's thread saw
        assert!(m.push(&message(&p, 1), 0, Ts(t.0 + 1), Attribution::default()));
        let mut rows = EventRows::default();
        let e = m.make_into(&n, &mut rows).unwrap_err();
        assert!(e.to_string().contains("made other events"), "{e}");
        assert!(rows.is_empty());
        // a message that no longer normalizes
        let mut m = MessageRows::default();
        let broken = Message {
            raw: b"{\"not\":\"a log\"}",
            ..message(&p, 1)
        };
        assert!(m.push(&broken, 0, t, Attribution::default()));
        let e = m.make_into(&n, &mut EventRows::default()).unwrap_err();
        assert!(e.to_string().contains("but not on the writer's"), "{e}");
    }
}
