//! Envelopes: the wrappers log pipelines put around a vendor's record on its way to Kafka.
//!
//! In: a message no format recognised as it is. Out: the record inside it, when the message is one of these
//! envelopes, with the envelope's name; else nothing. State: none.
//!
//! | envelope | where the record is |
//! |---|---|
//! | Elastic Agent, Filebeat, Logstash (ECS) | `event.original` (a string), else `message` (a string) |
//! | Splunk HTTP Event Collector | `event` (an object or a string), beside `time`, `host`, `sourcetype` |
//! | Vector | `message` (a string) |
//! | Fluent Bit, Fluentd | `log` (a string), else `message` |
//! | Cribl Stream | `_raw` (a string) |
//! | Kafka Connect JSON converter with schemas | `payload` (an object or a string) beside `schema` |
//! | CloudEvents (structured mode) | `data` (an object or a string), or `data_base64` |
//! | Google Cloud Pub/Sub push | `message.data` (base64) |
//!
//! An envelope is only tried after the message failed as a record of its own, so a vendor record that happens to
//! have a `message` or `event` field is never unwrapped. The record inside is normalized like any other (its own
//! format's authority applies, not the envelope's). Envelopes inside envelopes (a HEC event holding a Filebeat
//! document) are unwrapped [`MAX_DEPTH`] levels deep.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Envelope levels unwrapped at most.
pub const MAX_DEPTH: usize = 2;

#[derive(Deserialize)]
struct Outer<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    log: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "_raw")]
    raw: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(default)]
    schema: Option<IgnoredAny>,
    #[serde(default)]
    specversion: Option<IgnoredAny>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    data_base64: Option<String>,
    #[serde(default)]
    sourcetype: Option<IgnoredAny>,
    #[serde(default)]
    subscription: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct EcsEvent {
    #[serde(default)]
    original: Option<String>,
}

#[derive(Deserialize)]
struct PubSubMessage {
    data: String,
}

/// The record inside `text` and the envelope's name, if `text` is an envelope holding a JSON record.
pub fn unwrap(text: &str) -> Option<(Cow<'_, str>, &'static str)> {
    let o: Outer<'_> = serde_json::from_str(text).ok()?;
    if o.specversion.is_some() {
        if let Some(d) = o.data_base64.as_deref() {
            return decoded(d).map(|s| (Cow::Owned(s), "cloudevents"));
        }
        return o.data.and_then(record).map(|r| (r, "cloudevents"));
    }
    if o.schema.is_some() {
        if let Some(r) = o.payload.and_then(record) {
            return Some((r, "kafka_connect"));
        }
    }
    if o.subscription.is_some() {
        if let Some(m) = o.message {
            let m: PubSubMessage = serde_json::from_str(m.get()).ok()?;
            return decoded(&m.data).map(|s| (Cow::Owned(s), "pubsub"));
        }
    }
    if let Some(e) = o.event {
        if let Ok(EcsEvent {
            original: Some(orig),
        }) = serde_json::from_str::<EcsEvent>(e.get())
        {
            return json_text(orig).map(|s| (Cow::Owned(s), "ecs"));
        }
    }
    if let Some(r) = o.raw.and_then(string_record) {
        return Some((r, "cribl"));
    }
    if let Some(r) = o.log.and_then(string_record) {
        return Some((r, "fluent_bit"));
    }
    if let Some(r) = o.message.and_then(string_record) {
        return Some((r, "message"));
    }
    if let Some(e) = o.event {
        let name = if o.sourcetype.is_some() {
            "splunk_hec"
        } else {
            "event"
        };
        return record(e).map(|r| (r, name));
    }
    None
}

/// A JSON value holding a record: an object or array (borrowed as it is), or a string holding one.
fn record(v: &RawValue) -> Option<Cow<'_, str>> {
    let t = v.get().trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        return Some(Cow::Borrowed(v.get()));
    }
    string_record(v)
}

/// A JSON string whose text is a JSON record.
fn string_record(v: &RawValue) -> Option<Cow<'_, str>> {
    let s: String = serde_json::from_str(v.get()).ok()?;
    json_text(s).map(Cow::Owned)
}

fn json_text(s: String) -> Option<String> {
    let t = s.trim_start();
    (t.starts_with('{') || t.starts_with('[')).then_some(s)
}

fn decoded(b64: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    json_text(String::from_utf8(bytes).ok()?)
}

#[cfg(test)]
mod tests {
    use crate::event::{Provenance, SessionEvent, Ts};
    use crate::normalize::{Context, Normalize, NormalizeConfig};

    const OKTA: &str = r#"{"uuid":"env-1","published":"2026-11-02T08:00:00.000Z","eventType":"user.session.start","actor":{"id":"00ualice","type":"User","alternateId":"alice@example.com"},"client":{"ipAddress":"203.0.113.7","userAgent":{"rawUserAgent":"Mozilla/5.0 (Macintosh) Firefox/132.0"}},"outcome":{"result":"SUCCESS"},"authenticationContext":{"externalSessionId":"102abc"}}"#;

