//! The `events` table's rows as the messages they came from: on the pipeline's thread each stored event is kept as
//! its message's bytes (copied once per message) and what correlation added to it; the writer's thread normalizes
//! the message again and correlates the event again from that, then records it as [`EventRows`] does.
//!
//! In: the messages the pipeline read (bytes, pinned format, provenance, ingest time), and per stored event its
//! place among the message's events, its event time and what correlation filled in ([`Filled`]). Out: the same
//! correlated [`SessionEvent`]s on the writer's thread, pushed into an [`EventRows`]. State: the messages since the
//! last take in one byte buffer; their topics, paths and pinned formats and the strings correlation filled in, in
//! another; and one entry per stored event.
//!
//! Why: copying every value of every event (60 columns, some 1,700 instructions and the cache lines they write)
//! was most of what the store cost the pipeline's thread. Normalizing is a function of the message, its pinned
//! format, provenance and ingest time alone (the normalize stage keeps no state), and a correlated event is a
//! function of the normalized event and what correlation filled in ([`crate::correlate::Attribution`]); so the
//! writer can make the event again, and the pipeline's thread only copies the message once and the few strings
//! correlation filled in. An event made differently (another event time, or none) is counted and not stored
//! ([`MessageRows::make_into`]): never a silently different row.

use super::*;
use crate::correlate::{Filled, FilledWho};
use crate::event::{Family, PrincipalKind};
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
    /// How many events the message made.
    pub events: usize,
}

/// A message is kept as itself only when it made at most this many events, is at most [`MAX_KEPT_BYTES`] and is
/// not gzip-compressed; its events are otherwise recorded value by value. The writer normalizes a kept message
/// once per chunk its events are in, so a message of thousands of events (a JSON array, a gzip file of a log)
/// would cost it that many normalizations per chunk; and a chunk's bytes must bound what the writer makes of it.
pub const MAX_KEPT_EVENTS: usize = 16;

/// See [`MAX_KEPT_EVENTS`].
pub const MAX_KEPT_BYTES: usize = 64 << 10;

/// What one event made again may hold beyond its message's bytes, counted towards a chunk's bytes: the values
/// enrichment and correlation add (a place's names, an attributed principal and job, each at most 2 KiB).
const ADDED_BYTES: usize = 8 << 10;

impl Message<'_> {
    /// Whether its events may be kept as the message (see [`MAX_KEPT_EVENTS`]).
    pub fn keepable(&self) -> bool {
        self.events <= MAX_KEPT_EVENTS
            && self.raw.len() <= MAX_KEPT_BYTES
            && !self.raw.starts_with(&[0x1f, 0x8b])
    }
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
/// writer makes it again) and what correlation added ([`Filled`]), its strings copied into `text`: no string the
/// pipeline's state shares crosses to the writer's thread per event (no reference count written on both threads,
/// no string allocated on one and freed on the other).
struct Stored {
    message: u32,
    index: u32,
    event_time: Ts,
    job: Option<(u32, u32)>,
    who: Option<KeptWho>,
    drop_claim: bool,
    client_peers: Option<u8>,
}

