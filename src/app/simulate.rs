//! `quench simulate`: labelled, realistic traffic in the vendor formats Quench reads.
//!
//! In: the number of people, agents and days, and a seed. Out: `DIR/events.jsonl` (Okta System Log, Google
//! Workspace Reports, Salesforce event monitoring, Kong http-log and OTLP/JSON GenAI spans, time-ordered) and `DIR/labels.json` (the attacks
//! with their subject, kind, first malicious event and acceptable actions; the benign principals), and
//! `DIR/quench.toml`: how an operator of this organisation configures Quench's trust in its inputs (the agent
//! platform's configuration audit, delivered as native events, is authoritative for its agents' configuration).
//! `quench eval DIR` reads it unless given `--config`. Deterministic per seed. State: none.
//!
//! Benign life: people work weekdays in their home city's hours (one IdP session a day, SSO every 30–90 min,
//! Drive views, hourly token refreshes); some fly to another city (slower than the travel threshold, with an
//! airport hop on long flights), some switch a VPN on (the IdP flags half the exits as proxies), some hop from
//! home broadband to a mobile carrier whose egress is geolocated hundreds of km away, some also use a phone. Service accounts call APIs through the gateway
//! at steady rates with a quarter-end burst; nightly agent jobs read their own data domain and upload to their
//! own destination (a few are reconfigured to a new destination and data domain, announced by a configuration
//! change); sales people export CRM data to their BI integration every day. Attacks: session-token theft
//! and replay, impossible-travel login, refresh-token reuse, agent job pivoting to a new data domain, agent
//! exfiltration to a new destination, token scraping, bulk CRM export to a new integration.

use crate::decide::Action;
use crate::event::Ts;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

use super::eval::{Attack, Labels};

/// What to simulate.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    pub people: usize,
    pub agents: usize,
    pub days: usize,
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct SimSummary {
    pub events: usize,
    pub attacks: usize,
    pub benign: usize,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }
}

struct City {
    name: &'static str,
    lat: f64,
    lon: f64,
    country: &'static str,
    asn: u32,
    as_org: &'static str,
    mobile_asn: u32,
}

const fn city(
    name: &'static str,
    lat: f64,
    lon: f64,
    country: &'static str,
    asn: u32,
    as_org: &'static str,
    mobile_asn: u32,
) -> City {
    City {
        name,
        lat,
        lon,
        country,
        asn,
        as_org,
        mobile_asn,
    }
}

const HOMES: &[City] = &[
    city(
        "Chicago",
        41.88,
        -87.63,
        "United States",
        7922,
        "Comcast Cable",
        21928,
    ),
    city(
        "New York",
        40.71,
        -74.01,
        "United States",
        701,
        "Verizon",
        22394,
    ),
    city(
        "San Francisco",
        37.77,
        -122.42,
        "United States",
        7018,
        "AT&T",
        20057,
    ),
    city(
        "Denver",
        39.74,
        -104.99,
        "United States",
        209,
        "Lumen",
        21928,
    ),
    city("Toronto", 43.65, -79.38, "Canada", 812, "Rogers", 812),
    city(
        "London",
        51.51,
        -0.13,
        "United Kingdom",
        2856,
        "British Telecom",
        12576,
    ),
    city(
        "Berlin",
        52.52,
        13.40,
        "Germany",
        3320,
        "Deutsche Telekom",
        3209,
    ),
    city("Paris", 48.86, 2.35, "France", 3215, "Orange", 51207),
    city("Madrid", 40.42, -3.70, "Spain", 3352, "Telefonica", 12430),
    city("Bangalore", 12.97, 77.59, "India", 24560, "Airtel", 45609),
    city(
        "Singapore",
        1.35,
        103.82,
        "Singapore",
        9506,
        "Singtel",
        4773,
    ),
    city("Sydney", -33.87, 151.21, "Australia", 1221, "Telstra", 4804),
    city("Tokyo", 35.68, 139.69, "Japan", 2516, "KDDI", 17676),
    city("Sao Paulo", -23.55, -46.63, "Brazil", 28573, "Claro", 26599),
];
const HUB: City = city(
    "Dubai",
    25.25,
    55.36,
    "United Arab Emirates",
    5384,
    "Etisalat",
    5384,
);
const VPN_EXITS: &[City] = &[
    city(
        "Frankfurt",
        50.11,
        8.68,
        "Germany",
        60729,
        "VPN Exit GmbH",
        60729,
    ),
    city("Amsterdam", 52.37, 4.90, "Netherlands", 9009, "M247", 9009),
];
const ATTACKER: &[City] = &[
    city(
        "Jakarta",
        -6.21,
        106.85,
        "Indonesia",
        7713,
        "PT Telekomunikasi Indonesia",
        7713,
    ),
    city("Lagos", 6.52, 3.38, "Nigeria", 29465, "MTN Nigeria", 29465),
    city(
        "Bucharest",
        44.43,
        26.10,
        "Romania",
        8708,
        "RCS & RDS",
        8708,
    ),
    city(
        "Ho Chi Minh City",
        10.82,
        106.63,
        "Vietnam",
        45899,
        "VNPT",
        45899,
    ),
];
const UAS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
];
const PHONE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 OktaVerify/9.30";
const ATTACKER_UA: &str = "python-requests/2.32.3";
const APPS: &[&str] = &[
    "Salesforce",
    "Slack",
    "Google Workspace",
    "Jira",
    "GitHub",
    "Zoom",
];
/// Agent roles: (data domain label for docs, tool, gateway service).
const AGENT_ROLES: &[(&str, &str)] = &[
    ("read_project_metadata", "projects-api"),
    ("read_crm_contacts", "crm-api"),
];

