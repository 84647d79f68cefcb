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

/// Deserializes any value (null included) as "the key is present".
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

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
    #[serde(default, deserialize_with = "present")]
    schema: bool,
    #[serde(default, deserialize_with = "present")]
    specversion: bool,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    data_base64: Option<String>,
    /// CloudEvents' event type.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Splunk HEC's and Cribl's source type.
    #[serde(default)]
    sourcetype: Option<String>,
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default)]
    data_stream: Option<Dataset>,
    /// ECS documents carry `@timestamp` at the top.
    #[serde(default, rename = "@timestamp", deserialize_with = "present")]
    at_timestamp: bool,
}

#[derive(Deserialize)]
struct Dataset {
    #[serde(default)]
    dataset: Option<String>,
}

#[derive(Deserialize)]
struct EcsEvent {
    #[serde(default)]
    original: Option<String>,
    #[serde(default)]
    dataset: Option<String>,
}

#[derive(Deserialize)]
struct PubSubMessage {
    data: String,
}

/// What was unwrapped: the record, the envelope's kind, and its origin as the shipper named it (HEC and Cribl
/// `sourcetype`, ECS `event.dataset` or `data_stream.dataset`, the CloudEvents `type`, the Pub/Sub
/// `subscription`; empty when the envelope names none). `normalize.trusted_envelopes` matches `kind:origin`.
pub struct Unwrapped<'a> {
    pub record: Cow<'a, str>,
    pub kind: &'static str,
    pub origin: String,
}

/// The record inside `text`, if `text` is an envelope (a JSON object) holding a JSON record.
pub fn unwrap(text: &str) -> Option<Unwrapped<'_>> {
    fn found<'a>(
        record: Cow<'a, str>,
        kind: &'static str,
        origin: Option<String>,
    ) -> Unwrapped<'a> {
        Unwrapped {
            record,
            kind,
            origin: origin.unwrap_or_default(),
        }
    }
    // an array is a batch, never an envelope (serde would read a struct from it field by field)
    if !text.starts_with('{') {
        return None;
    }
    let o: Outer<'_> = serde_json::from_str(text).ok()?;
    if o.specversion {
        if let Some(d) = o.data_base64.as_deref() {
            return decoded(d).map(|s| found(Cow::Owned(s), "cloudevents", o.kind));
        }
        let kind = o.kind.clone();
        return o
            .data
            .and_then(record)
            .map(|r| found(r, "cloudevents", kind));
    }
    if o.schema {
        if let Some(r) = o.payload.and_then(record) {
            return Some(found(r, "kafka_connect", None));
        }
    }
    if o.subscription.is_some() {
        if let Some(m) = o.message {
            if let Ok(m) = serde_json::from_str::<PubSubMessage>(m.get()) {
                return decoded(&m.data).map(|s| found(Cow::Owned(s), "pubsub", o.subscription));
            }
        }
    }
    // an ECS document (Elastic Agent, Filebeat, Logstash) has `@timestamp` and no source type; a Splunk HEC or
    // Cribl payload's `event` is the sender's, so its `dataset` names no origin
    let ecs_doc = o.at_timestamp && o.sourcetype.is_none();
    let mut dataset = o.data_stream.and_then(|d| d.dataset).filter(|_| ecs_doc);
    if let Some(e) = o.event.filter(|_| ecs_doc) {
        if let Ok(ecs) = serde_json::from_str::<EcsEvent>(e.get()) {
            dataset = ecs.dataset.or(dataset);
            if let Some(s) = ecs.original.and_then(json_text) {
                return Some(found(Cow::Owned(s), "ecs", dataset));
            }
        }
    }
    if let Some(r) = o.raw.and_then(string_record) {
        return Some(found(r, "cribl", o.sourcetype));
    }
    if let Some(r) = o.log.and_then(string_record) {
        return Some(found(r, "fluent_bit", None));
    }
    if let Some(r) = o.message.and_then(string_record) {
        let kind = if dataset.is_some() { "ecs" } else { "message" };
        return Some(found(r, kind, dataset));
    }
    if let Some(e) = o.event {
        let kind = if o.sourcetype.is_some() {
            "splunk_hec"
        } else {
            "event"
        };
        return record(e).map(|r| found(r, kind, o.sourcetype));
    }
    None
}

