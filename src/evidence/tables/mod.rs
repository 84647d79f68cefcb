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

/// One value of an `events` row, recorded on the pipeline's thread in schema order. A string is a range of
/// [`EventRows`]' byte buffer; a list is a range of its items.
#[derive(Clone, Copy, Debug)]
enum Cell {
    Null,
    Str(u32, u32),
    Time(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    List(u32, u32),
}

/// Rows of the `events` table as the pipeline records them: every string copied into one byte buffer, every
/// value a [`Cell`] in schema order (one cell per column, so row `r`'s column `j` is cell `r * columns + j`). [`EventRows::take`] turns them into Arrow arrays; the store does that on its
/// writer's thread and hands the emptied buffers back, so the pipeline's thread neither allocates nor touches fresh
/// memory per batch (fresh Arrow builders there cost a page fault per 4 KiB of every batch).
#[derive(Default)]
pub struct EventRows {
    /// Every string value, one after another.
    bytes: String,
    cells: Vec<Cell>,
    /// The items of list values (ranges of `bytes`).
    items: Vec<(u32, u32)>,
    rows: usize,
    /// The provenance label, formatted here without a new allocation per row.
    prov: String,
}

impl EventRows {
    pub fn len(&self) -> usize {
        self.rows
    }
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Room for `rows` rows of typical size.
    pub fn with_capacity(rows: usize) -> EventRows {
        EventRows {
            bytes: String::with_capacity(rows * 512),
            cells: Vec::with_capacity(rows * 48),
            items: Vec::with_capacity(rows * 2),
            rows: 0,
            prov: String::new(),
        }
    }

    /// The bytes of string values recorded.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// Give back memory beyond `bytes` of string values (and the same share of cells), so a buffer that once held
    /// huge values does not keep their size.
    pub fn shrink_to(&mut self, bytes: usize) {
        self.bytes.shrink_to(bytes);
        self.cells.shrink_to(bytes / 16);
        self.items.shrink_to(bytes / 64);
    }

    /// Forget the rows, keeping the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.cells.clear();
        self.items.clear();
        self.rows = 0;
    }

    /// A string's range in the byte buffer (bounded to [`MAX_VALUE_BYTES`]). A buffer past 4 GiB cannot be
    /// addressed: the value is stored as null (the store sends a batch long before; see `batch_rows`).
    fn range(&mut self, v: &str) -> Option<(u32, u32)> {
        let v = crate::state::bounded_to(v, MAX_VALUE_BYTES);
        let start = u32::try_from(self.bytes.len()).ok()?;
        let end = u32::try_from(self.bytes.len() + v.len()).ok()?;
        self.bytes.push_str(&v);
        Some((start, end))
    }

    fn s(&mut self, v: Option<&str>) {
        let c = match v.and_then(|v| self.range(v)) {
            Some((a, b)) => Cell::Str(a, b),
            None => Cell::Null,
        };
        self.cells.push(c);
    }