    /// (format, event id, principal, time, session) of what `raw` normalizes to, or the error.
    fn read(raw: &str, pinned: Option<&str>) -> Result<Vec<String>, String> {
        let n = Normalize::new(&NormalizeConfig::default()).unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
        let mut inner = Default::default();
        let mut out: Vec<SessionEvent<'_>> = Vec::new();
        let f = n
            .normalize_enveloped(raw.as_bytes(), pinned, &ctx, &mut out, &mut inner)
            .map_err(|e| e.to_string())?;
        Ok(out
            .iter()
            .map(|e| {
                format!(
                    "{f} {} {:?} {} {:?} {:?}",
                    e.event_id,
                    e.principal.email,
                    e.event_time.0,
                    e.session.session_id,
                    e.principal
                        .vouched_by
                        .as_ref()
                        .map(|v| v.vendor.to_string())
                )
            })
            .collect())
    }

    fn quoted(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn each_pipelines_envelope_gives_the_record_inside_as_it_is() {
        let bare = read(OKTA, None).unwrap();
        let q = quoted(OKTA);
        let envelopes = [
            format!(
                r#"{{"@timestamp":"2026-11-02T08:00:01Z","event":{{"kind":"event","original":{q}}},"data_stream":{{"dataset":"okta.system"}}}}"#
            ),
            format!(
                r#"{{"@timestamp":"2026-11-02T08:00:01Z","message":{q},"agent":{{"type":"filebeat"}}}}"#
            ),
            format!(
                r#"{{"time":1793606401,"host":"okta-poller","source":"okta","sourcetype":"OktaIM2:log","event":{OKTA}}}"#
            ),
            format!(r#"{{"time":1793606401,"sourcetype":"OktaIM2:log","event":{q}}}"#),
            format!(
                r#"{{"message":{q},"timestamp":"2026-11-02T08:00:01Z","source_type":"http_server"}}"#
            ),
            format!(r#"{{"date":1793606401.5,"log":{q}}}"#),
            format!(r#"{{"_raw":{q},"_time":1793606401,"sourcetype":"okta"}}"#),
            format!(r#"{{"schema":{{"type":"string","optional":false}},"payload":{q}}}"#),
            format!(r#"{{"schema":{{"type":"struct","fields":[]}},"payload":{OKTA}}}"#),
            format!(
                r#"{{"specversion":"1.0","id":"ce-1","source":"/okta","type":"com.okta.event","datacontenttype":"application/json","data":{OKTA}}}"#
            ),
            format!(
                r#"{{"specversion":"1.0","id":"ce-2","source":"/okta","type":"com.okta.event","data_base64":"{}"}}"#,
                b64(OKTA)
            ),
            format!(
                r#"{{"message":{{"data":"{}","messageId":"m-1","publishTime":"2026-11-02T08:00:01Z"}},"subscription":"projects/p/subscriptions/okta"}}"#,
                b64(OKTA)
            ),
        ];
        for e in &envelopes {
            assert_eq!(read(e, None).as_ref(), Ok(&bare), "{e}");
            // a topic pinned to the record's format reads it too
            assert_eq!(read(e, Some("okta")).as_ref(), Ok(&bare), "{e}");
        }
    }

    #[test]
    fn an_envelope_inside_an_envelope_is_unwrapped_twice_and_no_further() {
        let bare = read(OKTA, None).unwrap();
        let filebeat = format!(
            r#"{{"@timestamp":"2026-11-02T08:00:01Z","event":{{"original":{}}}}}"#,
            quoted(OKTA)
        );
        let hec = format!(
            r#"{{"time":1793606401,"sourcetype":"filebeat","event":{}}}"#,
            quoted(&filebeat)
        );
        assert_eq!(read(&hec, None), Ok(bare));
        let third = format!(r#"{{"_raw":{},"_time":1}}"#, quoted(&hec));
        let e = read(&third, None).unwrap_err();
        assert!(e.contains("cribl envelope"), "{e}");
    }

    #[test]
    fn a_record_a_format_takes_as_it_is_is_never_unwrapped() {
        // an Okta record carrying another record in a field of its own is read as the outer record
        let other = OKTA.replace("env-1", "env-2").replace("alice", "mallory");
        let outer = OKTA.replacen('{', &format!(r#"{{"message":{},"#, quoted(&other)), 1);
        let got = read(&outer, None).unwrap();
        assert!(
            got[0].contains("env-1") && got[0].contains("alice"),
            "{got:?}"
        );
    }

    #[test]
    fn a_bad_record_inside_an_envelope_is_named_with_the_envelope() {
        let broken = r#"{"uuid":"x","eventType":"user.session.start"}"#;
        let e = read(
            &format!(
                r#"{{"@timestamp":"t","event":{{"original":{}}}}}"#,
                quoted(broken)
            ),
            None,
        )
        .unwrap_err();
        assert!(e.contains("ecs envelope"), "{e}");
        // a message that is no envelope keeps its own error
        let e = read(r#"{"hello":"world"}"#, None).unwrap_err();
        assert!(!e.contains("envelope"), "{e}");
    }
}