const T0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z, a Monday
const H: i64 = 3_600_000;
const MIN: i64 = 60_000;

fn iso(ms: i64) -> String {
    Ts(ms).to_rfc3339()
}

fn km(a: (f64, f64), b: (f64, f64)) -> f64 {
    crate::detect::haversine_km(a.0, a.1, b.0, b.1)
}

/// Time to fly between two places: cruise at 750 km/h plus 2 h on the ground.
fn flight_ms(a: (f64, f64), b: (f64, f64)) -> i64 {
    ((km(a, b) / 750.0 + 2.0) * H as f64) as i64
}

struct Person {
    email: String,
    id: String,
    home: usize,
    ua: &'static str,
    device: String,
    ip: String,
    phone: bool,
    vpn: bool,
    mobile: bool,
    traveller: bool,
    /// Exports CRM data to the team's BI integration every working day.
    sales: bool,
}

struct Out {
    lines: Vec<(i64, u64, String)>,
    seq: u64,
}

impl Out {
    fn push(&mut self, t: i64, v: Value) {
        self.seq += 1;
        self.lines.push((t, self.seq, v.to_string()));
    }
}

#[allow(clippy::too_many_arguments)]
fn okta(
    o: &mut Out,
    t: i64,
    etype: &str,
    p: &Person,
    c: &City,
    ip: &str,
    session: &str,
    ua: &str,
    device: Option<&str>,
    proxy: bool,
    asn: u32,
    extra_target: Option<Value>,
) {
    let mut target = vec![
        json!({"id": "0oa-app", "type": "AppInstance", "alternateId": APPS[(t / MIN) as usize % APPS.len()], "displayName": APPS[(t / MIN) as usize % APPS.len()]}),
    ];
    if let Some(x) = extra_target {
        target.push(x);
    }
    o.push(t, json!({
        "uuid": format!("okta-{}-{}-{}", p.id, t, o.seq),
        "published": iso(t),
        "eventType": etype,
        "version": "0",
        "severity": "INFO",
        "actor": {"id": p.id, "type": "User", "alternateId": p.email, "displayName": p.email},
        "client": {"userAgent": {"rawUserAgent": ua}, "ipAddress": ip, "device": "Computer",
                   "geographicalContext": {"city": c.name, "country": c.country, "geolocation": {"lat": c.lat, "lon": c.lon}}},
        "authenticationContext": {"externalSessionId": session, "rootSessionId": session},
        "outcome": {"result": "SUCCESS"},
        "securityContext": {"asNumber": asn, "asOrg": c.as_org, "isProxy": proxy},
        "debugContext": {"debugData": match device { Some(d) => json!({"dtHash": d}), None => json!({}) }},
        "target": target,
    }));
}