    fn list<'a>(&mut self, it: impl IntoIterator<Item = &'a str>) {
        let from = self.items.len();
        // at most 64 items of a list, each bounded
        for v in it.into_iter().take(64) {
            if let Some(r) = self.range(v) {
                self.items.push(r);
            }
        }
        let c = match (u32::try_from(from), u32::try_from(self.items.len())) {
            (Ok(a), Ok(b)) => Cell::List(a, b),
            _ => Cell::Null,
        };
        self.cells.push(c);
    }

    fn uint(&mut self, v: Option<u64>) {
        self.cells.push(v.map_or(Cell::Null, Cell::Uint));
    }

    fn float(&mut self, v: Option<f64>) {
        self.cells.push(v.map_or(Cell::Null, Cell::Float));
    }

    fn bool(&mut self, v: Option<bool>) {
        self.cells.push(v.map_or(Cell::Null, Cell::Bool));
    }

    /// Record one event, its values in the order of the `events` schema.
    pub fn push(&mut self, ev: &SessionEvent<'_>) {
        let p = &ev.principal;
        let k = &ev.session;
        let n = &ev.network;
        let r = &ev.resource;
        let g = n.geo.as_ref();
        use std::fmt::Write as _;
        let mut prov = std::mem::take(&mut self.prov);
        prov.clear();
        let _ = write!(prov, "{}", ev.provenance);
        self.s(Some(ev.event_id.as_str()));
        self.cells.push(Cell::Time(clamp(ev.event_time)));
        self.cells.push(Cell::Time(clamp(ev.ingest_time)));
        self.s(Some(&prov));
        self.prov = prov;
        self.s(Some(ev.source.vendor.as_str()));
        self.s(Some(ev.source.format.as_str()));
        self.s(Some(family_str(ev.source.family)));
        self.s(Some(category_str(ev.category)));
        self.s(ev.action.as_deref());
        self.s(Some(outcome_str(ev.outcome)));
        self.s(p.key());
        self.s(p.id.as_deref());
        self.s(p.email.as_deref());
        self.s(p.display_name.as_deref());
        self.s(Some(kind_str(p.kind)));
        self.s(p.vouched_by.as_ref().map(|v| v.vendor.as_str()));
        self.s(p.vouched_by.as_ref().map(|v| family_str(v.family)));
        self.s(p.on_behalf_of.as_deref());
        self.s(k.token_id.as_deref());
        self.s(k.session_id.as_deref());
        self.s(k.root_session_id.as_deref());
        self.s(k.job_id.as_deref());
        self.s(k.client_id.as_deref());
        self.list(
            [
                (Keys::TOKEN, "token_id"),
                (Keys::SESSION, "session_id"),
                (Keys::JOB, "job_id"),
                (Keys::CLIENT, "client_id"),
            ]
            .into_iter()
            .filter(|(b, _)| k.vouched.has(*b))
            .map(|(_, n)| n),
        );
        self.s(n.ip.as_deref());
        self.uint(n.asn.map(u64::from));
        self.s(n.as_org.as_deref());
        self.bool(n.is_proxy);
        self.s(n.kind.map(NetKind::as_str));
        self.float(g.map(|g| g.lat));
        self.float(g.map(|g| g.lon));
        self.s(g.and_then(|g| g.city.as_deref()).or(n.city.as_deref()));
        self.s(g
            .and_then(|g| g.country.as_deref())
            .or(n.country.as_deref()));
        self.float(g.and_then(|g| g.accuracy_radius_km));
        self.s(n.user_agent.as_deref());
        self.s(n.device_id.as_deref());
        self.s(r.app.as_deref());
        self.s(r.object_type.as_deref());
        self.s(r.object_id.as_deref());
        self.list(r.domains.iter().map(|d| d.as_str()));
        self.s(r.server.as_deref());
        self.s(r.destination.as_deref());
        self.uint(r.bytes);
        self.uint(r.records);
        self.bool(Some(ev.location_untrusted));
        self.s(ev.risk.as_ref().map(|x| x.level.as_str()));
        self.s(ev.risk.as_ref().map(|x| x.kind.as_str()));
        let a = ev.auth.as_deref();
        self.s(a.and_then(|a| a.method.as_deref()));
        self.bool(a.and_then(|a| a.mfa));
        self.s(a.and_then(|a| a.conditional_access.as_deref()));
        self.bool(a.and_then(|a| a.device_compliant));
        self.s(a.and_then(|a| a.device_trust.as_deref()));
        self.s(a.and_then(|a| a.client_app.as_deref()));
        self.s(a.and_then(|a| a.login_type.as_deref()));
        self.list(
            a.into_iter()
                .flat_map(|a| a.scopes.iter().map(|s| s.as_str())),
        );
        self.bool(a.and_then(|a| a.keep_signed_in));
        self.s(a.and_then(|a| a.delegated_by.as_deref()));
        self.s(a.and_then(|a| a.token_binding.as_deref()));
        self.s(p.directory_id.as_deref());
        self.s(a.and_then(|a| a.credential_id.as_deref()));
        self.rows += 1;
    }

    /// The rows recorded so far as one batch; the buffers are emptied (and kept).
    pub fn take(&mut self) -> Result<RecordBatch, ArrowError> {
        let all: Vec<u32> = (0..self.rows as u32).collect();
        let b = self.build(&all);
        self.clear();
        b
    }

    /// The rows recorded so far as one batch per hour of event time (hour start in ms, ascending); the buffers
    /// are emptied (and kept).
    pub fn take_by_hour(&mut self) -> Result<Vec<(i64, RecordBatch)>, ArrowError> {
        let w = TableKind::Events.schema().fields().len();
        // rows come nearly in time order: a batch spans one or two hours, late sources add a few more
        let mut hours: Vec<(i64, Vec<u32>)> = Vec::new();
        for r in 0..self.rows {
            let t = match self.cells.get(r * w + EVENT_TIME) {
                Some(Cell::Time(t)) => *t,
                c => {
                    return Err(ArrowError::SchemaError(format!(
                        "events: event_time got {c:?}"
                    )))
                }
            };
            let h = t.div_euclid(3_600_000) * 3_600_000;
            match hours.iter_mut().rev().find(|(x, _)| *x == h) {
                Some((_, rows)) => rows.push(r as u32),
                None => hours.push((h, vec![r as u32])),
            }
        }
        hours.sort_unstable_by_key(|(h, _)| *h);
        let out = hours
            .into_iter()
            .map(|(h, rows)| Ok((h, self.build(&rows)?)))
            .collect();
        self.clear();
        out
    }

    /// A batch of these rows, built column by column.
    fn build(&self, rows: &[u32]) -> Result<RecordBatch, ArrowError> {
        let schema = TableKind::Events.schema();
        let w = schema.fields().len();
        if self.cells.len() != self.rows * w {
            return Err(ArrowError::SchemaError(format!(
                "events: {} values for {} rows of {w} columns",
                self.cells.len(),
                self.rows
            )));
        }
        let cols = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(j, f)| self.column(rows, w, j, f))
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(schema, cols)
    }

    fn text(&self, a: u32, b: u32, f: &Field) -> Result<&str, ArrowError> {
        self.bytes
            .get(a as usize..b as usize)
            .ok_or_else(|| ArrowError::SchemaError(format!("events: {} out of range", f.name())))
    }

    /// Column `j` of these rows.
    fn column(&self, rows: &[u32], w: usize, j: usize, f: &Field) -> Result<ArrayRef, ArrowError> {
        let cells = rows.iter().map(|&r| self.cells.get(r as usize * w + j));
        let bad =
            |c: Option<&Cell>| ArrowError::SchemaError(format!("events: {} got {c:?}", f.name()));
        let n = rows.len();
        Ok(match f.data_type() {
            DataType::Utf8 => {
                let bytes = cells
                    .clone()
                    .map(|c| match c {
                        Some(Cell::Str(a, b)) => b.saturating_sub(*a) as usize,
                        _ => 0,
                    })
                    .sum();
                let mut b = StringBuilder::with_capacity(n, bytes);
                for c in cells {
                    match c {
                        Some(Cell::Str(x, y)) => b.append_value(self.text(*x, *y, f)?),
                        Some(Cell::Null) => b.append_null(),
                        c => return Err(bad(c)),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::List(_) => {
                let mut b = ListBuilder::with_capacity(StringBuilder::new(), n);
                for c in cells {
                    match c {
                        Some(Cell::List(x, y)) => {
                            let items =
                                self.items.get(*x as usize..*y as usize).unwrap_or_default();
                            for &(p, q) in items {
                                b.values().append_value(self.text(p, q, f)?);
                            }
                            b.append(true);
                        }
                        Some(Cell::Null) => b.append(true),
                        c => return Err(bad(c)),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                let mut b = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
                for c in cells {
                    match c {
                        Some(Cell::Time(t)) => b.append_value(*t),
                        c => return Err(bad(c)),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::UInt32 => {
                let mut b = UInt32Builder::with_capacity(n);
                let uint = |c: &Cell| {
                    if let Cell::Uint(v) = c {
                        Some(*v)
                    } else {
                        None
                    }
                };
                each(
                    cells,
                    uint,
                    |v| b.append_option(v.and_then(|v| u32::try_from(v).ok())),
                    &bad,
                )?;
                Arc::new(b.finish())
            }
            DataType::UInt64 => {
                let mut b = UInt64Builder::with_capacity(n);
                let uint = |c: &Cell| {
                    if let Cell::Uint(v) = c {
                        Some(*v)
                    } else {
                        None
                    }
                };
                each(cells, uint, |v| b.append_option(v), &bad)?;
                Arc::new(b.finish())
            }
            DataType::Float64 => {
                let mut b = Float64Builder::with_capacity(n);
                let float = |c: &Cell| {
                    if let Cell::Float(v) = c {
                        Some(*v)
                    } else {
                        None
                    }
                };
                each(cells, float, |v| b.append_option(v), &bad)?;
                Arc::new(b.finish())
            }
            DataType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(n);
                let bool = |c: &Cell| {
                    if let Cell::Bool(v) = c {
                        Some(*v)
                    } else {
                        None
                    }
                };
                each(cells, bool, |v| b.append_option(v), &bad)?;
                Arc::new(b.finish())
            }
            other => {
                return Err(ArrowError::SchemaError(format!(
                    "events: column {} of type {other} has no builder",
                    f.name()
                )))
            }
        })
    }
}

/// Give each cell of a nullable column to `put`: its value as `value` reads it, or none for [`Cell::Null`]; a
/// cell of another kind is an error.
fn each<'c, T>(
    cells: impl Iterator<Item = Option<&'c Cell>>,
    value: impl Fn(&Cell) -> Option<T>,
    mut put: impl FnMut(Option<T>),
    bad: &dyn Fn(Option<&Cell>) -> ArrowError,
) -> Result<(), ArrowError> {
    for c in cells {
        match c {
            Some(Cell::Null) => put(None),
            Some(x) => put(Some(value(x).ok_or_else(|| bad(c))?)),
            None => return Err(bad(c)),
        }
    }
    Ok(())
}

/// The position of `event_time` in the `events` schema (checked by a test).
const EVENT_TIME: usize = 1;

fn family_str(f: Family) -> &'static str {
    match f {
        Family::Idp => "idp",
        Family::Saas => "saas",
        Family::Gateway => "gateway",
        Family::Agent => "agent",
    }
}
fn kind_str(k: PrincipalKind) -> &'static str {
    match k {
        PrincipalKind::Human => "human",
        PrincipalKind::Service => "service",
        PrincipalKind::Agent => "agent",
        PrincipalKind::Unknown => "unknown",
    }
}
fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Unknown => "unknown",
    }
}
fn category_str(c: Category) -> &'static str {
    match c {
        Category::Login => "login",
        Category::Sso => "sso",
        Category::SessionEnd => "session_end",
        Category::TokenIssued => "token_issued",
        Category::TokenRefreshed => "token_refreshed",
        Category::TokenRevoked => "token_revoked",
        Category::ApiRequest => "api_request",
        Category::DataRead => "data_read",
        Category::DataWrite => "data_write",
        Category::Export => "export",
        Category::AdminChange => "admin_change",
        Category::ToolCall => "tool_call",
        Category::AgentInvoke => "agent_invoke",
        Category::ModelCall => "model_call",
        Category::Other => "other",
    }
}

