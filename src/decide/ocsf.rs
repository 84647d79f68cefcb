//! Decisions as OCSF 1.8.0 Detection Findings (class 2004), for SIEMs and data lakes that read OCSF.
//!
//! In: a [`Decision`] and, when the evidence store has them, the correlated events it cites. Out: one Detection
//! Finding as JSON: the decision's id, action, score and time; each finding as an analytic with its reason; the
//! principal, token and session as actor and observables; each evidence event (its address, user agent, device,
//! what it touched) in `evidences`; Quench's trust record in `unmapped`. Written to `[kafka] ocsf_topic` (without
//! the events, which the engine does not keep) and by `quench ocsf` from the store (with them). State: none.
//!
//! The mapping is checked against `schemas/ocsf/detection_finding-1.8.0.schema.json`, a JSON Schema generated
//! from the OCSF 1.8.0 schema (see `schemas/ocsf/gen.py`).

use super::{Action, Decision};
use crate::event::{PrincipalKind, SessionEvent};
use serde_json::{json, Map, Value};

/// The OCSF version the findings declare.
pub const OCSF_VERSION: &str = "1.8.0";

fn severity(a: Action) -> (u8, &'static str) {
    match a {
        Action::Alert => (3, "Medium"),
        Action::StepUp | Action::RevokeToken => (4, "High"),
        Action::TerminateSession => (5, "Critical"),
    }
}

/// What the decision does, as a security control's disposition.
fn disposition(a: Action) -> (u8, &'static str) {
    match a {
        Action::Alert => (19, "Alert"),
        Action::StepUp => (23, "Challenge"),
        Action::RevokeToken | Action::TerminateSession => (24, "Access Revoked"),
    }
}

fn user_type(k: PrincipalKind) -> (u8, &'static str) {
    match k {
        PrincipalKind::Human => (1, "User"),
        PrincipalKind::Service | PrincipalKind::Agent => (4, "Service"),
        PrincipalKind::Unknown => (0, "Unknown"),
    }
}