fn refresh(o: &mut Out, t: i64, p: &Person, c: &City, ip: &str, token: &str, reuse: bool) {
    let etype = if reuse {
        "app.oauth2.as.token.detect_reuse"
    } else {
        "app.oauth2.as.token.grant.refresh_token"
    };
    o.push(t, json!({
        "uuid": format!("okta-rt-{}-{}-{}", p.id, t, o.seq),
        "published": iso(t),
        "eventType": etype,
        "actor": {"id": "0oa-desktop-client", "type": "PublicClientApp", "alternateId": "Desktop client"},
        "client": {"ipAddress": ip, "id": "0oa-desktop-client",
                   "geographicalContext": {"city": c.name, "country": c.country, "geolocation": {"lat": c.lat, "lon": c.lon}}},
        "outcome": {"result": if reuse { "FAILURE" } else { "SUCCESS" }},
        "securityContext": {"asNumber": c.asn, "asOrg": c.as_org, "isProxy": false},
        "debugContext": {"debugData": {"grantType": "refresh_token"}},
        "target": [{"id": token, "type": "refresh_token"}, {"id": p.id, "type": "User", "alternateId": p.email}],
    }));
}

#[allow(clippy::too_many_arguments)]
fn sf_export(o: &mut Out, t: i64, p: &Person, ip: &str, session: &str, records: u64, app: &str) {
    let seq = o.seq;
    o.push(
        t,
        json!({
            "attributes": {"type": "BulkApiResultEvent"},
            "EventDate": iso(t),
            "EventIdentifier": format!("sf-{}-{t}-{seq}", p.id),
            "Username": p.email,
            "UserId": format!("005{}", &p.id[3..]),
            "SourceIp": ip,
            "SessionKey": session,
            "LoginKey": format!("lk-{session}"),
            "RowsProcessed": records,
            "QueriedEntities": "Account",
            "ConnectedAppId": app,
        }),
    );
}

fn drive(o: &mut Out, t: i64, p: &Person, ip: &str, rng: &mut Rng) {
    o.push(t, json!({
        "kind": "admin#reports#activity",
        "id": {"time": iso(t), "uniqueQualifier": rng.next().to_string(), "applicationName": "drive", "customerId": "C0sim"},
        "actor": {"callerType": "USER", "email": p.email, "profileId": p.id},
        "ipAddress": ip,
        "events": [{"type": "access", "name": "view", "parameters": [{"name": "doc_id", "value": format!("doc-{}", rng.below(5000))}, {"name": "doc_type", "value": "document"}]}],
    }));
}

#[allow(clippy::too_many_arguments)]
fn kong(
    o: &mut Out,
    t: i64,
    method: &str,
    service: &str,
    consumer: &str,
    token: &str,
    ip: &str,
    ua: &str,
) {
    o.push(t, json!({
        "request": {"method": method, "uri": format!("/v1/{service}/items"), "size": 280, "headers": {"user-agent": ua, "accept": "application/json"}},
        "upstream_uri": format!("/v1/{service}/items"),
        "response": {"status": 200, "size": 2048},
        "client_ip": ip,
        "started_at": t,
        "service": {"name": service, "host": format!("{service}.internal")},
        "consumer": {"id": format!("c-{consumer}"), "username": consumer},
        "authenticated_entity": {"id": token},
    }));
}

#[allow(clippy::too_many_arguments)]
fn span(
    o: &mut Out,
    t: i64,
    agent: &str,
    job: &str,
    token: &str,
    tool: &str,
    dest: Option<&str>,
    rng: &mut Rng,
) {
    let mut attrs = vec![
        json!({"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}}),
        json!({"key": "gen_ai.agent.id", "value": {"stringValue": agent}}),
        json!({"key": "gen_ai.conversation.id", "value": {"stringValue": job}}),
        json!({"key": "gen_ai.tool.name", "value": {"stringValue": tool}}),
        json!({"key": "http.request.header.x-token-id", "value": {"arrayValue": {"values": [{"stringValue": token}]}}}),
    ];
    if let Some(d) = dest {
        attrs.push(json!({"key": "quench.destination", "value": {"stringValue": d}}));
    }
    o.push(t, json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "agent-runtime"}}]},
        "scopeSpans": [{"scope": {"name": "genai"}, "spans": [{
            "traceId": format!("{:032x}", (rng.next() as u128) << 64 | rng.next() as u128),
            "spanId": format!("{:016x}", rng.next()),
            "name": format!("execute_tool {tool}"),
            "startTimeUnixNano": (t as i128 * 1_000_000).to_string(),
            "endTimeUnixNano": ((t + 400) as i128 * 1_000_000).to_string(),
            "attributes": attrs,
            "status": {"code": 1}}]}]}]}));
}