/// Builders of the `findings` table.
pub struct FindingRows {
    time: TimestampMillisecondBuilder,
    detector: StringBuilder,
    score: Float64Builder,
    reason: StringBuilder,
    evidence: ListBuilder<StringBuilder>,
    s: [StringBuilder; 6],
    backed: BooleanBuilder,
    rows: usize,
}

impl Default for FindingRows {
    fn default() -> Self {
        FindingRows {
            time: utc(),
            detector: StringBuilder::new(),
            score: Float64Builder::new(),
            reason: StringBuilder::new(),
            evidence: ListBuilder::new(StringBuilder::new()),
            s: Default::default(),
            backed: BooleanBuilder::new(),
            rows: 0,
        }
    }
}

impl FindingRows {
    pub fn len(&self) -> usize {
        self.rows
    }
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
    pub fn push(&mut self, f: &Finding) {
        let sub = &f.subject;
        self.time.append_value(clamp(f.event_time));
        self.detector.append_value(f.detector);
        self.score.append_value(f.score);
        self.reason
            .append_value(crate::state::bounded_to(&f.reason, MAX_VALUE_BYTES));
        strs(&mut self.evidence, f.evidence.iter().map(String::as_str));
        for (b, v) in self.s.iter_mut().zip([
            Some(family_str(f.family)),
            sub.principal.as_deref(),
            Some(kind_str(sub.principal_kind)),
            sub.token_id.as_deref(),
            sub.session_id.as_deref(),
            sub.job_id.as_deref(),
        ]) {
            opt(b, v);
        }
        self.backed.append_value(sub.backed);
        self.rows += 1;
    }
    pub fn take(&mut self) -> Result<RecordBatch, ArrowError> {
        let [fam, principal, kind, token, session, job] = &mut self.s;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.detector.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.evidence.finish()),
            Arc::new(fam.finish()),
            Arc::new(principal.finish()),
            Arc::new(kind.finish()),
            Arc::new(token.finish()),
            Arc::new(session.finish()),
            Arc::new(job.finish()),
            Arc::new(self.backed.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(TableKind::Findings.schema(), cols)
    }
}

