//! The `events` table's rows: every value from a log copied into reused buffers (on the pipeline's thread, or on
//! the writer's for events kept as their messages), built into Arrow arrays on the writer's thread.
//!
//! In: correlated [`SessionEvent`]s, and events kept as their messages ([`MessageRows`]). Out: `events`
//! [`RecordBatch`]es (one per hour of event time). State: the rows recorded since the last take, compactly (one
//! byte buffer, the end of every string in it, every other value as 64 bits, names the code chose as references, a
//! null mask per row), the messages kept, and on the writer's thread the rows expanded into one cell per column.

use super::*;

/// One value of an `events` row, as the writer's thread expands the recorded rows before building the arrays. A
/// string is a range of [`EventRows`]' byte buffer, or of the strings the writer made again; a list is a range of
/// its items.
#[derive(Clone, Copy, Debug)]
enum Cell {
    Null,
    Str(u32, u32),
    /// A range of `made`.
    Made(u32, u32),
    Time(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    List(u32, u32),
}

/// Rows of the `events` table as the pipeline records them, in as few bytes as the values allow, since this runs
/// for every event on the pipeline's thread and everything it writes crosses to the writer's: every string copied
/// into one byte buffer with its end (4 bytes; it starts where the string before it ends), every other value as
/// 64 bits (a list as its number of items), and per row a mask of the columns that are null. What the writer can
/// make again is not copied: a name the code chose (a category, an outcome …) is kept as a reference, a
/// provenance as its topic or path and numbers, and the principal (its email, else its id) not at all (see
/// [`Rec`]). On the writer's thread [`EventRows::take`] expands them into a [`Cell`] per column and builds Arrow
/// arrays; the store hands the emptied buffers back, so the pipeline's thread neither allocates nor touches fresh
/// memory per batch (fresh Arrow builders there cost a page fault per 4 KiB of every batch).
#[derive(Default)]
pub struct EventRows {
    /// Every string value and list item, one after another.
    bytes: String,
    /// The end in `bytes` of every string value and list item, in the order recorded.
    ends: Vec<u32>,
    /// Every other value in the order recorded: times, numbers, flags, the number of a list's items and the
    /// numbers of a provenance.
    nums: Vec<u64>,
    /// Values that are names the code chose (a category, an outcome, a key's name …), in the order recorded: a
    /// reference each, not a copy.
    statics: Vec<&'static str>,
    /// Per row, bit `j` set when column `j` is null.
    nulls: Vec<u64>,
    rows: usize,
    /// Events kept as their messages instead (see [`MessageRows`]); the writer's thread records them here before
    /// building the arrays.
    pub messages: MessageRows,
    /// The normalize stage the writer's thread normalizes the kept messages again with.
    pub normalize: Option<Arc<crate::normalize::Normalize>>,
    /// On the writer's thread: events of kept messages that came out differently and were not stored, since the
    /// writer last took the count (see [`MessageRows::make_into`]).
    pub unmade: u64,
    /// On the writer's thread: a provenance label being formatted.
    prov: String,
    /// On the writer's thread: the rows expanded, one cell per column (row `r`'s column `j` is cell
    /// `r * columns + j`).
    cells: Vec<Cell>,
    /// On the writer's thread: the items of list values ([`Cell::Str`] or [`Cell::Made`]).
    items: Vec<Cell>,
    /// On the writer's thread: names and provenance labels made again. Kept apart from `bytes`, which the
    /// pipeline's thread writes again once the buffer is handed back: the writer only reads those.
    made: String,
}

// a row's null mask has a bit per column
const _: () = assert!(COLUMNS <= 64);

/// How a column's values are recorded on the pipeline's thread, and so how the writer's reads them back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rec {
    /// A string copied into `bytes`, its end in `ends`.
    Text,
    /// A name the code chose (a category, an outcome …): a reference in `statics`.
    Static,
    /// Strings copied into `bytes`, their number in `nums`.
    List,
    /// Names the code chose, in `statics`, their number in `nums`.
    StaticList,
    /// A tag in `nums` (0 none, 1 Kafka, 2 file), then the topic or path in `bytes` and the partition and offset,
    /// or the line, in `nums`.
    Provenance,
    /// Nothing: the principal is the email, else the id (as [`Principal::key`]).
    Principal,
    /// Milliseconds in `nums`.
    Time,
    /// A number in `nums`.
    Uint,
    /// A float's bits in `nums`.
    Float,
    /// 0 or 1 in `nums`.
    Bool,
}