/// An attack label: who (principal, token or job), when it began, and which actions count as catching it.
fn labelled(
    id: String,
    kind: &str,
    principal: Option<String>,
    token_id: Option<String>,
    job_id: Option<String>,
    at: i64,
    actions: &[Action],
) -> Attack {
    Attack {
        id,
        kind: kind.into(),
        principal,
        token_id,
        job_id,
        first_malicious_at: Ts(at),
        actions: actions.to_vec(),
    }
}

fn tz_ms(c: &City) -> i64 {
    (c.lon / 15.0).round() as i64 * H
}

/// The configuration the simulated organisation runs Quench with: its native events are the agent platform's own
/// configuration audit, which vouches for the jobs it configures. Without it, Quench would treat a configuration
/// announcement as a claim (as it must for native events from an unknown writer: else anyone able to write one
/// could announce an exfiltration destination and blind destination_drift).
pub const OPERATOR_CONFIG: &str =
    "# Written by `quench simulate`: the trust this organisation gives its inputs.\n\
[normalize.formats.native]\n\
family = \"agent\"\n\
vendor = \"agent-platform\"\n\
vouched = true\n";

/// Write `events.jsonl`, `labels.json` and `quench.toml` into `dir`.
pub fn simulate(cfg: SimConfig, dir: &Path) -> std::io::Result<SimSummary> {
    let mut rng = Rng(cfg.seed ^ 0x5EED);
    let mut o = Out {
        lines: Vec::new(),
        seq: 0,
    };
    let days = cfg.days.max(1) as i64;
    let people: Vec<Person> = (0..cfg.people)
        .map(|i| Person {
            email: format!("user{i:04}@example.com"),
            id: format!("00u{i:06}"),
            home: rng.below(HOMES.len() as u64) as usize,
            ua: UAS[rng.below(UAS.len() as u64) as usize],
            device: format!("dev-{i:04}"),
            ip: format!(
                "{}.{}.{}.{}",
                20 + rng.below(180),
                rng.below(250),
                rng.below(250),
                1 + rng.below(250)
            ),
            phone: rng.chance(0.3),
            vpn: rng.chance(0.15),
            mobile: rng.chance(0.2),
            traveller: rng.chance(0.1),
            sales: rng.chance(0.1),
        })
        .collect();
    let n_attacks = (cfg.people / 250).max(1);
    let mut attacks: Vec<Attack> = Vec::new();
    let pick_day = |rng: &mut Rng, from: i64| -> i64 {
        // a weekday at or after `from`
        let mut d = from + rng.below((days - from).max(1) as u64) as i64;
        while d % 7 >= 5 && d > 0 {
            d -= 1;
        }
        d.max(0)
    };

    // --- people --------------------------------------------------------------------------------------------
    // victims: (person index, day, kind)
    let mut victims: Vec<(usize, i64, &'static str)> = Vec::new();
    for kind in [
        "session_theft",
        "impossible_travel",
        "refresh_token_reuse",
        "bulk_crm_export",
    ] {
        for _ in 0..n_attacks {
            // a victim who is not travelling and not already a victim (bounded tries)
            for _ in 0..100 {
                let p = rng.below(people.len().max(1) as u64) as usize;
                if people.is_empty()
                    || victims.iter().any(|v| v.0 == p)
                    || people[p].traveller
                    || (kind == "bulk_crm_export") != people[p].sales
                {
                    continue;
                }
                // exports need a week of history first
                let d = pick_day(
                    &mut rng,
                    if kind == "bulk_crm_export" {
                        7.min(days - 1)
                    } else {
                        1.min(days - 1)
                    },
                );
                victims.push((p, d, kind));
                break;
            }
        }
    }
    for (pi, p) in people.iter().enumerate() {
        let home = &HOMES[p.home];
        let mut here: &City = home;
        // a traveller flies out after work on `trip` and back two days later
        let trip = if p.traveller {
            Some(pick_day(&mut rng, 1.min(days - 1)))
        } else {
            None
        };
        let away: &City =
            &HOMES[(p.home + 1 + rng.below(HOMES.len() as u64 - 1) as usize) % HOMES.len()];
        let mut free_at = i64::MIN; // earliest time the person can act (after a flight)
        for d in 0..days {
            if d % 7 >= 5 {
                continue;
            }
            let day0 = T0 + d * 24 * H;
            let start =
                (day0 + 8 * H + 30 * MIN - tz_ms(here) + rng.range(-40, 40) * MIN).max(free_at);
            let end = day0 + 17 * H + 30 * MIN - tz_ms(here) + rng.range(-40, 40) * MIN;
            if end <= start {
                continue;
            }
            let ip = if std::ptr::eq(here, home) {
                p.ip.clone()
            } else {
                format!("{}.{}.9.{}", 100 + p.home, d, 2 + pi % 250)
            };
            let session = format!("102{}d{d}", p.id);
            let rt = format!("rt-{}-{d}", p.id);
            okta(
                &mut o,
                start,
                "user.session.start",
                p,
                here,
                &ip,
                &session,
                p.ua,
                Some(&p.device),
                false,
                here.asn,
                None,
            );
            let mut t = start + rng.range(20, 60) * MIN;
            let mut n = 0;
            while t < end {
                n += 1;
                if p.mobile && n == 3 {
                    // the carrier's egress is geolocated to its hub, hundreds of km away (geo inaccuracy)
                    let hub = City {
                        name: "Carrier egress",
                        lat: (here.lat + 6.5).min(80.0),
                        ..city(
                            here.name,
                            here.lat,
                            here.lon,
                            here.country,
                            here.mobile_asn,
                            "Mobile carrier",
                            here.mobile_asn,
                        )
                    };
                    okta(
                        &mut o,
                        t,
                        "user.authentication.sso",
                        p,
                        &hub,
                        &format!("172.56.{}.{}", pi % 250, d),
                        &session,
                        p.ua,
                        Some(&p.device),
                        false,
                        here.mobile_asn,
                        None,
                    );
                } else if p.vpn && n == 2 {
                    // half the VPN exits are flagged as proxies by the IdP, half are not
                    let exit = &VPN_EXITS[pi % VPN_EXITS.len()];
                    okta(
                        &mut o,
                        t,
                        "user.authentication.sso",
                        p,
                        exit,
                        &format!("185.220.101.{}", pi % 250),
                        &session,
                        p.ua,
                        Some(&p.device),
                        pi % 2 == 0,
                        exit.asn,
                        None,
                    );
                } else {
                    okta(
                        &mut o,
                        t,
                        "user.authentication.sso",
                        p,
                        here,
                        &ip,
                        &session,
                        p.ua,
                        Some(&p.device),
                        false,
                        here.asn,
                        None,
                    );
                }
                if rng.chance(0.5) {
                    refresh(&mut o, t + 5_000, p, here, &ip, &rt, false);
                }
                if rng.chance(0.4) {
                    drive(&mut o, t + 30_000, p, &ip, &mut rng);
                }
                if p.sales && n <= 3 {
                    let records = 800 + rng.below(3200);
                    sf_export(
                        &mut o,
                        t + 60_000,
                        p,
                        &ip,
                        &format!("sk-{session}"),
                        records,
                        "0H4TableauCrmSync",
                    );
                }
                t += rng.range(30, 90) * MIN;
            }
            if p.phone && rng.chance(0.5) {
                let pt = start + rng.range(60, 240) * MIN;
                if pt < end {
                    okta(
                        &mut o,
                        pt,
                        "user.session.start",
                        p,
                        here,
                        &format!("172.58.{}.{}", pi % 250, d),
                        &format!("102{}p{d}", p.id),
                        PHONE_UA,
                        Some(&format!("{}-phone", p.device)),
                        false,
                        here.mobile_asn,
                        None,
                    );
                }
            }
            // attacks on this person today
            for (_, vd, kind) in victims.iter().filter(|v| v.0 == pi && v.1 == d) {
                let a = &ATTACKER[rng.below(ATTACKER.len() as u64) as usize];
                let aip = format!(
                    "36.{}.{}.{}",
                    80 + rng.below(20),
                    rng.below(250),
                    1 + rng.below(250)
                );
                let at = start + rng.range(90, 240) * MIN;
                match *kind {
                    "session_theft" => {
                        for k in 0..3 {
                            okta(
                                &mut o,
                                at + k * 2 * MIN,
                                "user.authentication.sso",
                                p,
                                a,
                                &aip,
                                &session,
                                ATTACKER_UA,
                                None,
                                false,
                                a.asn,
                                None,
                            );
                        }
                        attacks.push(labelled(
                            format!("theft-{}-d{vd}", p.id),
                            "session_theft",
                            Some(p.email.clone()),
                            None,
                            None,
                            at,
                            &[Action::TerminateSession, Action::RevokeToken],
                        ));
                    }
                    "impossible_travel" => {
                        okta(
                            &mut o,
                            at,
                            "user.session.start",
                            p,
                            a,
                            &aip,
                            &format!("102{}x{d}", p.id),
                            UAS[(p.home + 1) % UAS.len()],
                            None,
                            false,
                            a.asn,
                            None,
                        );
                        attacks.push(labelled(
                            format!("travel-{}-d{vd}", p.id),
                            "impossible_travel",
                            Some(p.email.clone()),
                            None,
                            None,
                            at,
                            &[
                                Action::StepUp,
                                Action::RevokeToken,
                                Action::TerminateSession,
                            ],
                        ));
                    }
                    "bulk_crm_export" => {
                        sf_export(
                            &mut o,
                            at,
                            p,
                            &aip,
                            &format!("sk-{session}"),
                            250_000 + rng.below(100_000),
                            "0H4DataLoaderExt",
                        );
                        attacks.push(labelled(
                            format!("export-{}-d{vd}", p.id),
                            "bulk_crm_export",
                            Some(p.email.clone()),
                            None,
                            None,
                            at,
                            &[Action::RevokeToken, Action::TerminateSession],
                        ));
                    }
                    _ => {
                        refresh(&mut o, at, p, a, &aip, &rt, true);
                        attacks.push(labelled(
                            format!("reuse-{}-d{vd}", p.id),
                            "refresh_token_reuse",
                            Some(p.email.clone()),
                            None,
                            None,
                            at,
                            &[Action::RevokeToken, Action::TerminateSession],
                        ));
                    }
                }
            }
            // travel: fly out after work on the trip day, back after two working days away
            if let Some(td) = trip {
                let (from, to): (&City, &City) = if d == td {
                    (home, away)
                } else if d == td + 2 {
                    (away, home)
                } else {
                    (here, here)
                };
                if !std::ptr::eq(from, to) {
                    let depart = end + rng.range(60, 180) * MIN;
                    let long = km((from.lat, from.lon), (to.lat, to.lon)) > 7000.0;
                    let mut arrive = depart + flight_ms((from.lat, from.lon), (to.lat, to.lon));
                    if long {
                        let hop = depart + flight_ms((from.lat, from.lon), (HUB.lat, HUB.lon));
                        okta(
                            &mut o,
                            hop,
                            "user.authentication.sso",
                            p,
                            &HUB,
                            "94.200.1.7",
                            &format!("102{}h{d}", p.id),
                            p.ua,
                            Some(&p.device),
                            false,
                            HUB.asn,
                            None,
                        );
                        arrive = hop + flight_ms((HUB.lat, HUB.lon), (to.lat, to.lon));
                    }
                    free_at = arrive;
                    here = to;
                }
            }
        }
    }

    // --- service accounts ---------------------------------------------------------------------------------------
    let services = (cfg.people / 100).max(3);
    let scraped: Vec<usize> = (0..n_attacks.min(services))
        .map(|i| (i * 7 + 1) % services)
        .collect();
    for s in 0..services {
        let consumer = format!("svc-{s:03}");
        let token = format!("tok-svc-{s:03}");
        let per_min = 1 + rng.below(4) as i64;
        let scrape_day = if scraped.contains(&s) {
            Some(pick_day(&mut rng, 2.min(days - 1)))
        } else {
            None
        };
        for d in 0..days {
            if d % 7 >= 5 {
                continue;
            }
            let day0 = T0 + d * 24 * H;
            let burst = d == days - 1 || (d % 7 == 4 && d >= 7); // quarter-end style bulk work: 3x for an hour
            let mut t = day0 + 6 * H + rng.range(0, 30) * MIN;
            while t < day0 + 20 * H {
                let rate = if burst && (t - day0) / H == 15 {
                    per_min * 3
                } else {
                    per_min
                };
                kong(
                    &mut o,
                    t,
                    "GET",
                    "orders-api",
                    &consumer,
                    &token,
                    "10.20.0.15",
                    "svc-client/1.4",
                );
                t += (60_000 / rate).max(1) + rng.range(-2000, 2000);
            }
            if scrape_day == Some(d) {
                let at = day0 + 14 * H + rng.range(0, 60) * MIN;
                for i in 0..600 {
                    kong(
                        &mut o,
                        at + i * 200,
                        "GET",
                        "orders-api",
                        &consumer,
                        &token,
                        "45.155.205.99",
                        "curl/8.5.0",
                    );
                }
                attacks.push(labelled(
                    format!("scrape-{consumer}-d{d}"),
                    "token_scraping",
                    None,
                    Some(token.clone()),
                    None,
                    at,
                    &[Action::RevokeToken],
                ));
            }
        }
    }

    // --- agents --------------------------------------------------------------------------------------------------
    let mut attacked_agents: Vec<String> = Vec::new();
    let agent_attacks: Vec<(usize, &str)> = (0..n_attacks)
        .flat_map(|i| {
            [
                (i * 2, "agent_domain_pivot"),
                (i * 2 + 1, "agent_exfiltration"),
            ]
        })
        .filter(|(a, _)| *a < cfg.agents)
        .collect();
    for a in 0..cfg.agents {
        let agent = format!("agent-{a:03}");
        let job = format!("job-{agent}");
        let token = format!("tok-{agent}");
        let (mut tool, mut api) = AGENT_ROLES[a % AGENT_ROLES.len()];
        let mut dest = format!("s3://corp-{agent}-out");
        let attack = agent_attacks
            .iter()
            .find(|(i, _)| *i == a)
            .map(|(_, k)| (*k, (days - 1).min(4 + rng.below(3) as i64)));
        // some jobs are legitimately reconfigured: a new destination and the other role's data, announced by the
        // agent platform's configuration audit an hour before the night's run
        let change_day = if attack.is_none() && rng.chance(0.1) {
            Some((days - 1).min(3 + rng.below(4) as i64))
        } else {
            None
        };
        for d in 0..days {
            let start = T0 + d * 24 * H + H + rng.range(0, 60) * MIN;
            if change_day == Some(d) {
                let (new_tool, new_api) = AGENT_ROLES[(a + 1) % AGENT_ROLES.len()];
                let new_dest = format!("s3://corp-{agent}-out-v2");
                let domain = if new_api == "crm-api" {
                    "crm"
                } else {
                    "projects"
                };
                let t = start - H;
                o.push(t, json!({
                    "event_id": format!("cfg-{agent}-d{d}"),
                    "event_time": iso(t),
                    "ingest_time": iso(t),
                    "source": {"family": "agent", "vendor": "agent-platform", "format": "native"},
                    "category": "admin_change",
                    "action": "agent.config.update",
                    "outcome": "success",
                    "principal": {"id": "platform-admin@example.com", "kind": "human", "email": "platform-admin@example.com"},
                    "session": {"job_id": job},
                    "resource": {"app": "agent-platform", "destination": new_dest, "domains": [domain]},
                }));
                tool = new_tool;
                api = new_api;
                dest = new_dest;
            }
            for k in 0..20 {
                let t = start + k * 3 * MIN;
                span(&mut o, t, &agent, &job, &token, tool, None, &mut rng);
                kong(
                    &mut o,
                    t + 800,
                    "GET",
                    api,
                    &agent.replacen("agent-", "", 1),
                    &token,
                    "10.40.0.8",
                    "agent-runtime/2.4",
                );
                if k % 5 == 4 {
                    span(
                        &mut o,
                        t + 5_000,
                        &agent,
                        &job,
                        &token,
                        "upload_sync_report",
                        Some(&dest),
                        &mut rng,
                    );
                }
            }
            if let Some((kind, ad)) = attack.filter(|x| x.1 == d) {
                let at = start + 61 * MIN;
                if kind == "agent_domain_pivot" {
                    span(
                        &mut o,
                        at,
                        &agent,
                        &job,
                        &token,
                        "read_billing_notes",
                        None,
                        &mut rng,
                    );
                    kong(
                        &mut o,
                        at + 900,
                        "GET",
                        "billing-api",
                        &agent.replacen("agent-", "", 1),
                        &token,
                        "10.40.0.8",
                        "agent-runtime/2.4",
                    );
                } else {
                    span(
                        &mut o,
                        at,
                        &agent,
                        &job,
                        &token,
                        "upload_file",
                        Some(&format!("s3://drop-{:x}", rng.next() % 0xffffff)),
                        &mut rng,
                    );
                }
                attacks.push(labelled(
                    format!("{kind}-{agent}-d{ad}"),
                    kind,
                    None,
                    None,
                    Some(job.clone()),
                    at,
                    &[Action::StepUp, Action::RevokeToken],
                ));
                attacked_agents.push(agent.clone());
            }
        }
    }

    // --- write ---------------------------------------------------------------------------------------------------
    o.lines.sort_by_key(|(t, s, _)| (*t, *s));
    std::fs::create_dir_all(dir)?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("events.jsonl"))?);
    for (_, _, l) in &o.lines {
        w.write_all(l.as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let attacked: Vec<&str> = attacks
        .iter()
        .filter_map(|a| a.principal.as_deref())
        .collect();
    let mut benign: Vec<String> = people
        .iter()
        .map(|p| p.email.clone())
        .filter(|e| !attacked.contains(&e.as_str()))
        .collect();
    benign.extend(
        (0..services)
            .filter(|s| !scraped.contains(s))
            .map(|s| format!("svc-{s:03}")),
    );
    benign.extend(
        (0..cfg.agents)
            .map(|a| format!("agent-{a:03}"))
            .filter(|a| !attacked_agents.contains(a)),
    );
    let labels = Labels {
        attacks,
        benign_principals: benign,
        days: days as f64,
    };
    std::fs::write(
        dir.join("labels.json"),
        serde_json::to_vec_pretty(&labels).map_err(std::io::Error::other)?,
    )?;
    std::fs::write(dir.join("quench.toml"), OPERATOR_CONFIG)?;
    Ok(SimSummary {
        events: o.lines.len(),
        attacks: labels.attacks.len(),
        benign: labels.benign_principals.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_writes_the_same_traffic_and_every_attack_kind_appears() {
        let base = std::env::temp_dir().join(format!("quench-sim-{}", std::process::id()));
        let cfg = SimConfig {
            people: 60,
            agents: 4,
            days: 7,
            seed: 42,
        };
        simulate(cfg, &base.join("a")).unwrap();
        let s = simulate(cfg, &base.join("b")).unwrap();
        let read = |d: &str| std::fs::read(base.join(d).join("events.jsonl")).unwrap();
        assert_eq!(read("a"), read("b"));
        let labels: Labels =
            serde_json::from_slice(&std::fs::read(base.join("a/labels.json")).unwrap()).unwrap();
        let kinds: std::collections::BTreeSet<&str> =
            labels.attacks.iter().map(|a| a.kind.as_str()).collect();
        for k in [
            "session_theft",
            "impossible_travel",
            "refresh_token_reuse",
            "agent_domain_pivot",
            "agent_exfiltration",
            "token_scraping",
        ] {
            assert!(kinds.contains(k), "{k} missing from {kinds:?}");
        }
        assert!(s.events > 5000 && s.benign > 50, "{s:?}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