/// Builders of the `decisions` table.
pub struct DecisionRows {
    id: StringBuilder,
    times: [TimestampMillisecondBuilder; 2],
    s: [StringBuilder; 7],
    score: Float64Builder,
    detectors: ListBuilder<StringBuilder>,
    evidence: ListBuilder<StringBuilder>,
    guardrail: StringBuilder,
    shadow: BooleanBuilder,
    record: StringBuilder,
    rows: usize,
}

impl Default for DecisionRows {
    fn default() -> Self {
        DecisionRows {
            id: StringBuilder::new(),
            times: [utc(), utc()],
            s: Default::default(),
            score: Float64Builder::new(),
            detectors: ListBuilder::new(StringBuilder::new()),
            evidence: ListBuilder::new(StringBuilder::new()),
            guardrail: StringBuilder::new(),
            shadow: BooleanBuilder::new(),
            record: StringBuilder::new(),
            rows: 0,
        }
    }
}

impl DecisionRows {
    pub fn len(&self) -> usize {
        self.rows
    }
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
    pub fn push(&mut self, d: &Decision) -> Result<(), serde_json::Error> {
        let record = serde_json::to_string(d)?;
        opt(&mut self.id, Some(&d.decision_id));
        self.times[0].append_value(clamp(d.event_time));
        self.times[1].append_value(clamp(d.decided_at));
        for (b, v) in self.s.iter_mut().zip([
            Some(d.action.as_str()),
            d.principal.as_deref(),
            d.principal_id.as_deref(),
            Some(kind_str(d.principal_kind)),
            d.token_id.as_deref(),
            d.session_id.as_deref(),
            d.job_id.as_deref(),
        ]) {
            opt(b, v);
        }
        self.score.append_value(d.score);
        strs(
            &mut self.detectors,
            d.findings.iter().map(|f| f.detector.as_str()),
        );
        strs(&mut self.evidence, d.evidence.iter().map(String::as_str));
        opt(&mut self.guardrail, d.guardrail.as_deref());
        self.shadow.append_value(d.shadow);
        self.record.append_value(record);
        self.rows += 1;
        Ok(())
    }
    pub fn take(&mut self) -> Result<RecordBatch, ArrowError> {
        let [action, principal, pid, kind, token, session, job] = &mut self.s;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.times[0].finish()),
            Arc::new(self.times[1].finish()),
            Arc::new(action.finish()),
            Arc::new(principal.finish()),
            Arc::new(pid.finish()),
            Arc::new(kind.finish()),
            Arc::new(token.finish()),
            Arc::new(session.finish()),
            Arc::new(job.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.detectors.finish()),
            Arc::new(self.evidence.finish()),
            Arc::new(self.guardrail.finish()),
            Arc::new(self.shadow.finish()),
            Arc::new(self.record.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(TableKind::Decisions.schema(), cols)
    }
}