/// The format an envelope's origin names, when it names one the shipper's own conventions make plain: Splunk
/// add-on source types and Elastic integration datasets. The record inside is then read as that format only (a
/// record that is not one is dead-lettered with the envelope named), as on a topic pinned to it; the origin does
/// not make the record trusted (see `normalize.trusted_envelopes`).
pub fn format_of(kind: &str, origin: &str) -> Option<&'static str> {
    const SOURCETYPES: &[(&str, &str)] = &[
        ("OktaIM2:log", "okta"),
        ("ms:aad:signin", "entra_signin"),
        ("azure:aad:signin", "entra_signin"),
        ("ms:aad:audit", "entra_audit"),
        ("azure:aad:audit", "entra_audit"),
        ("o365:management:activity", "m365_audit"),
        ("gws:reports:*", "google_workspace"),
        ("sfdc:*", "salesforce"),
        ("slack:audit*", "slack_audit"),
        ("github:*audit*", "github_audit"),
    ];
    const DATASETS: &[(&str, &str)] = &[
        ("okta.system", "okta"),
        ("azure.signinlogs", "entra_signin"),
        ("azure.auditlogs", "entra_audit"),
        ("o365.audit", "m365_audit"),
        ("google_workspace.*", "google_workspace"),
        ("salesforce.*", "salesforce"),
        ("slack.audit", "slack_audit"),
        ("github.audit", "github_audit"),
    ];
    let table = match kind {
        "splunk_hec" | "cribl" => SOURCETYPES,
        "ecs" => DATASETS,
        _ => return None,
    };
    table
        .iter()
        .find(|(pattern, _)| crate::pattern::glob(pattern, origin))
        .map(|(_, f)| *f)
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