/// An e-mail address as OCSF's `email_t` accepts it (else it is only a name): its regular expression is
/// `^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$` (`+-/` is the range `+ , - . /`).
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+,-./=?^_`{|}~".contains(&b);
    let Some((first, rest)) = domain.split_once('.') else {
        return false;
    };
    !local.is_empty()
        && local.bytes().all(local_ok)
        && !first.is_empty()
        && first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The address in its canonical form (`::ffff:192.0.2.1`, not the 45-character long form OCSF's `ip_t` refuses),
/// if it is one.
fn ip_of(s: &str) -> Option<String> {
    let ip: std::net::IpAddr = s.parse().ok()?;
    let text = ip.to_string();
    (text.len() <= 40).then_some(text)
}

fn user(name: Option<&str>, uid: Option<&str>, kind: PrincipalKind) -> Option<Value> {
    if name.is_none() && uid.is_none() {
        return None;
    }
    let mut u = Map::new();
    if let Some(n) = name {
        u.insert("name".into(), n.into());
        if is_email(n) {
            u.insert("email_addr".into(), n.into());
        }
    }
    if let Some(id) = uid {
        u.insert("uid".into(), id.into());
    }
    let (tid, t) = user_type(kind);
    u.insert("type_id".into(), tid.into());
    u.insert("type".into(), t.into());
    Some(Value::Object(u))
}

/// One evidence event.
fn evidence(ev: &SessionEvent<'_>) -> Value {
    let mut e = Map::new();
    e.insert("uid".into(), ev.event_id.as_str().into());
    e.insert(
        "name".into(),
        format!(
            "{} {}",
            ev.source.format.as_str(),
            ev.action.as_deref().unwrap_or("-")
        )
        .into(),
    );
    let mut actor = Map::new();
    if let Some(u) = user(
        ev.principal.key(),
        ev.principal.id.as_deref(),
        ev.principal.kind,
    ) {
        actor.insert("user".into(), u);
    }
    if let Some(s) = ev.session.session_id.as_deref() {
        actor.insert(
            "session".into(),
            json!({ "uid": s, "issuer": ev.source.vendor.as_str() }),
        );
    }
    if !actor.is_empty() {
        e.insert("actor".into(), Value::Object(actor));
    }
    if let Some(ip) = ev.network.ip.as_deref().and_then(ip_of) {
        let mut ep = Map::new();
        ep.insert("ip".into(), ip.into());
        // OCSF places a location by city, country, postal code or region: coordinates alone are no location
        if let Some(g) = ev
            .network
            .geo
            .as_ref()
            .filter(|g| g.city.is_some() || g.country.is_some())
        {
            let mut loc = Map::new();
            loc.insert("lat".into(), g.lat.into());
            loc.insert("long".into(), g.lon.into());
            if let Some(c) = g.city.as_deref() {
                loc.insert("city".into(), c.into());
            }
            if let Some(c) = g.country.as_deref() {
                loc.insert("country".into(), c.into());
            }
            ep.insert("location".into(), Value::Object(loc));
        }
        if let Some(a) = ev.network.asn {
            ep.insert("autonomous_system".into(), json!({ "number": a }));
        }
        e.insert("src_endpoint".into(), Value::Object(ep));
    }
    if let Some(d) = ev.network.device_id.as_deref() {
        e.insert("device".into(), json!({ "uid": d, "type_id": 0 }));
    }
    let r = &ev.resource;
    if let Some(obj) = r.object_id.as_deref().or(r.app.as_deref()) {
        let mut res = Map::new();
        res.insert("name".into(), obj.into());
        if let Some(t) = r.object_type.as_deref() {
            res.insert("type".into(), t.into());
        }
        e.insert("resources".into(), json!([Value::Object(res)]));
    }
    let mut data = Map::new();
    data.insert("event_time".into(), ev.event_time.to_rfc3339().into());
    data.insert("vendor".into(), ev.source.vendor.as_str().into());
    if let Some(ua) = ev.network.user_agent.as_deref() {
        data.insert("user_agent".into(), ua.into());
    }
    if let Some(d) = r.destination.as_deref() {
        data.insert("destination".into(), d.into());
    }
    e.insert("data".into(), Value::Object(data));
    Value::Object(e)
}

/// The Detection Finding of `d`; `events` are the evidence events the store holds (any order; others ignored).
pub fn detection_finding(d: &Decision, events: &[SessionEvent<'_>]) -> Value {
    let (sev_id, sev) = severity(d.action);
    let (disp_id, disp) = disposition(d.action);
    let reasons: Vec<String> = d
        .findings
        .iter()
        .map(|f| format!("{} ({:.2}): {}", f.detector, f.score, f.reason))
        .collect();
    let detectors: Vec<&str> = d.findings.iter().map(|f| f.detector.as_str()).collect();
    let who = d
        .principal
        .as_deref()
        .or(d.job_id.as_deref())
        .or(d.token_id.as_deref())
        .unwrap_or("-");
    let mut actor = Map::new();
    if let Some(u) = user(
        d.principal.as_deref(),
        d.principal_id.as_deref(),
        d.principal_kind,
    ) {
        actor.insert("user".into(), u);
    }
    if let Some(s) = d.session_id.as_deref() {
        let issuer = d.trust.session_vendor.as_deref().unwrap_or("unknown");
        actor.insert("session".into(), json!({ "uid": s, "issuer": issuer }));
    }
    let mut observables = Vec::new();
    if let Some(p) = d.principal.as_deref() {
        observables.push(
            json!({ "name": "actor.user.name", "type_id": 4, "type": "User Name", "value": p }),
        );
        if is_email(p) {
            observables.push(json!({ "name": "actor.user.email_addr", "type_id": 5, "type": "Email Address", "value": p }));
        }
    }
    if let Some(id) = d.principal_id.as_deref() {
        observables.push(json!({ "name": "actor.user.uid", "type_id": 31, "type": "User Object: uid", "value": id }));
    }
    if let Some(t) = d.token_id.as_deref() {
        observables.push(
            json!({ "name": "token_id", "type_id": 19, "type": "User Credential ID", "value": t }),
        );
    }
    let cited: Vec<&SessionEvent<'_>> = d
        .evidence
        .iter()
        .filter_map(|id| events.iter().find(|e| e.event_id.as_str() == id))
        .collect();
    for ev in &cited {
        if let Some(ip) = ev.network.ip.as_deref().and_then(ip_of) {
            let o = json!({ "name": "evidences.src_endpoint.ip", "type_id": 2, "type": "IP Address", "value": ip });
            if !observables.contains(&o) {
                observables.push(o);
            }
        }
    }
    let evidences: Vec<Value> = d
        .evidence
        .iter()
        .map(
            |id| match cited.iter().find(|e| e.event_id.as_str() == id) {
                Some(ev) => evidence(ev),
                None => json!({ "uid": id, "data": { "stored": false } }),
            },
        )
        .collect();
    let first = cited.iter().map(|e| e.event_time.0).min();
    let mut info = Map::new();
    info.insert("uid".into(), d.decision_id.as_str().into());
    info.insert(
        "title".into(),
        format!("{} for {}", d.action.as_str(), who).into(),
    );
    info.insert("desc".into(), reasons.join("; ").into());
    info.insert("types".into(), json!(detectors));
    info.insert(
        "analytic".into(),
        json!({
            "name": detectors.join("+"),
            "uid": detectors.join("+"),
            "type_id": 2,
            "type": "Behavioral",
            "related_analytics": d.findings.iter().map(|f| json!({
                "name": f.detector, "uid": f.detector, "type_id": 2, "type": "Behavioral", "desc": f.reason,
            })).collect::<Vec<_>>(),
        }),
    );
    info.insert("created_time".into(), d.decided_at.0.into());
    info.insert("last_seen_time".into(), d.event_time.0.into());
    if let Some(f) = first {
        info.insert("first_seen_time".into(), f.into());
    }
    info.insert("related_events_count".into(), d.evidence.len().into());
    let mut f = json!({
        "activity_id": 1,
        "activity_name": "Create",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "severity_id": sev_id,
        "severity": sev,
        "status_id": 1,
        "status": "New",
        "time": d.decided_at.0,
        "message": format!("{} for {}: {}", d.action.as_str(), who, reasons.join("; ")),
        "confidence_score": (d.score.clamp(0.0, 1.0) * 100.0).round() as i64,
        "risk_score": (d.score.clamp(0.0, 1.0) * 100.0).round() as i64,
        "disposition_id": disp_id,
        "disposition": disp,
        "is_alert": true,
        "finding_info": Value::Object(info),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": d.decision_id,
            "log_name": "decisions",
            "product": {
                "name": "Quench",
                "uid": "quench",
                "vendor_name": "Quench",
                "version": env!("CARGO_PKG_VERSION"),
            },
        },
        "observables": observables,
        "evidences": evidences,
        "unmapped": {
            "quench": {
                "action": d.action.as_str(),
                "score": d.score,
                "guardrail": d.guardrail,
                "shadow": d.shadow,
                "job_id": d.job_id,
                "token_id": d.token_id,
                "trust": d.trust,
            }
        },
    });
    if !actor.is_empty() {
        f["actor"] = Value::Object(actor);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator() -> jsonschema::Validator {
        let text = include_str!("../../schemas/ocsf/detection_finding-1.8.0.schema.json");
        let schema: Value = serde_json::from_str(text).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    }

    fn errors(v: &jsonschema::Validator, f: &Value) -> Vec<String> {
        v.iter_errors(f)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    #[tokio::test]
    async fn every_demo_decision_is_a_valid_ocsf_detection_finding_with_its_evidence() {
        let file = format!(
            "{}/fixtures/scenarios/demo_day/events.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let dir = std::env::temp_dir().join(format!("quench-ocsf-{:x}", fastrand::u64(..)));
        let mut cfg = crate::config::Config::default();
        cfg.evidence.dir = Some(dir.clone());
        let r = crate::cli::replay(&cfg, &[file], false, &mut std::io::sink())
            .await
            .unwrap();
        assert!(r.decisions.len() >= 4);
        let v = validator();
        let mut events = Vec::new();
        for b in
            crate::evidence::read::table(&dir, crate::evidence::tables::TableKind::Events, None)
                .unwrap()
        {
            let c = crate::evidence::tables::Cols::new(&b);
            events
                .extend((0..b.num_rows()).filter_map(|i| crate::evidence::tables::event_of(&c, i)));
        }
        for d in &r.decisions {
            let f = detection_finding(d, &events);
            let errs = errors(&v, &f);
            assert!(errs.is_empty(), "{errs:#?}\n{f:#}");
            assert_eq!(f["finding_info"]["uid"], d.decision_id.as_str());
            let ev = f["evidences"].as_array().unwrap();
            assert_eq!(ev.len(), d.evidence.len());
            // every evidence event the store holds is described, not only named
            assert!(ev.iter().all(|e| e["data"]["stored"] != false), "{f:#}");
            // without the events (the decisions topic) it is still valid
            let bare = detection_finding(d, &[]);
            let errs = errors(&v, &bare);
            assert!(errs.is_empty(), "{errs:#?}\n{bare:#}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Found on 14 simulated days: an address placed by coordinates only (no city, no country) made a location
    /// OCSF refuses.
    #[test]
    fn an_address_placed_by_coordinates_alone_still_makes_a_valid_finding() {
        let v = validator();
        let mut ev = SessionEvent::new(
            crate::event::SourceInfo {
                family: crate::event::Family::Idp,
                vendor: "okta".into(),
                format: "okta_system_log".into(),
            },
            "e1".into(),
            crate::event::Ts(1_767_225_600_000),
            crate::event::Category::Login,
        );
        ev.network.ip = Some("192.0.2.7".into());
        ev.network.geo = Some(crate::event::Geo {
            lat: 1.35,
            lon: 103.82,
            ..Default::default()
        });
        let f = detection_finding(&sample(), std::slice::from_ref(&ev));
        assert_eq!(f["evidences"][0]["src_endpoint"]["ip"], "192.0.2.7");
        assert!(errors(&v, &f).is_empty(), "{:#?}", errors(&v, &f));
        ev.network.geo.as_mut().unwrap().country = Some("SG".into());
        let f = detection_finding(&sample(), std::slice::from_ref(&ev));
        assert_eq!(
            f["evidences"][0]["src_endpoint"]["location"]["country"],
            "SG"
        );
        assert!(errors(&v, &f).is_empty(), "{:#?}", errors(&v, &f));
    }

    /// Found by an outside review: a claimed principal (`claimed:user@example.com`) passed for an e-mail address,
    /// and a long-form IPv4-mapped address was longer than OCSF allows; both made findings OCSF refuses.
    #[test]
    fn claimed_principals_and_long_form_addresses_still_make_valid_findings() {
        let v = validator();
        assert!(is_email("a.b+c@example.co.uk"));
        assert!(!is_email("claimed:user@example.com"));
        assert!(!is_email("agent:x@example.com"));
        assert!(!is_email("a@localhost"));
        let mut d = sample();
        d.principal = Some("claimed:user0044@example.com".into());
        let mut ev = SessionEvent::new(
            crate::event::SourceInfo {
                family: crate::event::Family::Agent,
                vendor: "mcp".into(),
                format: "mcp".into(),
            },
            "e1".into(),
            crate::event::Ts(1_767_225_600_000),
            crate::event::Category::ToolCall,
        );
        ev.principal.email = Some("claimed:user0044@example.com".into());
        ev.network.ip = Some("0000:0000:0000:0000:0000:ffff:193.27.14.1".into());
        let f = detection_finding(&d, std::slice::from_ref(&ev));
        assert!(errors(&v, &f).is_empty(), "{:#?}\n{f:#}", errors(&v, &f));
        assert_eq!(
            f["evidences"][0]["src_endpoint"]["ip"],
            "::ffff:193.27.14.1"
        );
        assert!(f["actor"]["user"].get("email_addr").is_none());
    }

    fn sample() -> Decision {
        serde_json::from_value(json!({
            "decision_id": "d1", "decided_at": "2026-01-01T00:00:00Z", "event_time": "2026-01-01T00:00:00Z",
            "action": "terminate_session", "principal": "alice@example.com", "principal_id": "00u1",
            "principal_kind": "human", "token_id": null, "session_id": "s1", "job_id": null, "score": 0.95,
            "findings": [{"detector": "session_hijack", "score": 0.9, "reason": "cookie replayed"}],
            "evidence": ["e1"],
        }))
        .unwrap()
    }

    #[test]
    fn the_schema_refuses_what_ocsf_does_not_allow() {
        let v = validator();
        let good = detection_finding(&sample(), &[]);
        assert!(errors(&v, &good).is_empty(), "{:#?}", errors(&v, &good));
        for (what, mutate) in [
            (
                "no class",
                Box::new(|f: &mut Value| {
                    f.as_object_mut().unwrap().remove("class_uid");
                }) as Box<dyn Fn(&mut Value)>,
            ),
            (
                "a misspelled attribute",
                Box::new(|f: &mut Value| f["severity_idd"] = json!(4)),
            ),
            (
                "a severity OCSF lacks",
                Box::new(|f: &mut Value| f["severity_id"] = json!(7)),
            ),
            (
                "time as a string",
                Box::new(|f: &mut Value| f["time"] = json!("2026-01-01")),
            ),
            (
                "an evidence with nothing in it",
                Box::new(|f: &mut Value| f["evidences"] = json!([{}])),
            ),
            (
                "a malformed e-mail",
                Box::new(|f: &mut Value| f["actor"]["user"]["email_addr"] = json!("not mail")),
            ),
        ] {
            let mut f = good.clone();
            mutate(&mut f);
            assert!(!errors(&v, &f).is_empty(), "{what} passed validation");
        }
    }
}
