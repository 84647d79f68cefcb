//! Stored rows read back: a batch's columns by name, and events, decisions and command rows rebuilt from them.
//!
//! In: [`RecordBatch`]es read from the store. Out: [`SessionEvent`]s (owned), [`Decision`]s and [`CommandRow`]s.
//! State: none.

use super::*;

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