/// `s` when it holds a JSON record (a byte-order mark before it dropped), or a timestamped text log line
/// (`[2019-04-08T16:50:12.533Z] "GET …`, `ACCESS [ …`: Envoy's default access log).
fn json_text(s: String) -> Option<String> {
    let t = s.trim_start().trim_start_matches('\u{feff}');
    let line = t.strip_prefix("ACCESS ").unwrap_or(t);
    let text_line = line.starts_with('[') && line[1..].starts_with(|c: char| c.is_ascii_digit());
    if !(t.starts_with('{') || t.starts_with('[') || text_line) {
        return None;
    }
    Some(if t.len() == s.len() { s } else { t.to_string() })
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

    /// (format, event id, principal, time, session, vouching vendor) of what `raw` normalizes to, or the error.
    fn read(raw: &str, pinned: Option<&str>) -> Result<Vec<String>, String> {
        read_with(raw, pinned, &NormalizeConfig::default())
    }

    fn read_with(
        raw: &str,
        pinned: Option<&str>,
        cfg: &NormalizeConfig,
    ) -> Result<Vec<String>, String> {
        let n = Normalize::new(cfg).unwrap();
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

    /// The bare record's reading with no vendor vouching for it: what an untrusted envelope gives.
    fn claimed(bare: &[String]) -> Vec<String> {
        bare.iter()
            .map(|l| l.replace(r#"Some("okta")"#, "None"))
            .collect()
    }

    #[test]
    fn each_pipelines_envelope_gives_the_record_inside_as_a_claim_unless_trusted() {
        let bare = read(OKTA, None).unwrap();
        assert!(bare[0].ends_with(r#"Some("okta")"#), "{bare:?}");
        let q = quoted(OKTA);
        let envelopes = [
            format!(
                r#"{{"@timestamp":"2026-11-02T08:00:01Z","event":{{"kind":"event","original":{q},"dataset":"okta.system"}},"data_stream":{{"dataset":"okta.system"}}}}"#
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
            format!(r#"{{"schema":null,"payload":{OKTA}}}"#),
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
            // read as a claim: nothing in it is vouched for
            assert_eq!(read(e, None), Ok(claimed(&bare)), "{e}");
            // a topic pinned to the record's format is the operator's word for what it carries
            assert_eq!(read(e, Some("okta")).as_ref(), Ok(&bare), "{e}");
        }
        // trusted envelopes by kind and origin keep the record's authority; others stay claims
        let cfg: NormalizeConfig = toml::from_str(
            r#"trusted_envelopes = ["splunk_hec:OktaIM2:*", "ecs:okta.system", "pubsub:projects/p/subscriptions/okta"]"#,
        )
        .unwrap();
        let got: Vec<bool> = envelopes
            .iter()
            .map(|e| read_with(e, None, &cfg).unwrap() == bare)
            .collect();
        assert_eq!(
            got,
            [true, false, true, true, false, false, false, false, false, false, false, true]
        );
    }

    /// Found by the outside review: a HEC payload with `dataset` and `original` was read as an ECS document whose
    /// origin the payload named itself, so an app logging through HEC as `acme:app` got `ecs:okta.system`'s trust
    /// and spoke with Okta's voice about the CEO.
    #[test]
    fn a_hec_payload_naming_a_trusted_dataset_stays_a_claim() {
        let q = quoted(OKTA);
        let hec = format!(
            r#"{{"time":1793606401,"host":"app-7","sourcetype":"acme:app","event":{{"dataset":"okta.system","original":{q}}}}}"#
        );
        let cfg: NormalizeConfig =
            toml::from_str(r#"trusted_envelopes = ["ecs:okta.system"]"#).unwrap();
        let bare = read(OKTA, None).unwrap();
        let got = read_with(&hec, None, &cfg);
        assert_ne!(got.as_ref(), Ok(&bare), "{got:?}");
        if let Ok(lines) = got {
            assert!(lines.iter().all(|l| l.ends_with("None")), "{lines:?}");
        }
        // the real ECS document with that dataset keeps the trust the operator gave it
        let ecs = format!(
            r#"{{"@timestamp":"2026-11-02T08:00:01Z","event":{{"dataset":"okta.system","original":{q}}}}}"#
        );
        assert_eq!(read_with(&ecs, None, &cfg), Ok(bare));
    }

    /// A HEC source type or an ECS dataset that names a format pins the record to it: an Okta source type holding
    /// something else is dead-lettered as not Okta, not read as whatever it resembles.
    #[test]
    fn an_envelopes_source_type_or_dataset_pins_the_format() {
        assert_eq!(super::format_of("splunk_hec", "OktaIM2:log"), Some("okta"));
        assert_eq!(
            super::format_of("ecs", "google_workspace.login"),
            Some("google_workspace")
        );
        assert_eq!(super::format_of("fluent_bit", ""), None);
        let slack = r#"{"id":"s1","date_create":1793606400,"action":"user_login","actor":{"type":"user","user":{"id":"W1","email":"a@example.com"}}}"#;
        let as_okta = format!(r#"{{"time":1,"sourcetype":"OktaIM2:log","event":{slack}}}"#);
        let e = read(&as_okta, None).unwrap_err();
        assert!(
            e.contains("splunk_hec envelope") && e.contains("okta"),
            "{e}"
        );
        let as_slack = format!(r#"{{"time":1,"sourcetype":"slack:auditlogs","event":{slack}}}"#);
        assert!(read(&as_slack, None).unwrap()[0].starts_with("slack_audit "));
    }

    /// Found by an outside review: a compromised agent printing an Okta record to its stdout, shipped by Fluent Bit,
    /// was read as Okta's word and revoked the person it named.
    #[test]
    fn a_containers_stdout_carrying_an_idp_record_vouches_for_nobody() {
        let forged = format!(
            r#"{{"log":{},"stream":"stdout","kubernetes":{{"namespace_name":"agents","container_name":"agent-runtime"}}}}"#,
            quoted(&format!("{OKTA}\n"))
        );
        let got = read(&forged, None).unwrap();
        assert!(got[0].ends_with(" None"), "{got:?}");
    }

    /// Found by an outside review: a JSON array was read as an envelope field by field, so a batch with one bad
    /// record lost its neighbours without a dead letter. A batch fails as a whole.
    #[test]
    fn a_batch_is_never_read_as_an_envelope() {
        let bad = OKTA.replace("2026-11-02T08:00:00.000Z", "not a time");
        let batch = format!(
            "[{},{bad},{}]",
            OKTA.replace("env-1", "b-1"),
            OKTA.replace("env-1", "b-3")
        );
        assert!(read(&batch, None).is_err());
    }

    #[test]
    fn real_variants_unwrap_text_in_ecs_original_string_pubsub_and_a_byte_order_mark() {
        let q = quoted(OKTA);
        let ecs = format!(r#"{{"event":{{"original":"GET / HTTP/1.1"}},"message":{q}}}"#);
        let pubsub_text = format!(r#"{{"subscription":"s","message":{q}}}"#);
        // a byte-order mark before the record (a file written on Windows) is dropped
        let bom = format!(r#"{{"log":{}}}"#, quoted(&format!("{}{OKTA}", '\u{feff}')));
        for e in [ecs, pubsub_text, bom] {
            assert!(read(&e, None).is_ok(), "{e}");
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
        assert_eq!(read(&hec, None), Ok(claimed(&bare)));
        // trusted only when every level is
        let hec_only: NormalizeConfig =
            toml::from_str(r#"trusted_envelopes = ["splunk_hec:filebeat"]"#).unwrap();
        assert_eq!(read_with(&hec, None, &hec_only), Ok(claimed(&bare)));
        let both: NormalizeConfig =
            toml::from_str(r#"trusted_envelopes = ["splunk_hec:filebeat", "ecs:"]"#).unwrap();
        assert_eq!(read_with(&hec, None, &both), Ok(bare));
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