/// The columns whose values are names the code chose, never text from a log.
const NAMED: [&str; 7] = [
    "family",
    "category",
    "outcome",
    "principal_kind",
    "vouched_by_family",
    "net_kind",
    "risk_level",
];

/// How each column of the `events` schema is recorded, and where the principal's columns are.
struct Layout {
    recs: [Rec; COLUMNS],
    principal: Option<usize>,
    principal_id: Option<usize>,
    principal_email: Option<usize>,
}

fn layout() -> &'static Layout {
    static L: OnceLock<Layout> = OnceLock::new();
    L.get_or_init(|| {
        let schema = TableKind::Events.schema();
        let mut recs = [Rec::Uint; COLUMNS];
        for (r, f) in recs.iter_mut().zip(schema.fields().iter()) {
            *r = match (f.name().as_str(), f.data_type()) {
                ("provenance", _) => Rec::Provenance,
                ("principal", _) => Rec::Principal,
                ("vouched_keys", _) => Rec::StaticList,
                (n, _) if NAMED.contains(&n) => Rec::Static,
                (_, DataType::Utf8) => Rec::Text,
                (_, DataType::List(_)) => Rec::List,
                (_, DataType::Timestamp(..)) => Rec::Time,
                (_, DataType::Float64) => Rec::Float,
                (_, DataType::Boolean) => Rec::Bool,
                _ => Rec::Uint,
            };
        }
        let at = |n: &str| schema.index_of(n).ok();
        Layout {
            recs,
            principal: at("principal"),
            principal_id: at("principal_id"),
            principal_email: at("principal_email"),
        }
    })
}

fn recs() -> &'static [Rec; COLUMNS] {
    &layout().recs
}

/// Append `v` to `made` (on the writer's thread) and give its cell.
fn append(made: &mut String, v: &str) -> Result<Cell, ArrowError> {
    let a = u32::try_from(made.len());
    made.push_str(v);
    match (a, u32::try_from(made.len())) {
        (Ok(a), Ok(b)) => Ok(Cell::Made(a, b)),
        _ => Err(ArrowError::SchemaError(
            "events: a chunk's strings passed 4 GiB".into(),
        )),
    }
}

impl EventRows {
    /// Events recorded, as values or as their messages.
    pub fn len(&self) -> usize {
        self.rows + self.messages.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows == 0 && self.messages.is_empty()
    }
    /// Events recorded as values.
    pub fn values_len(&self) -> usize {
        self.rows
    }

    /// Room for `rows` rows of typical size.
    pub fn with_capacity(rows: usize) -> EventRows {
        EventRows {
            bytes: String::with_capacity(rows * 512),
            ends: Vec::with_capacity(rows * 32),
            nums: Vec::with_capacity(rows * 16),
            statics: Vec::with_capacity(rows * 8),
            nulls: Vec::with_capacity(rows),
            messages: MessageRows::with_capacity(rows),
            ..EventRows::default()
        }
    }

