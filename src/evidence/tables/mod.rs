//! The evidence store's tables: their Arrow schemas, how rows are recorded on the pipeline's thread and built into
//! Arrow arrays, and the readers that turn stored rows back into events and decisions.
//!
//! In: correlated [`SessionEvent`]s, [`Finding`]s, [`Decision`]s and command outcomes and confirmations. Out:
//! Arrow [`RecordBatch`]es with an explicit schema (times are UTC millisecond timestamps, counts are unsigned
//! integers, lists are lists), and, read back, [`SessionEvent`]s and [`Decision`]s. State: the rows appended since
//! the last `take`: events as plain values in one reusable byte buffer ([`EventRows`]), findings and decisions in
//! Arrow builders (bytes copied once, no per-row allocation).

use crate::decide::Decision;
use crate::detect::Finding;
use crate::event::{
    Auth, Category, Family, Geo, Keys, NetKind, Network, Outcome, Principal, PrincipalKind,
    Provenance, Resource, Risk, RiskLevel, SessionEvent, SessionKeys, SourceInfo, Text, Ts, Vouch,
};
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, ListBuilder, StringBuilder, TimestampMillisecondBuilder,
    UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Serialize;
use std::sync::{Arc, OnceLock};

mod events;
mod messages;
mod rows;
mod stored;

pub use events::EventRows;
#[cfg(test)]
use events::EVENT_TIME;
use events::{family_str, kind_str};
pub use messages::{Message, MessageRows, MAX_KEPT_BYTES, MAX_KEPT_EVENTS};
pub use rows::{command_batch, CommandRow, DecisionRows, FindingRows};
pub use stored::{command_of, decision_of, event_of, Cols};

/// The four tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableKind {
    Events,
    Findings,
    Decisions,
    Commands,
}

impl TableKind {
    pub const ALL: [TableKind; 4] = [
        TableKind::Events,
        TableKind::Findings,
        TableKind::Decisions,
        TableKind::Commands,
    ];

    /// The table's name in SQL and its folder in the store.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Events => "events",
            TableKind::Findings => "findings",
            TableKind::Decisions => "decisions",
            TableKind::Commands => "commands",
        }
    }

    /// The column that places a row in its hour partition.
    pub fn time_column(self) -> &'static str {
        match self {
            TableKind::Events | TableKind::Findings | TableKind::Decisions => "event_time",
            TableKind::Commands => "at",
        }
    }

    pub fn schema(self) -> SchemaRef {
        static S: OnceLock<[SchemaRef; 4]> = OnceLock::new();
        let all = S.get_or_init(|| {
            [
                events_schema(),
                findings_schema(),
                decisions_schema(),
                commands_schema(),
            ]
        });
        all[self as usize].clone()
    }
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}
fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}
fn list(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        false,
    )
}

fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("event_id", false),
        Field::new("event_time", ts(), false),
        Field::new("ingest_time", ts(), false),
        utf8("provenance", false),
        utf8("vendor", false),
        utf8("format", false),
        utf8("family", false),
        utf8("category", false),
        utf8("action", true),
        utf8("outcome", false),
        utf8("principal", true),
        utf8("principal_id", true),
        utf8("principal_email", true),
        utf8("display_name", true),
        utf8("principal_kind", false),
        utf8("vouched_by", true),
        utf8("vouched_by_family", true),
        utf8("on_behalf_of", true),
        utf8("token_id", true),
        utf8("session_id", true),
        utf8("root_session_id", true),
        utf8("job_id", true),
        utf8("client_id", true),
        list("vouched_keys"),
        utf8("ip", true),
        Field::new("asn", DataType::UInt32, true),
        utf8("as_org", true),
        Field::new("is_proxy", DataType::Boolean, true),
        utf8("net_kind", true),
        Field::new("lat", DataType::Float64, true),
        Field::new("lon", DataType::Float64, true),
        utf8("city", true),
        utf8("country", true),
        Field::new("accuracy_radius_km", DataType::Float64, true),
        utf8("user_agent", true),
        utf8("device_id", true),
        utf8("app", true),
        utf8("object_type", true),
        utf8("object_id", true),
        list("domains"),
        utf8("server", true),
        utf8("destination", true),
        Field::new("bytes", DataType::UInt64, true),
        Field::new("records", DataType::UInt64, true),
        Field::new("location_untrusted", DataType::Boolean, false),
        utf8("risk_level", true),
        utf8("risk_kind", true),
        utf8("auth_method", true),
        Field::new("mfa", DataType::Boolean, true),
        utf8("conditional_access", true),
        Field::new("device_compliant", DataType::Boolean, true),
        utf8("device_trust", true),
        utf8("client_app", true),
        utf8("login_type", true),
        list("scopes"),
        Field::new("keep_signed_in", DataType::Boolean, true),
        utf8("delegated_by", true),
        utf8("token_binding", true),
        utf8("principal_directory_id", true),
        utf8("credential_id", true),
    ]))
}