/// One row of the `commands` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CommandRow {
    pub at: Ts,
    pub kind: &'static str,
    pub command_id: String,
    pub decision_id: String,
    pub target: String,
    pub action: Option<String>,
    pub principal: Option<String>,
    pub status: String,
    pub http_status: Option<u32>,
    pub attempts: Option<u32>,
    pub error: Option<String>,
    pub delivered_at: Option<Ts>,
    pub confirmed_at: Option<Ts>,
    pub seconds_to_confirm: Option<f64>,
    pub confirming_event_id: Option<String>,
}

/// The `commands` rows as one batch.
pub fn command_batch(rows: &[CommandRow]) -> Result<RecordBatch, ArrowError> {
    let mut at = utc();
    let mut s: [StringBuilder; 8] = Default::default();
    let mut nums = [UInt32Builder::new(), UInt32Builder::new()];
    let mut times = [utc(), utc()];
    let mut secs = Float64Builder::new();
    let mut confirming = StringBuilder::new();
    for r in rows {
        at.append_value(clamp(r.at));
        for (b, v) in s.iter_mut().zip([
            Some(r.kind),
            Some(r.command_id.as_str()),
            Some(r.decision_id.as_str()),
            Some(r.target.as_str()),
            r.action.as_deref(),
            r.principal.as_deref(),
            Some(r.status.as_str()),
            r.error.as_deref(),
        ]) {
            opt(b, v);
        }
        nums[0].append_option(r.http_status);
        nums[1].append_option(r.attempts);
        times[0].append_option(r.delivered_at.map(clamp));
        times[1].append_option(r.confirmed_at.map(clamp));
        secs.append_option(r.seconds_to_confirm);
        opt(&mut confirming, r.confirming_event_id.as_deref());
    }
    let [kind, command_id, decision_id, target, action, principal, status, error] = &mut s;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(at.finish()),
        Arc::new(kind.finish()),
        Arc::new(command_id.finish()),
        Arc::new(decision_id.finish()),
        Arc::new(target.finish()),
        Arc::new(action.finish()),
        Arc::new(principal.finish()),
        Arc::new(status.finish()),
        Arc::new(nums[0].finish()),
        Arc::new(nums[1].finish()),
        Arc::new(error.finish()),
        Arc::new(times[0].finish()),
        Arc::new(times[1].finish()),
        Arc::new(secs.finish()),
        Arc::new(confirming.finish()),
    ];
    RecordBatch::try_new(TableKind::Commands.schema(), cols)
}