/// [`FilledWho`], its strings in `text`.
struct KeptWho {
    id: (u32, u32),
    kind: PrincipalKind,
    vendor: (u32, u32),
    family: Family,
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
    /// The most bytes the events kept may hold once made again: per event, its message's bytes and
    /// [`ADDED_BYTES`].
    bound: usize,
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
            bound: 0,
        }
    }

    /// Stored events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The most bytes the events kept may hold once made again (their messages' bytes, each counted once per
    /// event, and what enrichment and correlation may add), and the texts kept with them.
    pub fn bytes_len(&self) -> usize {
        self.bound + self.text.len()
    }

    pub fn clear(&mut self) {
        self.raw.clear();
        self.text.clear();
        self.messages.clear();
        self.events.clear();
        self.last = None;
        self.bound = 0;
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

    /// Keep event `index` of message `m`, correlated with what `filled` says; the message's bytes the first time. Whether it
    /// was kept (a message whose topic or path would pass 4 GiB of text is not).
    pub fn push(
        &mut self,
        m: &Message<'_>,
        index: usize,
        event_time: Ts,
        filled: &Filled<'_>,
    ) -> bool {
        // what correlation filled in first: a failure then leaves no message without its event
        let job = match filled.job {
            Some(j) => match self.text(j) {
                Some(r) => Some(r),
                None => return false,
            },
            None => None,
        };
        let who = match &filled.who {
            Some(w) => match (self.text(w.id), self.text(w.vendor)) {
                (Some(id), Some(vendor)) => Some(KeptWho {
                    id,
                    kind: w.kind,
                    vendor,
                    family: w.family,
                }),
                _ => return false,
            },
            None => None,
        };
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
            job,
            who,
            drop_claim: filled.drop_claim,
            client_peers: filled.client_peers,
        });
        self.bound += m.raw.len() + ADDED_BYTES;
        true
    }

    fn str(&self, (a, b): (u32, u32)) -> Result<&str, ArrowError> {
        self.text
            .get(a as usize..b as usize)
            .ok_or_else(|| bad("a kept message's text out of range".into()))
    }

    /// Normalize every kept message again with `normalize`, correlate its stored events again and push them
    /// into `rows`, in the order they were stored; then forget the messages (keeping the buffers). An event that
    /// comes out differently (another event time, or none) is not stored: never a row other than the one the
    /// pipeline decided on. Each is logged and counted in the returned number (and in
    /// `quench_evidence_events_unmade_total`); the chunk's other events are stored, and the pipeline goes on.
    /// Normalizing is a function of the message, so this should never happen; failing the whole store instead
    /// would stop `run` at its next checkpoint, and again on every restart at the same message.
    pub fn make_into(
        &mut self,
        normalize: &Normalize,
        rows: &mut EventRows,
    ) -> Result<u64, ArrowError> {
        let r = self.make(normalize, rows);
        self.clear();
        r
    }

    fn make(&self, normalize: &Normalize, rows: &mut EventRows) -> Result<u64, ArrowError> {
        let mut unmade = 0;
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
                        tracing::error!(at = %ctx.provenance, error = %e, "evidence store: a message that normalized on the pipeline's thread did not on the writer's; its event is not stored");
                        unmade += 1;
                        continue;
                    }
                    (Ok(_), _) => {
                        tracing::error!(at = %ctx.provenance, index = s.index, "evidence store: a message made other events on the writer's thread than on the pipeline's; the event is not stored");
                        unmade += 1;
                        continue;
                    }
                };
                let filled = Filled {
                    job: s.job.map(|j| self.str(j)).transpose()?,
                    who: match &s.who {
                        Some(w) => Some(FilledWho {
                            id: self.str(w.id)?,
                            kind: w.kind,
                            vendor: self.str(w.vendor)?,
                            family: w.family,
                        }),
                        None => None,
                    },
                    drop_claim: s.drop_claim,
                    client_peers: s.client_peers,
                };
                filled.apply(ev);
                rows.push(ev);
            }
        }
        if stored.next().is_some() {
            return Err(bad("stored events of no kept message".into()));
        }
        Ok(unmade)
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
            events: 1,
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
        assert!(m.push(&message(&p, 1), 0, t, &Filled::default()));
        assert!(m.push(&message(&p, 1), 0, t, &Filled::default()));
        assert_eq!((m.raw.len(), m.text.as_str()), (OKTA.len(), "okta"));
        assert!(m.push(&message(&p, 2), 0, t, &Filled::default()));
        assert_eq!((m.raw.len(), m.text.as_str()), (2 * OKTA.len(), "oktaokta"));
        let mut rows = EventRows::default();
        assert_eq!(m.make_into(&n, &mut rows).unwrap(), 0);
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
    fn an_event_made_differently_on_the_writer_is_counted_and_not_stored_and_the_rest_are() {
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let p = Provenance::None;
        let t = event_time(&n);
        let mut m = MessageRows::default();
        // an event the message does not have
        assert!(m.push(&message(&p, 1), 1, t, &Filled::default()));
        // another event time than the pipeline's thread saw
        assert!(m.push(&message(&p, 2), 0, Ts(t.0 + 1), &Filled::default()));
        // a message that no longer normalizes
        let broken = Message {
            raw: b"{\"not\":\"a log\"}",
            ..message(&p, 3)
        };
        assert!(m.push(&broken, 0, t, &Filled::default()));
        // and one made as it was
        assert!(m.push(&message(&p, 4), 0, t, &Filled::default()));
        let mut rows = EventRows::default();
        assert_eq!(m.make_into(&n, &mut rows).unwrap(), 3);
        assert_eq!(rows.len(), 1);
        let b = rows.take().unwrap();
        assert_eq!(b.num_rows(), 1);
        assert_eq!(super::super::Cols::new(&b).str("event_id", 0), Some("m-1"));
    }

    #[test]
    fn large_many_event_and_compressed_messages_are_not_kept_as_messages() {
        let p = Provenance::None;
        assert!(message(&p, 1).keepable());
        let many = Message {
            events: MAX_KEPT_EVENTS + 1,
            ..message(&p, 1)
        };
        assert!(!many.keepable());
        let big = vec![b' '; MAX_KEPT_BYTES + 1];
        let big = Message {
            raw: &big,
            ..message(&p, 1)
        };
        assert!(!big.keepable());
        let gzip = Message {
            raw: &[0x1f, 0x8b, 8, 0],
            ..message(&p, 1)
        };
        assert!(!gzip.keepable());
    }

    #[test]
    fn a_chunk_counts_each_kept_event_as_its_whole_message_and_what_may_be_added() {
        let p = Provenance::None;
        let mut m = MessageRows::default();
        for _ in 0..3 {
            assert!(m.push(&message(&p, 1), 0, Ts(0), &Filled::default()));
        }
        assert_eq!(m.bytes_len(), 3 * (OKTA.len() + ADDED_BYTES));
    }
}