    /// The bytes of string values and messages recorded.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len() + self.messages.bytes_len()
    }

    /// Give back memory beyond `bytes` of string values (and the same share of the rest), so a buffer that once
    /// held huge values does not keep their size.
    pub fn shrink_to(&mut self, bytes: usize) {
        self.bytes.shrink_to(bytes);
        self.ends.shrink_to(bytes / 16);
        self.nums.shrink_to(bytes / 32);
        self.statics.shrink_to(bytes / 64);
        self.nulls.shrink_to(bytes / 256);
        self.cells.shrink_to(bytes / 8);
        self.items.shrink_to(bytes / 64);
        self.made.shrink_to(bytes / 8);
        self.messages.shrink_to(bytes);
    }

    /// Forget the rows, keeping the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.nums.clear();
        self.statics.clear();
        self.nulls.clear();
        self.cells.clear();
        self.items.clear();
        self.made.clear();
        self.messages.clear();
        self.rows = 0;
    }

    /// Record one event, its values in the order of the `events` schema.
    pub fn push(&mut self, ev: &SessionEvent<'_>) {
        let p = &ev.principal;
        let k = &ev.session;
        let n = &ev.network;
        let r = &ev.resource;
        let g = n.geo.as_ref();
        let mut w = Row {
            bytes: &mut self.bytes,
            ends: &mut self.ends,
            nums: &mut self.nums,
            statics: &mut self.statics,
            nulls: 0,
            j: 0,
        };
        w.s(Some(ev.event_id.as_str()));
        w.time(clamp(ev.event_time));
        w.time(clamp(ev.ingest_time));
        w.prov(&ev.provenance);
        w.s(Some(ev.source.vendor.as_str()));
        w.s(Some(ev.source.format.as_str()));
        w.st(Some(family_str(ev.source.family)));
        w.st(Some(category_str(ev.category)));
        w.s(ev.action.as_deref());
        w.st(Some(outcome_str(ev.outcome)));
        w.principal();
        w.s(p.id.as_deref());
        w.s(p.email.as_deref());
        w.s(p.display_name.as_deref());
        w.st(Some(kind_str(p.kind)));
        w.s(p.vouched_by.as_ref().map(|v| v.vendor.as_str()));
        w.st(p.vouched_by.as_ref().map(|v| family_str(v.family)));
        w.s(p.on_behalf_of.as_deref());
        w.s(k.token_id.as_deref());
        w.s(k.session_id.as_deref());
        w.s(k.root_session_id.as_deref());
        w.s(k.job_id.as_deref());
        w.s(k.client_id.as_deref());
        w.static_list(
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
        w.s(n.ip.as_deref());
        w.uint(n.asn.map(u64::from));
        w.s(n.as_org.as_deref());
        w.bool(n.is_proxy);
        w.st(n.kind.map(NetKind::as_str));
        w.float(g.map(|g| g.lat));
        w.float(g.map(|g| g.lon));
        w.s(g.and_then(|g| g.city.as_deref()).or(n.city.as_deref()));
        w.s(g
            .and_then(|g| g.country.as_deref())
            .or(n.country.as_deref()));
        w.float(g.and_then(|g| g.accuracy_radius_km));
        w.s(n.user_agent.as_deref());
        w.s(n.device_id.as_deref());
        w.s(r.app.as_deref());
        w.s(r.object_type.as_deref());
        w.s(r.object_id.as_deref());
        w.list(r.domains.iter().map(|d| d.as_str()));
        w.s(r.server.as_deref());
        w.s(r.destination.as_deref());
        w.uint(r.bytes);
        w.uint(r.records);
        w.bool(Some(ev.location_untrusted));
        w.st(ev.risk.as_ref().map(|x| x.level.as_str()));
        w.s(ev.risk.as_ref().map(|x| x.kind.as_str()));
        let a = ev.auth.as_deref();
        w.s(a.and_then(|a| a.method.as_deref()));
        w.bool(a.and_then(|a| a.mfa));
        w.s(a.and_then(|a| a.conditional_access.as_deref()));
        w.bool(a.and_then(|a| a.device_compliant));
        w.s(a.and_then(|a| a.device_trust.as_deref()));
        w.s(a.and_then(|a| a.client_app.as_deref()));
        w.s(a.and_then(|a| a.login_type.as_deref()));
        w.list(
            a.into_iter()
                .flat_map(|a| a.scopes.iter().map(|s| s.as_str())),
        );
        w.bool(a.and_then(|a| a.keep_signed_in));
        w.s(a.and_then(|a| a.delegated_by.as_deref()));
        w.s(a.and_then(|a| a.token_binding.as_deref()));
        w.s(p.directory_id.as_deref());
        w.s(a.and_then(|a| a.credential_id.as_deref()));
        let nulls = w.nulls;
        self.nulls.push(nulls);
        self.rows += 1;
    }

    /// The rows recorded so far as one batch; the buffers are emptied (and kept).
    pub fn take(&mut self) -> Result<RecordBatch, ArrowError> {
        let b = self.expand().and_then(|()| {
            let all: Vec<u32> = (0..self.rows as u32).collect();
            self.build(&all)
        });
        self.clear();
        b
    }

    /// The recorded rows as one cell per column, in `cells` and `items` (the pipeline recorded them compactly).
    /// Names and provenance labels are written to `made`.
    fn expand(&mut self) -> Result<(), ArrowError> {
        if !self.messages.is_empty() {
            let mut m = std::mem::take(&mut self.messages);
            let made = match self.normalize.clone() {
                Some(n) => m.make_into(&n, self).map(|unmade| self.unmade += unmade),
                None => Err(ArrowError::SchemaError(
                    "events: messages kept without the normalize stage to make them again".into(),
                )),
            };
            m.clear();
            self.messages = m;
            made?;
        }
        let l = layout();
        let bad = |what: &str| ArrowError::SchemaError(format!("events: {what}"));
        self.cells.clear();
        self.items.clear();
        self.made.clear();
        self.cells.reserve(self.rows * COLUMNS);
        let mut ends = self.ends.iter().copied();
        let mut nums = self.nums.iter().copied();
        let mut statics = self.statics.iter().copied();
        let mut end = || {
            ends.next()
                .ok_or_else(|| bad("fewer strings than recorded"))
        };
        let mut num = || nums.next().ok_or_else(|| bad("fewer values than recorded"));
        let mut name = || {
            statics
                .next()
                .ok_or_else(|| bad("fewer names than recorded"))
        };
        let mut prov = std::mem::take(&mut self.prov);
        // a string starts where the one recorded before it ends
        let mut start = 0u32;
        for &mask in &self.nulls {
            let row = self.cells.len();
            for (j, rec) in l.recs.iter().enumerate() {
                if mask.checked_shr(j as u32).unwrap_or(0) & 1 == 1 {
                    self.cells.push(Cell::Null);
                    continue;
                }
                let c = match rec {
                    Rec::Text => {
                        let e = end()?;
                        let c = Cell::Str(start, e);
                        start = e;
                        c
                    }
                    Rec::Static => append(&mut self.made, name()?)?,
                    Rec::List | Rec::StaticList => {
                        let n = num()?;
                        let from = self.items.len();
                        for _ in 0..n {
                            if *rec == Rec::List {
                                let e = end()?;
                                self.items.push(Cell::Str(start, e));
                                start = e;
                            } else {
                                self.items.push(append(&mut self.made, name()?)?);
                            }
                        }
                        match (u32::try_from(from), u32::try_from(self.items.len())) {
                            (Ok(a), Ok(b)) => Cell::List(a, b),
                            _ => Cell::Null,
                        }
                    }
                    Rec::Provenance => {
                        prov.clear();
                        match num()? {
                            0 => Provenance::None.write_to(&mut prov),
                            tag @ (1 | 2) => {
                                let e = end()?;
                                let at = self
                                    .bytes
                                    .get(start as usize..e as usize)
                                    .ok_or_else(|| bad("provenance out of range"))?;
                                start = e;
                                let p = if tag == 1 {
                                    Provenance::Kafka {
                                        topic: Text::Borrowed(at),
                                        partition: i32::try_from(num()? as i64)
                                            .map_err(|_| bad("partition out of range"))?,
                                        offset: num()? as i64,
                                    }
                                } else {
                                    Provenance::File {
                                        path: Text::Borrowed(at),
                                        line: num()?,
                                    }
                                };
                                p.write_to(&mut prov);
                            }
                            _ => return Err(bad("unknown provenance")),
                        }
                        append(
                            &mut self.made,
                            &crate::state::bounded_to(&prov, MAX_VALUE_BYTES),
                        )?
                    }
                    // set below, from the email and id
                    Rec::Principal => Cell::Null,
                    Rec::Time => Cell::Time(num()? as i64),
                    Rec::Uint => Cell::Uint(num()?),
                    Rec::Float => Cell::Float(f64::from_bits(num()?)),
                    Rec::Bool => Cell::Bool(num()? != 0),
                };
                self.cells.push(c);
            }
            // the principal is the email, else the id
            let at = |j: Option<usize>| j.and_then(|j| self.cells.get(row + j)).copied();
            let key = match at(l.principal_email) {
                Some(c @ Cell::Str(..)) => Some(c),
                _ => at(l.principal_id),
            };
            if let (Some(c), Some(slot)) =
                (key, l.principal.and_then(|j| self.cells.get_mut(row + j)))
            {
                *slot = c;
            }
        }
        self.prov = prov;
        if end().is_ok() || num().is_ok() || name().is_ok() {
            return Err(bad("more values recorded than its columns hold"));
        }
        Ok(())
    }

    /// The rows recorded so far as one batch per hour of event time (hour start in ms, ascending); the buffers
    /// are emptied (and kept).
    pub fn take_by_hour(&mut self) -> Result<Vec<(i64, RecordBatch)>, ArrowError> {
        if let Err(e) = self.expand() {
            self.clear();
            return Err(e);
        }
        let w = TableKind::Events.schema().fields().len();
        // rows come nearly in time order: a batch spans one or two hours, late sources add a few more
        let mut hours: Vec<(i64, Vec<u32>)> = Vec::new();
        for r in 0..self.rows {
            let t = match self.cells.get(r * w + EVENT_TIME) {
                Some(Cell::Time(t)) => *t,
                c => {
                    let e = format!("events: event_time got {c:?}");
                    self.clear();
                    return Err(ArrowError::SchemaError(e));
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

    /// The string a [`Cell::Str`] or [`Cell::Made`] holds.
    fn value(&self, c: &Cell, f: &Field) -> Result<&str, ArrowError> {
        let v = match *c {
            Cell::Str(a, b) => self.bytes.get(a as usize..b as usize),
            Cell::Made(a, b) => self.made.get(a as usize..b as usize),
            _ => None,
        };
        v.ok_or_else(|| ArrowError::SchemaError(format!("events: {} out of range", f.name())))
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
                        Some(Cell::Str(a, b) | Cell::Made(a, b)) => b.saturating_sub(*a) as usize,
                        _ => 0,
                    })
                    .sum();
                let mut b = StringBuilder::with_capacity(n, bytes);
                for c in cells {
                    match c {
                        Some(c @ (Cell::Str(..) | Cell::Made(..))) => {
                            b.append_value(self.value(c, f)?)
                        }
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
                            for item in items {
                                b.values().append_value(self.value(item, f)?);
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

/// The number of columns of the `events` table (checked by a test).
pub(super) const COLUMNS: usize = 60;

/// One row being recorded (few instructions and bytes per value: this runs for every event on the pipeline's
/// thread).
struct Row<'b> {
    bytes: &'b mut String,
    ends: &'b mut Vec<u32>,
    nums: &'b mut Vec<u64>,
    statics: &'b mut Vec<&'static str>,
    /// Bit `j` set when column `j` is null.
    nulls: u64,
    /// The column of the next value.
    j: u32,
}

impl Row<'_> {
    /// Whether column `j` is recorded as `rec` (the writer reads the values back by [`recs`]).
    fn is(&self, rec: Rec) -> bool {
        recs().get(self.j as usize) == Some(&rec)
    }

    #[inline]
    fn null(&mut self) {
        if self.j < 64 {
            self.nulls |= 1 << self.j;
        }
        self.j += 1;
    }

    #[inline]
    fn num(&mut self, v: u64) {
        self.nums.push(v);
        self.j += 1;
    }

    /// Append a string, bounded to [`MAX_VALUE_BYTES`]. The buffer stays below 4 GiB, so that an end fits in a
    /// `u32`: a value that would pass it is not stored (a chunk goes long before). Whether it was.
    #[inline]
    fn text(&mut self, v: &str) -> bool {
        if v.len() > MAX_VALUE_BYTES {
            return self.raw(&crate::state::bounded_to(v, MAX_VALUE_BYTES));
        }
        self.raw(v)
    }

    /// Append a string as it is (a provenance's topic or path: the writer bounds the whole label, as it was
    /// stored before). Whether it was.
    #[inline]
    fn raw(&mut self, v: &str) -> bool {
        match u32::try_from(self.bytes.len() + v.len()) {
            Ok(end) => {
                self.bytes.push_str(v);
                self.ends.push(end);
                true
            }
            Err(_) => false,
        }
    }

    #[inline]
    fn s(&mut self, v: Option<&str>) {
        debug_assert!(self.is(Rec::Text), "column {} is not text", self.j);
        match v {
            Some(v) if self.text(v) => self.j += 1,
            _ => self.null(),
        }
    }

    /// A name the code chose: a reference, not a copy.
    #[inline]
    fn st(&mut self, v: Option<&'static str>) {
        debug_assert!(self.is(Rec::Static), "column {} is not a name", self.j);
        match v {
            Some(v) => {
                self.statics.push(v);
                self.j += 1;
            }
            None => self.null(),
        }
    }

    /// Names the code chose, as a list.
    fn static_list(&mut self, it: impl IntoIterator<Item = &'static str>) {
        debug_assert!(
            self.is(Rec::StaticList),
            "column {} is not a list of names",
            self.j
        );
        let before = self.statics.len();
        self.statics.extend(it.into_iter().take(64));
        self.num((self.statics.len() - before) as u64);
    }

    /// The principal: nothing, since it is the email, else the id (as [`Principal::key`]), and the writer takes
    /// it from those.
    #[inline]
    fn principal(&mut self) {
        debug_assert!(
            self.is(Rec::Principal),
            "column {} is not the principal",
            self.j
        );
        self.j += 1;
    }

    /// A provenance as a tag (0 none, 1 Kafka, 2 file), its topic or path and its numbers; the writer formats
    /// the label.
    fn prov(&mut self, p: &Provenance<'_>) {
        debug_assert!(
            self.is(Rec::Provenance),
            "column {} is not the provenance",
            self.j
        );
        let kept = match p {
            Provenance::Kafka {
                topic,
                partition,
                offset,
            } => {
                let kept = self.raw(topic);
                if kept {
                    self.nums
                        .extend([1, i64::from(*partition) as u64, *offset as u64]);
                }
                kept
            }
            Provenance::File { path, line } => {
                let kept = self.raw(path);
                if kept {
                    self.nums.extend([2, *line]);
                }
                kept
            }
            Provenance::None => {
                self.nums.push(0);
                true
            }
        };
        if kept {
            self.j += 1;
        } else {
            self.null();
        }
    }

    fn list<'a>(&mut self, it: impl IntoIterator<Item = &'a str>) {
        debug_assert!(self.is(Rec::List), "column {} is not a list", self.j);
        // at most 64 items of a list, each bounded
        let mut n = 0;
        for v in it.into_iter().take(64) {
            if self.text(v) {
                n += 1;
            }
        }
        self.num(n);
    }

    #[inline]
    fn time(&mut self, t: i64) {
        debug_assert!(self.is(Rec::Time), "column {} is not a time", self.j);
        self.num(t as u64);
    }

    #[inline]
    fn uint(&mut self, v: Option<u64>) {
        debug_assert!(self.is(Rec::Uint), "column {} is not a number", self.j);
        match v {
            Some(v) => self.num(v),
            None => self.null(),
        }
    }

    #[inline]
    fn float(&mut self, v: Option<f64>) {
        debug_assert!(self.is(Rec::Float), "column {} is not a float", self.j);
        match v {
            Some(v) => self.num(v.to_bits()),
            None => self.null(),
        }
    }

    #[inline]
    fn bool(&mut self, v: Option<bool>) {
        debug_assert!(self.is(Rec::Bool), "column {} is not a flag", self.j);
        match v {
            Some(v) => self.num(u64::from(v)),
            None => self.null(),
        }
    }
}

/// The position of `event_time` in the `events` schema (checked by a test).
pub(super) const EVENT_TIME: usize = 1;

pub(super) fn family_str(f: Family) -> &'static str {
    match f {
        Family::Idp => "idp",
        Family::Saas => "saas",
        Family::Gateway => "gateway",
        Family::Agent => "agent",
    }
}
pub(super) fn kind_str(k: PrincipalKind) -> &'static str {
    match k {
        PrincipalKind::Human => "human",
        PrincipalKind::Service => "service",
        PrincipalKind::Agent => "agent",
        PrincipalKind::Unknown => "unknown",
    }
}
pub(super) fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Unknown => "unknown",
    }
}
pub(super) fn category_str(c: Category) -> &'static str {
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