/// Reads the columns of a stored batch by name.
pub struct Cols<'b> {
    batch: &'b RecordBatch,
}

impl<'b> Cols<'b> {
    pub fn new(batch: &'b RecordBatch) -> Self {
        Cols { batch }
    }
    fn col(&self, name: &str) -> Option<&'b ArrayRef> {
        self.batch.column_by_name(name)
    }
    /// A string column's value (none when null or when the column is missing).
    pub fn str(&self, name: &str, row: usize) -> Option<&'b str> {
        let a = self.col(name)?.as_string_opt::<i32>()?;
        (!a.is_null(row)).then(|| a.value(row))
    }
    pub fn ts(&self, name: &str, row: usize) -> Option<Ts> {
        let a = self
            .col(name)?
            .as_primitive_opt::<TimestampMillisecondType>()?;
        (!a.is_null(row)).then(|| Ts(a.value(row)))
    }
    pub fn f64(&self, name: &str, row: usize) -> Option<f64> {
        let a = self.col(name)?.as_primitive_opt::<Float64Type>()?;
        (!a.is_null(row)).then(|| a.value(row))
    }
    pub fn u64(&self, name: &str, row: usize) -> Option<u64> {
        let a = self.col(name)?.as_primitive_opt::<UInt64Type>()?;
        (!a.is_null(row)).then(|| a.value(row))
    }
    pub fn u32(&self, name: &str, row: usize) -> Option<u32> {
        let a = self.col(name)?.as_primitive_opt::<UInt32Type>()?;
        (!a.is_null(row)).then(|| a.value(row))
    }
    pub fn bool(&self, name: &str, row: usize) -> Option<bool> {
        let a = self.col(name)?.as_boolean_opt()?;
        (!a.is_null(row)).then(|| a.value(row))
    }
    pub fn list(&self, name: &str, row: usize) -> Vec<String> {
        let Some(a) = self.col(name).and_then(|c| c.as_list_opt::<i32>()) else {
            return Vec::new();
        };
        if a.is_null(row) {
            return Vec::new();
        }
        let v = a.value(row);
        let Some(s) = v.as_string_opt::<i32>() else {
            return Vec::new();
        };
        (0..s.len())
            .filter(|i| !s.is_null(*i))
            .map(|i| s.value(i).to_string())
            .collect()
    }
}

fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

/// A stored event, rebuilt as a [`SessionEvent`] (owned). The provenance becomes `None`: it was a label.
pub fn event_of(c: &Cols<'_>, i: usize) -> Option<SessionEvent<'static>> {
    let owned = |name: &str| c.str(name, i).map(|s| Text::Owned(s.into()));
    let family: Family = parse_enum(c.str("family", i)?)?;
    let mut ev = SessionEvent::new(
        SourceInfo {
            family,
            vendor: owned("vendor")?,
            format: owned("format")?,
        },
        owned("event_id")?,
        c.ts("event_time", i)?,
        parse_enum(c.str("category", i)?)?,
    );
    ev.ingest_time = c.ts("ingest_time", i).unwrap_or_default();
    ev.action = owned("action");
    ev.outcome = c.str("outcome", i).and_then(parse_enum).unwrap_or_default();
    let vouched_by = match (c.str("vouched_by", i), c.str("vouched_by_family", i)) {
        (Some(v), Some(f)) => parse_enum(f).map(|family| Vouch {
            vendor: Text::Owned(v.into()),
            family,
        }),
        _ => None,
    };
    ev.principal = Principal {
        id: owned("principal_id"),
        kind: c
            .str("principal_kind", i)
            .and_then(parse_enum)
            .unwrap_or_default(),
        email: owned("principal_email"),
        display_name: owned("display_name"),
        vouched_by,
        on_behalf_of: owned("on_behalf_of"),
        directory_id: owned("principal_directory_id"),
    };
    let mut vouched = Keys::default();
    for k in c.list("vouched_keys", i) {
        vouched = vouched.with(match k.as_str() {
            "token_id" => Keys::TOKEN,
            "session_id" => Keys::SESSION,
            "job_id" => Keys::JOB,
            "client_id" => Keys::CLIENT,
            _ => Keys::default(),
        });
    }
    ev.session = SessionKeys {
        token_id: owned("token_id"),
        session_id: owned("session_id"),
        root_session_id: owned("root_session_id"),
        job_id: owned("job_id"),
        client_id: owned("client_id"),
        // correlate counts it again
        client_peers: None,
        vouched,
    };
    let geo = match (c.f64("lat", i), c.f64("lon", i)) {
        (Some(lat), Some(lon)) => Some(Geo {
            lat,
            lon,
            city: owned("city"),
            country: owned("country"),
            accuracy_radius_km: c.f64("accuracy_radius_km", i),
        }),
        _ => None,
    };
    let geo_less = geo.is_none();
    ev.network = Network {
        ip: owned("ip"),
        asn: c.u32("asn", i),
        as_org: owned("as_org"),
        is_proxy: c.bool("is_proxy", i),
        geo,
        user_agent: owned("user_agent"),
        device_id: owned("device_id"),
        kind: c.str("net_kind", i).and_then(parse_enum),
        country: if geo_less { owned("country") } else { None },
        city: if geo_less { owned("city") } else { None },
    };
    ev.resource = Resource {
        app: owned("app"),
        object_type: owned("object_type"),
        object_id: owned("object_id"),
        domains: c
            .list("domains", i)
            .into_iter()
            .map(|d| Text::Owned(d.into_boxed_str()))
            .collect(),
        server: owned("server"),
        destination: owned("destination"),
        bytes: c.u64("bytes", i),
        records: c.u64("records", i),
    };
    ev.location_untrusted = c.bool("location_untrusted", i).unwrap_or(false);
    ev.risk = match (
        c.str("risk_level", i).and_then(RiskLevel::parse),
        owned("risk_kind"),
    ) {
        (Some(level), Some(kind)) => Some(Risk { level, kind }),
        _ => None,
    };
    let auth = Auth {
        method: owned("auth_method"),
        mfa: c.bool("mfa", i),
        conditional_access: owned("conditional_access"),
        device_compliant: c.bool("device_compliant", i),
        device_trust: owned("device_trust"),
        client_app: owned("client_app"),
        login_type: owned("login_type"),
        scopes: c.list("scopes", i).into_iter().map(Text::from).collect(),
        keep_signed_in: c.bool("keep_signed_in", i),
        delegated_by: owned("delegated_by"),
        token_binding: owned("token_binding"),
        credential_id: owned("credential_id"),
    };
    ev.auth = (auth != Auth::default()).then(|| Box::new(auth));
    ev.provenance = Provenance::None;
    Some(ev)
}

/// A stored command row.
pub fn command_of(c: &Cols<'_>, i: usize) -> Option<CommandRow> {
    let s = |k: &str| c.str(k, i).map(String::from);
    Some(CommandRow {
        at: c.ts("at", i)?,
        kind: match c.str("kind", i)? {
            "confirmation" => "confirmation",
            _ => "outcome",
        },
        command_id: s("command_id")?,
        decision_id: s("decision_id")?,
        target: s("target")?,
        action: s("action"),
        principal: s("principal"),
        status: s("status")?,
        http_status: c.u32("http_status", i),
        attempts: c.u32("attempts", i),
        error: s("error"),
        delivered_at: c.ts("delivered_at", i),
        confirmed_at: c.ts("confirmed_at", i),
        seconds_to_confirm: c.f64("seconds_to_confirm", i),
        confirming_event_id: s("confirming_event_id"),
    })
}

/// A stored decision, from its `record` column.
/// A stored decision record. Records stored before decisions carried their `kind` get it from their id.
pub fn decision_of(c: &Cols<'_>, i: usize) -> Option<Decision> {
    #[derive(serde::Deserialize)]
    struct Kind {
        kind: Option<serde::de::IgnoredAny>,
    }
    let record = c.str("record", i)?;
    let mut d: Decision = serde_json::from_str(record).ok()?;
    if serde_json::from_str::<Kind>(record).ok()?.kind.is_none() {
        d.kind = crate::decide::DecisionKind::of_legacy_id(&d.decision_id);
    }
    Some(d)
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
        for t in TableKind::ALL {
            let s = t.schema();
            let f = s.field_with_name(t.time_column()).unwrap();
            assert_eq!(f.data_type(), &ts(), "{}", t.name());
        }
    }
}