fn findings_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_time", ts(), false),
        utf8("detector", false),
        Field::new("score", DataType::Float64, false),
        utf8("reason", false),
        list("evidence"),
        utf8("family", false),
        utf8("principal", true),
        utf8("principal_kind", false),
        utf8("token_id", true),
        utf8("session_id", true),
        utf8("job_id", true),
        Field::new("backed", DataType::Boolean, false),
    ]))
}

fn decisions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("decision_id", false),
        Field::new("event_time", ts(), false),
        Field::new("decided_at", ts(), false),
        utf8("action", false),
        utf8("principal", true),
        utf8("principal_id", true),
        utf8("principal_kind", false),
        utf8("token_id", true),
        utf8("session_id", true),
        utf8("job_id", true),
        Field::new("score", DataType::Float64, false),
        list("detectors"),
        list("evidence"),
        utf8("guardrail", true),
        Field::new("shadow", DataType::Boolean, false),
        // the whole decision record as Quench writes it to the decisions topic (explain and backtest read it back)
        utf8("record", false),
    ]))
}

fn commands_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("at", ts(), false),
        // `outcome` (the target answered or refused) or `confirmation` (the vendor's log shows it took effect)
        utf8("kind", false),
        utf8("command_id", false),
        utf8("decision_id", false),
        utf8("target", false),
        utf8("action", true),
        utf8("principal", true),
        utf8("status", false),
        Field::new("http_status", DataType::UInt32, true),
        Field::new("attempts", DataType::UInt32, true),
        utf8("error", true),
        Field::new("delivered_at", ts(), true),
        Field::new("confirmed_at", ts(), true),
        Field::new("seconds_to_confirm", DataType::Float64, true),
        utf8("confirming_event_id", true),
    ]))
}

/// A serde enum's name (`"data_read"`), as the JSON output writes it.
pub fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The longest string value the store keeps (longer ones keep their start and a digest of the whole, so two
/// different values stay different): log fields are chosen by whoever writes the logs, and a value copied onto
/// every event of a principal would otherwise multiply in every row.
pub const MAX_VALUE_BYTES: usize = 2048;

fn opt(b: &mut StringBuilder, v: Option<&str>) {
    match v {
        Some(v) => b.append_value(crate::state::bounded_to(v, MAX_VALUE_BYTES)),
        None => b.append_null(),
    }
}

fn strs<'a>(b: &mut ListBuilder<StringBuilder>, it: impl IntoIterator<Item = &'a str>) {
    // at most 64 items of a list, each bounded
    for s in it.into_iter().take(64) {
        b.values()
            .append_value(crate::state::bounded_to(s, MAX_VALUE_BYTES));
    }
    b.append(true);
}

/// A time the Arrow timestamp and every reader can show: from 1970 to the end of year 9999. Event times outside
/// are garbage a log line chose; they are kept at the nearest end.
fn clamp(t: Ts) -> i64 {
    t.0.clamp(0, 253_402_300_799_999)
}

fn utc() -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::new().with_timezone("UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SessionEvent<'static> {
        let mut ev = SessionEvent::new(
            SourceInfo {
                family: Family::Idp,
                vendor: "okta".into(),
                format: "okta_system_log".into(),
            },
            "ev-1".into(),
            Ts(1_700_000_000_123),
            Category::Login,
        );
        ev.ingest_time = Ts(1_700_000_001_000);
        ev.action = Some("user.session.start".into());
        ev.outcome = Outcome::Success;
        ev.principal.id = Some("00u1".into());
        ev.principal.email = Some("alice@example.com".into());
        ev.principal.kind = PrincipalKind::Human;
        ev.principal.directory_id = Some("4f1c2c3a-0000-4000-8000-000000000001".into());
        ev.vouch_all();
        ev.session.session_id = Some("s-1".into());
        ev.session.vouched = ev.session.vouched.with(Keys::SESSION);
        ev.network.ip = Some("2001:db8::1".into());
        ev.network.asn = Some(64500);
        ev.network.kind = Some(NetKind::Mobile);
        ev.network.geo = Some(Geo {
            lat: 52.5,
            lon: 13.4,
            city: Some("Berlin".into()),
            country: Some("DE".into()),
            accuracy_radius_km: Some(20.0),
        });
        ev.network.user_agent = Some("Mozilla/5.0".into());
        ev.resource.domains = vec!["finance".into(), "hr".into()];
        ev.resource.bytes = Some(10);
        ev.resource.destination = Some("s3://bucket".into());
        ev.risk = Some(Risk {
            level: RiskLevel::High,
            kind: "anomalousToken".into(),
        });
        ev.auth = Some(Box::new(Auth {
            method: Some("FIDO2 security key".into()),
            mfa: Some(true),
            conditional_access: Some("success".into()),
            device_compliant: Some(false),
            device_trust: Some("Workplace".into()),
            client_app: Some("Browser".into()),
            login_type: Some("saml".into()),
            scopes: vec!["repo".into(), "read:org".into()],
            keep_signed_in: Some(true),
            delegated_by: Some("admin@example.com".into()),
            token_binding: Some("bound".into()),
            credential_id: Some("555".into()),
        }));
        ev
    }

    #[test]
    fn an_event_survives_the_table_unchanged() {
        let ev = sample();
        let mut rows = EventRows::default();
        rows.push(&ev);
        rows.push(&SessionEvent::new(
            ev.source.clone(),
            "ev-2".into(),
            Ts(5),
            Category::Other,
        ));
        let b = rows.take().unwrap();
        assert_eq!(b.num_rows(), 2);
        assert!(rows.is_empty());
        let c = Cols::new(&b);
        assert_eq!(c.str("principal", 0), Some("alice@example.com"));
        assert_eq!(c.str("category", 0), Some("login"));
        assert_eq!(c.str("net_kind", 0), Some("mobile"));
        let back = event_of(&c, 0).unwrap();
        assert_eq!(back, ev);
        let second = event_of(&c, 1).unwrap();
        assert_eq!(second.event_id, "ev-2");
        assert!(second.network.geo.is_none());
        assert_eq!(second.category, Category::Other);
    }

    /// A chunk whose rows alternate between two hours is split by hour; each row keeps its own strings, nulls
    /// and list items (a column's values are stored as one run of bytes, a row's start being the row before's
    /// end, so a null or an empty list between two values must not shift them).
    #[test]
    fn rows_of_a_chunk_across_hours_keep_their_own_values_nulls_and_lists() {
        let base = sample();
        let mut rows = EventRows::with_capacity(4);
        let mut want = Vec::new();
        for i in 0..7i64 {
            let mut ev = base.clone();
            ev.event_id = Text::Owned(format!("ev-{i}").into());
            ev.event_time = Ts(3_600_000 * (10 + i % 2) + i);
            ev.principal.email =
                (i % 3 != 0).then(|| Text::Owned(format!("p{i}@example.com").into()));
            ev.resource.domains = (0..i % 3)
                .map(|d| Text::Owned(format!("d{i}.{d}").into()))
                .collect();
            ev.resource.bytes = (i % 2 == 0).then_some(i as u64 * 10);
            rows.push(&ev);
            want.push(ev);
        }
        let hours = rows.take_by_hour().unwrap();
        assert!(rows.is_empty());
        assert_eq!(
            hours
                .iter()
                .map(|(h, b)| (*h, b.num_rows()))
                .collect::<Vec<_>>(),
            [(36_000_000, 4), (39_600_000, 3)]
        );
        let mut got = Vec::new();
        for (_, b) in &hours {
            let c = Cols::new(b);
            for r in 0..b.num_rows() {
                got.push(event_of(&c, r).unwrap());
            }
        }
        let order = |e: &SessionEvent| (e.event_time.0 / 3_600_000, e.event_time.0);
        want.sort_by_key(order);
        assert_eq!(got, want);
    }

    /// The pipeline's thread copies neither names the code chose nor the principal nor the provenance label:
    /// the writer makes them again, and each row must get exactly what the event says, nulls included.
    #[test]
    fn names_principal_and_provenance_are_made_again_as_the_event_says() {
        let base = sample();
        // the same buffers twice, the second time as the writer takes them (by hour): what the writer made for
        // the first chunk must not show in the second
        let mut rows = EventRows::default();
        for round in 0..2 {
            let mut want = Vec::new();
            for i in 0..6u8 {
                let mut ev = base.clone();
                ev.event_id = Text::Owned(format!("ev-{round}-{i}").into());
                ev.provenance = match i % 3 {
                    0 => Provenance::Kafka {
                        topic: Text::Owned(format!("logs.{i}").into()),
                        partition: -2 + i32::from(i),
                        offset: i64::MAX - i64::from(i),
                    },
                    // a path longer than a value may be: the label is bounded as a whole, as it always was
                    1 if round == 1 => Provenance::File {
                        path: Text::Owned(format!("/var/log/{}.jsonl", "p".repeat(3000)).into()),
                        line: u64::from(i),
                    },
                    1 => Provenance::File {
                        path: Text::Owned(format!("/var/log/{i}.jsonl").into()),
                        line: u64::MAX - u64::from(i),
                    },
                    _ => Provenance::None,
                };
                if i % 2 == 1 {
                    ev.principal.email = None;
                }
                if i == 5 {
                    ev.principal.id = None;
                }
                ev.category =
                    [Category::Export, Category::ToolCall, Category::Sso][usize::from(i % 3)];
                ev.outcome = [Outcome::Failure, Outcome::Unknown][usize::from(i % 2)];
                ev.principal.kind =
                    [PrincipalKind::Agent, PrincipalKind::Service][usize::from(i % 2)];
                ev.principal.vouched_by = (i != 2).then(|| Vouch {
                    vendor: "okta".into(),
                    family: [Family::Saas, Family::Agent][usize::from(i % 2)],
                });
                ev.network.kind = (i != 4).then_some(NetKind::Mobile);
                ev.risk = (i % 2 == 0).then(|| Risk {
                    level: RiskLevel::Compromised,
                    kind: "x".into(),
                });
                if i == 3 {
                    ev.session.vouched = Keys::default();
                }
                rows.push(&ev);
                want.push(ev);
            }
            let b = if round == 0 {
                rows.take().unwrap()
            } else {
                let mut hours = rows.take_by_hour().unwrap();
                assert_eq!(hours.len(), 1);
                hours.remove(0).1
            };
            let c = Cols::new(&b);
            for (r, ev) in want.iter().enumerate() {
                let label = ev.provenance.to_string();
                let label = crate::state::bounded_to(&label, MAX_VALUE_BYTES);
                assert_eq!(c.str("provenance", r), Some(&*label), "row {r}");
                assert_eq!(c.str("event_id", r), Some(ev.event_id.as_str()));
                assert_eq!(c.str("principal", r), ev.principal.key(), "row {r}");
                assert_eq!(
                    c.str("category", r),
                    Some(events::category_str(ev.category))
                );
                assert_eq!(c.str("outcome", r), Some(events::outcome_str(ev.outcome)));
                assert_eq!(
                    c.str("principal_kind", r),
                    Some(kind_str(ev.principal.kind))
                );
                assert_eq!(
                    c.str("vouched_by_family", r),
                    ev.principal
                        .vouched_by
                        .as_ref()
                        .map(|v| family_str(v.family))
                );
                assert_eq!(c.str("net_kind", r), ev.network.kind.map(NetKind::as_str));
                assert_eq!(
                    c.str("risk_level", r),
                    ev.risk.as_ref().map(|x| x.level.as_str())
                );
                assert_eq!(c.str("family", r), Some("idp"));
                let keys = if r == 3 {
                    Vec::<String>::new()
                } else {
                    vec!["session_id".into()]
                };
                assert_eq!(c.list("vouched_keys", r), keys, "row {r}");
                assert_eq!(c.list("domains", r), ["finance", "hr"], "row {r}");
            }
            assert_eq!(c.str("principal", 1), Some("00u1"));
            assert_eq!(c.str("principal", 5), None);
            assert_eq!(
                c.str("provenance", 0),
                Some("logs.0/-2@9223372036854775807")
            );
            if round == 1 {
                let long = c.str("provenance", 1).unwrap();
                assert!(long.len() <= MAX_VALUE_BYTES && long.starts_with("/var/log/ppp"));
            }
        }
    }

    /// Found by an outside review: an agent id of 300,000 characters, copied by correlation onto each of 7,500
    /// gateway events, took `replay --store` to 4.3 GB and then a panic (a string column over 2 GiB).
    #[test]
    fn a_huge_value_repeated_on_every_row_is_stored_bounded() {
        let mut ev = sample();
        let huge = "x".repeat(300_000);
        ev.principal.id = Some(Text::Owned(huge.clone().into_boxed_str()));
        ev.resource.domains = (0..1000)
            .map(|i| Text::Owned(format!("d{i}").into()))
            .collect();
        let mut rows = EventRows::default();
        for _ in 0..100 {
            rows.push(&ev);
        }
        let b = rows.take().unwrap();
        let c = Cols::new(&b);
        let stored = c.str("principal_id", 0).unwrap();
        assert!(stored.len() <= MAX_VALUE_BYTES, "{}", stored.len());
        assert!(stored.starts_with("xxxx"));
        assert_ne!(
            stored,
            crate::state::bounded_to(&"x".repeat(299_999), MAX_VALUE_BYTES)
        );
        assert_eq!(c.list("domains", 0).len(), 64);
        assert!(
            b.get_array_memory_size() < 2_000_000,
            "{}",
            b.get_array_memory_size()
        );
    }

    #[test]
    fn a_time_outside_what_a_timestamp_can_show_is_kept_at_the_nearest_end() {
        let mut ev = sample();
        ev.event_time = Ts(-9_000_000_000_000_000_000);
        let mut rows = EventRows::default();
        rows.push(&ev);
        ev.event_time = Ts(i64::MAX);
        rows.push(&ev);
        let b = rows.take().unwrap();
        let c = Cols::new(&b);
        assert_eq!(c.ts("event_time", 0), Some(Ts(0)));
        assert_eq!(c.ts("event_time", 1), Some(Ts(253_402_300_799_999)));
    }

    #[test]
    fn times_are_utc_timestamps_not_strings() {
        assert_eq!(
            TableKind::Events.schema().index_of("event_time").unwrap(),
            EVENT_TIME
        );
        assert_eq!(TableKind::Events.schema().fields().len(), events::COLUMNS);
        for t in TableKind::ALL {
            let s = t.schema();
            let f = s.field_with_name(t.time_column()).unwrap();
            assert_eq!(f.data_type(), &ts(), "{}", t.name());
        }
    }
}
