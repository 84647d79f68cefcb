//! `quench simulate`: the hardest honest exam of Quench we can write: labelled traffic in the vendors' own
//! shapes, delivered as real pipelines deliver it, full of the ordinary things that look like attacks.
//!
//! In: the number of people, agents and days, a seed, and optionally one trap or attack to simulate alone. Out:
//! `DIR/events.jsonl` (Okta System Log, Entra ID sign-ins, the M365 unified audit log, Google Workspace Reports,
//! Salesforce event monitoring, Kong http-log, OTLP/JSON GenAI spans, MCP proxy records and the agent platform's
//! configuration audit) in *arrival* order, each source with its own delivery lag ([`vendors`]);
//! `DIR/labels.json` (each attack with its subject, kind, variant, the event and arrival times of its first
//! malicious event and the actions that count as catching it; the benign principals); and `DIR/quench.toml`, how
//! an operator of this organisation configures Quench ([`world::operator_config`]). Deterministic per seed.
//! State: none.
//!
//! The detectors are not consulted here: the traffic follows the vendors' documented semantics and ordinary
//! life, and the traps ([`TRAPS`]) are the things that fooled earlier versions or an independent evaluation:
//! - networks: dual-stack homes (IPv4 and IPv6 on sibling ASNs, a new temporary IPv6 address daily); a security
//!   proxy (Zscaler) egressing in another country for web traffic while Microsoft 365 bypasses it; iCloud Private
//!   Relay; mobile carriers geolocated to hubs hundreds of km away (and laptops tethered to phones); in-flight
//!   Wi-Fi geolocated to a ground station; one office NAT address for everyone; the corporate VPN; real flights;
//! - vendor session semantics: one Okta session per browser; one Entra session id per device shared by the
//!   browser, Outlook and Teams (different user agents), carried by M365 as `AppAccessContext.AADSessionId` with
//!   `UniqueTokenId`; browsers updating their version mid-week;
//! - people: new hires with no history; an org-wide OAuth app rollout; on-call engineers' weekend bursts at
//!   80x their baseline; quarter-end downloads;
//! - agents: a run id per nightly run of a workflow; vendor-named tools (`workday_get_worker`); MCP servers;
//!   reconfigurations announced on time, late, or not at all (to the organisation's own destinations); agents
//!   that rarely write.
//!
//! Attacks ([`ATTACKS`], each with variants): session-cookie replay; adversary-in-the-middle replay (the victim's
//! exact user agent and device, same country, a cloud provider's network); impossible-travel sign-in while the
//! victim works at home; refresh-token reuse; Entra token replay; M365 mailbox access with the victim's session
//! from a new network; bulk export to a new integration (Salesforce connected app, Drive via a new OAuth app);
//! token scraping at 5-10x a low baseline, sustained (from the usual host, or from outside); an agent reading
//! one object in a new sensitive domain; agent exfiltration at low volume to a new destination; an agent
//! reaching a new MCP server.

mod vendors;
pub mod world;

use crate::decide::Action;
use crate::event::Ts;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use vendors::{Net, Out, Who, H, MIN, S};
use world::{City, CITIES};

use super::labels::{Attack, Labels};

/// Benign traps, each of which can be simulated alone (`--only`).
pub const TRAPS: &[&str] = &[
    "dual_stack",
    "security_proxy",
    "private_relay",
    "carrier_hub",
    "tethering",
    "inflight_wifi",
    "office_nat",
    "corporate_vpn",
    "travel",
    "desktop_apps",
    "browser_update",
    "new_hire",
    "oauth_rollout",
    "on_call_burst",
    "quarter_end",
    "service_burst",
    "vendor_risk_noise",
    "agent_reconfig_announced",
    "agent_reconfig_late",
    "agent_reconfig_unannounced",
    "agent_rare_writer",
];

/// Attack kinds, each of which can be simulated alone (`--only`).
pub const ATTACKS: &[&str] = &[
    "cookie_replay",
    "aitm_replay",
    "impossible_travel",
    "refresh_token_reuse",
    "entra_token_replay",
    "m365_mailbox_access",
    "bulk_export",
    "token_scraping",
    "agent_domain_pivot",
    "agent_exfiltration",
    "agent_new_mcp",
];

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub people: usize,
    pub agents: usize,
    pub days: usize,
    pub seed: u64,
    /// Simulate only this trap or attack kind (with ordinary life around it). Default: everything.
    pub only: Option<String>,
    /// Write the lines in event-time order instead of arrival order (every source's delivery lag removed), to
    /// measure what disorder costs: the same traffic, as if every log arrived at once. Default: arrival order.
    pub event_time_order: bool,
}

impl SimConfig {
    /// How many attacks of `kind` to simulate: alone, an attack kind is simulated twice so that each of its
    /// variants occurs.
    fn n_attacks(&self, kind: &str) -> usize {
        let cfg = self;
        match &cfg.only {
            Some(o) if o == kind => (cfg.people / 250).max(2),
            Some(_) => 0,
            None => (cfg.people / 250).max(1),
        }
    }

    /// Whether a trap or attack kind is on.
    fn on(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == name)
    }

    /// Check `only` names a trap or an attack kind.
    pub fn check(&self) -> Result<(), String> {
        match &self.only {
            Some(o) if !TRAPS.contains(&o.as_str()) && !ATTACKS.contains(&o.as_str()) => {
                Err(format!(
                    "--only {o:?}: no such trap or attack; traps: {}; attacks: {}",
                    TRAPS.join(", "),
                    ATTACKS.join(", ")
                ))
            }
            _ => Ok(()),
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct SimSummary {
    pub events: usize,
    pub attacks: usize,
    pub benign: usize,
    /// How often each trap occurred (people, agents or episodes it applied to).
    pub traps: std::collections::BTreeMap<&'static str, usize>,
}

/// splitmix64.
pub struct Rng(pub u64);
impl Rng {
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.u64() % n.max(1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }
}

const T0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z, a Monday
const DAY: i64 = 24 * H;

/// Browser user agents; `{v}` is the major version, which moves up once in the run (browsers update).
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.2903.86",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.{v} Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
];
const SAFARI: usize = 2;
const OUTLOOK_UA: &str =
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18129; Pro)";
const TEAMS_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0 Teams/24295.605.3225.8804";
const PHONE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 OktaVerify/9.30.0";
const OUTLOOK_MOBILE_UA: &str = "Outlook-iOS/2.0";
/// Attackers' clients: tooling, and browsers other than the victim's.
const ATTACKER_UAS: &[&str] = &[
    "python-requests/2.32.3",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/127.0.0.0 Safari/537.36",
];
const APPS: &[&str] = &["Salesforce", "Slack", "Jira", "GitHub", "Zoom", "Workday"];

/// Agent workflows: (name, vendor-named tools, the MCP server they are reached through, the API behind them).
const ROLES: &[(&str, &[&str], &str, &str)] = &[
    (
        "crm-sync",
        &["salesforce_query_accounts", "hubspot_get_contact"],
        "mcp.salesforce.corp.example",
        "crm-api",
    ),
    (
        "hr-helper",
        &["workday_get_worker", "workday_list_time_off"],
        "mcp.workday.corp.example",
        "hr-api",
    ),
    (
        "finance-close",
        &["netsuite_get_invoice", "netsuite_list_journal_entries"],
        "mcp.netsuite.corp.example",
        "finance-api",
    ),
    (
        "eng-triage",
        &["jira_search_issues", "github_list_pull_requests"],
        "mcp.atlassian.corp.example",
        "projects-api",
    ),
    (
        "support-digest",
        &["zendesk_get_ticket", "zendesk_search_tickets"],
        "mcp.zendesk.corp.example",
        "support-api",
    ),
];

fn ua_of(browser: usize, version: u32) -> String {
    BROWSERS[browser].replace("{v}", &version.to_string())
}

fn tz_ms(c: &City) -> i64 {
    (c.lon / 15.0).round() as i64 * H
}

fn km(a: (f64, f64), b: (f64, f64)) -> f64 {
    crate::geo::haversine_km(a.0, a.1, b.0, b.1)
}

struct Person {
    email: String,
    okta_id: String,
    oid: String,
    gid: String,
    home: usize,
    hh: u64,
    browser: usize,
    version: u32,
    update_day: Option<i64>,
    laptop: String,
    phone: Option<String>,
    dual_stack: bool,
    zscaler: bool,
    relay: bool,
    vpn: bool,
    tether: bool,
    office: bool,
    traveller: bool,
    start_day: i64,
    drive: bool,
    sales: bool,
    finance: bool,
    engineer: bool,
}

impl Person {
    fn who(&self) -> Who<'_> {
        Who {
            email: &self.email,
            okta_id: &self.okta_id,
            oid: &self.oid,
            google_id: &self.gid,
        }
    }
}

/// Where a person is and on which networks, for one day.
struct Day<'a> {
    here: &'a City,
    here_i: usize,
    at_home: bool,
    start: i64,
    office: Option<(i64, i64)>,
    vpn: Option<(i64, i64)>,
    tether: Option<(i64, i64)>,
}

/// Which traffic a request is: browser traffic goes through the security proxy or Private Relay; Microsoft 365
/// traffic bypasses the proxy (as Microsoft recommends) and never uses Private Relay.
#[derive(Clone, Copy, PartialEq)]
enum Traffic {
    Web,
    M365,
}

struct Labeller {
    attacks: Vec<Attack>,
}

impl Labeller {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        kind: &str,
        variant: &str,
        subject: (Option<&str>, Option<&str>, Option<&str>),
        at: i64,
        arrival: i64,
        actions: &[Action],
    ) {
        let n = self.attacks.iter().filter(|a| a.kind == kind).count();
        self.attacks.push(Attack {
            id: format!("{kind}-{n}"),
            kind: kind.into(),
            variant: Some(variant.into()),
            principal: subject.0.map(str::to_string),
            token_id: subject.1.map(str::to_string),
            job_id: subject.2.map(str::to_string),
            first_malicious_at: Ts(at),
            first_malicious_arrival: Some(Ts(arrival)),
            actions: actions.to_vec(),
        });
    }
}

const SESSION_ACTIONS: &[Action] = &[Action::RevokeToken, Action::TerminateSession];

/// Write `events.jsonl`, `labels.json` and `quench.toml` into `dir`. The phases draw from one random stream in a
/// fixed order (people, victims, their days, service accounts, agents), so a seed always writes the same traffic.
pub fn simulate(cfg: &SimConfig, dir: &Path) -> std::io::Result<SimSummary> {
    cfg.check().map_err(std::io::Error::other)?;
    let mut o = Out::new(cfg.seed);
    o.by_event_time = cfg.event_time_order;
    let mut sim = Sim {
        cfg,
        rng: Rng(cfg.seed ^ 0x5EED),
        o,
        days: cfg.days.max(2) as i64,
        traps: Default::default(),
        labels: Labeller {
            attacks: Vec::new(),
        },
    };
    let people = sim.people();
    let victims = sim.victims(&people);
    sim.live(&people, &victims);
    let (services, scraped) = sim.services();
    let attacked_agents = sim.agents();
    sim.write(dir, &people, services, &scraped, &attacked_agents)
}

/// What the phases of [`simulate`] share: the configuration, the one random stream, the lines written, the
/// traps counted and the attacks labelled.
struct Sim<'c> {
    cfg: &'c SimConfig,
    rng: Rng,
    o: Out,
    days: i64,
    traps: Traps,
    labels: Labeller,
}

/// The benign traps simulated, counted by name.
#[derive(Default)]
struct Traps(std::collections::BTreeMap<&'static str, usize>);

impl Traps {
    fn count(&mut self, trap: &'static str, yes: bool) {
        if yes {
            *self.0.entry(trap).or_default() += 1;
        }
    }
}

impl Sim<'_> {
    /// The fields a phase works with.
    fn parts(
        &mut self,
    ) -> (
        &SimConfig,
        &mut Rng,
        &mut Out,
        i64,
        &mut Traps,
        &mut Labeller,
    ) {
        (
            self.cfg,
            &mut self.rng,
            &mut self.o,
            self.days,
            &mut self.traps,
            &mut self.labels,
        )
    }

    /// The organisation's people, and the traps their traits set.
    fn people(&mut self) -> Vec<Person> {
        let (cfg, rng, _, days, traps, _) = self.parts();
        let on = |t: &str| cfg.on(t);
        let people: Vec<Person> = (0..cfg.people)
            .map(|i| {
                let browser = rng.below(BROWSERS.len() as u64) as usize;
                Person {
                    email: format!("user{i:04}@example.com"),
                    okta_id: format!("00u{i:06}"),
                    oid: format!("{:08x}-5f1c-4e2a-9b1d-{:012x}", 0x1000 + i, i),
                    gid: format!("1{:020}", i),
                    home: rng.below(CITIES.len() as u64) as usize,
                    hh: rng.below(60_000),
                    browser,
                    version: if browser == SAFARI { 1 } else { 131 },
                    update_day: (on("browser_update") && rng.chance(0.5))
                        .then(|| rng.range(1, days)),
                    laptop: format!("{:08x}-dev-{i:04}", rng.u64() as u32),
                    phone: (on("carrier_hub") && rng.chance(0.4))
                        .then(|| format!("{:08x}-ph-{i:04}", rng.u64() as u32)),
                    dual_stack: on("dual_stack") && rng.chance(0.45),
                    zscaler: on("security_proxy") && rng.chance(0.2),
                    relay: on("private_relay") && browser == SAFARI && rng.chance(0.6),
                    vpn: on("corporate_vpn") && rng.chance(0.15),
                    tether: on("tethering") && rng.chance(0.1),
                    office: on("office_nat") && rng.chance(0.5),
                    traveller: (on("travel") || on("inflight_wifi")) && rng.chance(0.08),
                    start_day: if on("new_hire") && rng.chance(0.04) {
                        rng.range(2, days)
                    } else {
                        0
                    },
                    drive: rng.chance(0.4),
                    sales: rng.chance(0.1),
                    finance: on("quarter_end") && rng.chance(0.08),
                    engineer: rng.chance(0.08),
                }
            })
            .collect();

        for p in &people {
            traps.count("dual_stack", p.dual_stack);
            traps.count("security_proxy", p.zscaler);
            traps.count("private_relay", p.relay);
            traps.count("carrier_hub", p.phone.is_some());
            traps.count("tethering", p.tether);
            traps.count("corporate_vpn", p.vpn);
            traps.count("office_nat", p.office);
            traps.count("travel", p.traveller && on("travel"));
            traps.count("desktop_apps", on("desktop_apps"));
            traps.count("browser_update", p.update_day.is_some());
            traps.count("new_hire", p.start_day > 0);
            traps.count("quarter_end", p.finance);
            traps.count("on_call_burst", p.engineer && on("on_call_burst"));
            traps.count("oauth_rollout", on("oauth_rollout"));
        }
        people
    }

    /// The people attacked: (person, day, kind, variant index).
    fn victims(&mut self, people: &[Person]) -> Vec<(usize, i64, &'static str, usize)> {
        let Sim { cfg, rng, days, .. } = self;
        let n_attacks = |kind: &str| cfg.n_attacks(kind);
        let days = *days;
        // --- victims: (person, day, kind, variant index) --------------------------------------------------------
        let mut victims: Vec<(usize, i64, &'static str, usize)> = Vec::new();
        for &kind in human_kinds() {
            for k in 0..n_attacks(kind) {
                for _ in 0..500 {
                    let p = rng.below(people.len().max(1) as u64) as usize;
                    let Some(person) = people.get(p) else { break };
                    let wants_sales = kind == "bulk_export" && k % 2 == 0;
                    if victims.iter().any(|v| v.0 == p)
                        || person.traveller
                        || person.start_day > 0
                        || (wants_sales && !person.sales)
                    {
                        continue;
                    }
                    // a weekday with a few days of history first
                    let mut d = rng.range(3.min(days - 1), days);
                    while d % 7 >= 5 {
                        d -= 1;
                    }
                    victims.push((p, d, kind, k));
                    break;
                }
            }
        }
        victims
    }

    /// Every person's days: sign-ins, mail, files, trips, and the attacks on the victims.
    fn live(&mut self, people: &[Person], victims: &[(usize, i64, &'static str, usize)]) {
        let (cfg, rng, o, days, traps, labels) = self.parts();
        let on = |t: &str| cfg.on(t);
        // --- people --------------------------------------------------------------------------------------------------
        let rollout_day = 3.min(days - 1);
        for (pi, p) in people.iter().enumerate() {
            let who = p.who();
            let mut here_i = p.home;
            let away_i = (p.home + 1 + rng.below(CITIES.len() as u64 - 1) as usize) % CITIES.len();
            let trip = p.traveller.then(|| rng.range(1, (days - 2).max(2)));
            let mut free_at = i64::MIN;
            let mut version = p.version;
            for d in 0..days {
                if d < p.start_day {
                    continue;
                }
                let week = d / 7;
                let day0 = T0 + d * DAY;
                let weekday = d % 7 < 5;
                // weekend: an on-call engineer's burst through the gateway, from home
                if !weekday {
                    if p.engineer
                        && on("on_call_burst")
                        && (pi as i64 + week) % 4 == 0
                        && d % 7 == 5
                    {
                        // from wherever the engineer is this weekend
                        let ip = if here_i == p.home {
                            world::home_v4(p.home, p.hh)
                        } else {
                            world::home_v4(here_i, 59_000 + p.hh % 1000)
                        };
                        let t0 = day0 + rng.range(8, 20) * H - tz_ms(&CITIES[here_i]);
                        let n = rng.range(300, 700);
                        for k in 0..n {
                            let t = t0 + k * (2 * H / n) + rng.range(0, 5 * S);
                            o.kong(
                                t,
                                "GET",
                                "deploy-api",
                                &p.email,
                                &format!("cred-{}", p.okta_id),
                                &ip,
                                "httpie/3.2.4",
                                4096,
                            );
                        }
                    }
                    continue;
                }
                let here = &CITIES[here_i];
                let at_home = here_i == p.home;
                let start =
                    (day0 + 8 * H + 30 * MIN - tz_ms(here) + rng.range(-40, 40) * MIN).max(free_at);
                let end = day0 + 17 * H + 30 * MIN - tz_ms(here) + rng.range(-40, 40) * MIN;
                if end <= start + H {
                    continue;
                }
                let span = |a: i64, b: i64| Some((start + a, (start + b).min(end)));
                let day = Day {
                    here,
                    here_i,
                    at_home,
                    start,
                    office: (p.office && at_home && (1..=3).contains(&(d % 7)))
                        .then(|| (start + 50 * MIN, end - 60 * MIN)),
                    vpn: if p.vpn && d % 2 == 0 {
                        span(2 * H, 5 * H)
                    } else {
                        None
                    },
                    tether: if p.tether && d % 5 == 1 {
                        span(3 * H, 4 * H)
                    } else {
                        None
                    },
                };
                if p.update_day == Some(d) {
                    version += 1;
                }
                let update_at = (p.update_day == Some(d)).then(|| start + rng.range(60, 240) * MIN);
                let ua_at = |t: i64| {
                    if update_at.is_some_and(|u| t < u) {
                        ua_of(p.browser, version - 1)
                    } else {
                        ua_of(p.browser, version)
                    }
                };
                let okta_session = format!("102{}d{d}", p.okta_id);
                let entra_session = format!("{}-s{week}", &p.oid[..8]);
                let rt = format!("rt-{}-{d}", p.okta_id);
                let mut last_uti = format!("uti{}d{d}k0", &p.oid[..8]);
                let net =
                    |rng: &mut Rng, t: i64, traffic: Traffic| net_at(rng, p, &day, t, traffic);

                let n0 = net(&mut *rng, start, Traffic::Web);
                o.okta(
                    start,
                    "user.session.start",
                    &who,
                    &n0,
                    &okta_session,
                    &ua_at(start),
                    Some(&p.laptop),
                    "Okta Dashboard",
                );
                let t1 = start + rng.range(1, 5) * MIN;
                let n1 = net(&mut *rng, t1, Traffic::M365);
                // Entra ID Protection's own noise: a traveller's sign-in from the city they flew to is "unfamiliar"
                // (medium), and now and then anyone's is, at low risk
                if on("vendor_risk_noise") {
                    if !at_home {
                        o.next_entra_risk = Some(("medium", "unfamiliarFeatures"));
                        traps.count("vendor_risk_noise", true);
                    } else if rng.chance(0.01) {
                        o.next_entra_risk = Some(("low", "unfamiliarFeatures"));
                        traps.count("vendor_risk_noise", true);
                    }
                }
                o.entra(
                    t1,
                    &who,
                    &n1,
                    &entra_session,
                    &last_uti,
                    &ua_at(t1),
                    Some(&p.laptop),
                    "OfficeHome",
                    true,
                );
                let mut t = start + rng.range(15, 40) * MIN;
                let mut k = 0;
                while t < end {
                    k += 1;
                    let w = net(&mut *rng, t, Traffic::Web);
                    let m = net(&mut *rng, t + 2 * MIN, Traffic::M365);
                    let app = APPS[rng.below(APPS.len() as u64) as usize];
                    o.okta(
                        t,
                        "user.authentication.sso",
                        &who,
                        &w,
                        &okta_session,
                        &ua_at(t),
                        Some(&p.laptop),
                        app,
                    );
                    // the desktop apps renew their tokens silently in the same Entra session as the browser
                    let (app_ua, app_name, interactive) = if on("desktop_apps") {
                        if k % 2 == 0 {
                            (OUTLOOK_UA.to_string(), "Microsoft Outlook", false)
                        } else {
                            (TEAMS_UA.to_string(), "Microsoft Teams", false)
                        }
                    } else {
                        (ua_at(t), "OfficeHome", false)
                    };
                    last_uti = format!("uti{}d{d}k{k}", &p.oid[..8]);
                    o.entra(
                        t + 2 * MIN,
                        &who,
                        &m,
                        &entra_session,
                        &last_uti,
                        &app_ua,
                        Some(&p.laptop),
                        app_name,
                        interactive,
                    );
                    if rng.chance(0.6) {
                        let client = if on("desktop_apps") {
                            "Client=MSExchangeRPC".to_string()
                        } else {
                            format!("Client=OWA;{}", ua_at(t))
                        };
                        o.m365(
                            t + 3 * MIN,
                            "Exchange",
                            "MailItemsAccessed",
                            &who,
                            &m.ip,
                            &client,
                            &entra_session,
                            &last_uti,
                            "",
                        );
                    }
                    if rng.chance(0.3) {
                        let doc = format!("report-{}.docx", rng.below(400));
                        o.m365(
                            t + 6 * MIN,
                            "SharePoint",
                            "FileAccessed",
                            &who,
                            &m.ip,
                            &ua_at(t),
                            &entra_session,
                            &last_uti,
                            &doc,
                        );
                    }
                    if rng.chance(0.5) {
                        o.okta_refresh(t + 5 * S, &who, &w, &rt, false);
                    }
                    if p.drive && rng.chance(0.4) {
                        let doc = format!("doc-{}", rng.below(5000));
                        o.google(t + 30 * S, "drive", "view", &who, &w.ip, json!([{"name": "doc_id", "value": doc}, {"name": "doc_type", "value": "document"}, {"name": "owner_is_team_drive", "boolValue": false}]));
                    }
                    if p.sales && k <= 3 {
                        let rows = 800 + rng.below(3200);
                        o.salesforce_export(
                            t + MIN,
                            &who,
                            &w.ip,
                            &format!("sk-{okta_session}"),
                            rows,
                            "0H4TableauCrmSync",
                        );
                    }
                    if p.engineer && rng.chance(0.5) {
                        for j in 0..rng.range(1, 6) {
                            o.kong(
                                t + 4 * MIN + j * 20 * S,
                                "GET",
                                "deploy-api",
                                &p.email,
                                &format!("cred-{}", p.okta_id),
                                &w.ip,
                                "httpie/3.2.4",
                                4096,
                            );
                        }
                    }
                    if on("oauth_rollout") && d == rollout_day && k == 2 && pi % 10 < 6 {
                        o.google(t + 90 * S, "token", "authorize", &who, &w.ip, json!([{"name": "client_id", "value": "1084-zoom.apps.googleusercontent.com"}, {"name": "app_name", "value": "Zoom for Google Workspace"}, {"name": "scope", "multiValue": ["https://www.googleapis.com/auth/calendar"]}]));
                    }
                    t += rng.range(20, 60) * MIN;
                }
                // quarter-end: finance downloads the quarter's files to their laptops
                if p.finance && d >= days - 2 {
                    let t0 = start + rng.range(60, 180) * MIN;
                    let n = rng.range(60, 160);
                    for j in 0..n {
                        let tt = t0 + j * rng.range(30, 90) * S;
                        let m = net(&mut *rng, tt, Traffic::M365);
                        o.m365(
                            tt,
                            "SharePoint",
                            "FileDownloaded",
                            &who,
                            &m.ip,
                            &ua_at(tt),
                            &entra_session,
                            &last_uti,
                            &format!("q4-ledger-{j}.xlsx"),
                        );
                    }
                }
                // the phone: its own Okta session and its own Entra session, on the carrier's network
                if let Some(phone) = &p.phone {
                    for j in 0..rng.range(1, 3) {
                        let pt = start + rng.range(30, 420) * MIN;
                        if pt >= end {
                            continue;
                        }
                        let c = &CITIES[here_i];
                        let mn = Net::at_city(
                            world::mobile_ip(here_i, rng.u64()),
                            c,
                            c.mobile_asn,
                            c.mobile,
                            c.hub,
                        );
                        o.okta(
                            pt,
                            "user.session.start",
                            &who,
                            &mn,
                            &format!("102{}p{d}j{j}", p.okta_id),
                            PHONE_UA,
                            Some(phone),
                            "Okta Verify",
                        );
                        o.entra(
                            pt + MIN,
                            &who,
                            &mn,
                            &format!("{}-ph{week}", &p.oid[..8]),
                            &format!("uti{}p{d}{j}", &p.oid[..8]),
                            OUTLOOK_MOBILE_UA,
                            Some(phone),
                            "Microsoft Outlook",
                            false,
                        );
                    }
                }
                // attacks on this person today
                for &(_, _, kind, variant) in victims.iter().filter(|v| v.0 == pi && v.1 == d) {
                    attack_person(
                        &mut *o,
                        &mut *rng,
                        &mut *labels,
                        p,
                        &day,
                        kind,
                        variant,
                        &entra_session,
                        &last_uti,
                        &okta_session,
                        &rt,
                    );
                }
                // travel: fly out after work on the trip day, back two working days later
                if let Some(td) = trip {
                    let to = if d == td {
                        Some(away_i)
                    } else if d == td + 2 && here_i != p.home {
                        Some(p.home)
                    } else {
                        None
                    };
                    if let Some(to_i) = to {
                        let (a, b) = (&CITIES[here_i], &CITIES[to_i]);
                        let dist = km((a.lat, a.lon), (b.lat, b.lon));
                        let depart = end + rng.range(60, 180) * MIN;
                        let flight = ((dist / 800.0 + 0.5) * H as f64) as i64;
                        if on("inflight_wifi") && dist > 3000.0 {
                            traps.count("inflight_wifi", true);
                            // the in-flight Wi-Fi is geolocated to the provider's ground station
                            let ft = depart + flight / 2;
                            let n = Net::at_site(
                                world::host(world::INFLIGHT.prefix, pi as u64, 0),
                                &world::INFLIGHT,
                            );
                            o.okta(
                                ft,
                                "user.authentication.sso",
                                &who,
                                &n,
                                &format!("102{}f{d}", p.okta_id),
                                &ua_at(ft),
                                Some(&p.laptop),
                                "Slack",
                            );
                            o.entra(
                                ft + MIN,
                                &who,
                                &n,
                                &entra_session,
                                &format!("uti{}f{d}", &p.oid[..8]),
                                TEAMS_UA,
                                Some(&p.laptop),
                                "Microsoft Teams",
                                false,
                            );
                        }
                        free_at = depart + flight + H;
                        here_i = to_i;
                    }
                }
            }
        }
    }

    /// The service accounts' gateway traffic, and the token scraping attacks; returns how many there are and which
    /// were scraped.
    fn services(&mut self) -> (usize, Vec<usize>) {
        let (cfg, rng, o, days, traps, labels) = self.parts();
        let n_scrape = cfg.n_attacks("token_scraping");
        let on = |t: &str| cfg.on(t);
        // --- service accounts ----------------------------------------------------------------------------------------
        let services = (cfg.people / 100).max(3);
        let n_scrape = n_scrape.min(services);
        let scraped: Vec<usize> = (0..n_scrape).map(|i| (i * 7 + 1) % services).collect();
        for s in 0..services {
            let consumer = format!("svc-{s:03}");
            let token = format!("tok-svc-{s:03}");
            let ip = format!("10.20.{s}.15");
            let per_min = 1 + rng.below(3) as i64;
            traps.count("service_burst", on("service_burst") && days >= 7);
            let scrape = scraped.iter().position(|x| *x == s).map(|k| {
                let mut d = rng.range(3.min(days - 1), days);
                while d % 7 >= 5 {
                    d -= 1;
                }
                (d, k)
            });
            for d in 0..days {
                if d % 7 >= 5 {
                    continue;
                }
                let day0 = T0 + d * DAY;
                // quarter-end style bulk work: 3x for an hour
                let burst = on("service_burst") && (d == days - 1 || (d % 7 == 4 && d >= 7));
                let mut t = day0 + 6 * H + rng.range(0, 30) * MIN;
                while t < day0 + 20 * H {
                    let rate = if burst && (t - day0) / H == 15 {
                        per_min * 3
                    } else {
                        per_min
                    };
                    o.kong(
                        t,
                        "GET",
                        "orders-api",
                        &consumer,
                        &token,
                        &ip,
                        "svc-client/1.4",
                        2048,
                    );
                    t += (60_000 / rate).max(1) + rng.range(-2000, 2000);
                }
                if let Some((_, k)) = scrape.filter(|x| x.0 == d) {
                    // 5-10x the baseline for three hours; from the usual host, or from outside with the same client
                    let at = day0 + 13 * H + rng.range(0, 60) * MIN;
                    let external = k % 2 == 1;
                    let src = if external {
                        world::hosting_ip(0, rng.u64())
                    } else {
                        ip.clone()
                    };
                    let factor = rng.range(5, 11);
                    let n = per_min * factor * 180;
                    let mut first = None;
                    for i in 0..n {
                        let tt = at + i * (180 * MIN / n);
                        let arr = o.kong(
                            tt,
                            "GET",
                            "orders-api",
                            &consumer,
                            &token,
                            &src,
                            "svc-client/1.4",
                            2048,
                        );
                        first.get_or_insert(arr);
                    }
                    labels.add(
                        "token_scraping",
                        if external { "external" } else { "same_host" },
                        (None, Some(&token), None),
                        at,
                        first.unwrap_or(at),
                        if external {
                            &[Action::RevokeToken]
                        } else {
                            &[Action::Alert, Action::StepUp, Action::RevokeToken]
                        },
                    );
                }
            }
        }

        (services, scraped)
    }

    /// The agents' runs, reconfigurations and attacks; returns the agents attacked.
    fn agents(&mut self) -> Vec<String> {
        let (cfg, rng, o, days, traps, labels) = self.parts();
        let n_attacks = |kind: &str| cfg.n_attacks(kind);
        let on = |t: &str| cfg.on(t);
        // --- agents ----------------------------------------------------------------------------------------------------
        let mut agent_attacks: Vec<(usize, &str, usize)> = Vec::new();
        for (ki, kind) in agent_kinds().iter().enumerate() {
            for k in 0..n_attacks(kind) {
                let a = k * agent_kinds().len() + ki;
                if a < cfg.agents {
                    agent_attacks.push((a, kind, k));
                }
            }
        }
        let mut attacked_agents: Vec<String> = Vec::new();
        for a in 0..cfg.agents {
            let agent = format!("agent-{a:03}");
            let token = format!("tok-{agent}");
            let (role, tools, server, api) = ROLES[a % ROLES.len()];
            let _ = role;
            let mut dest = format!("s3://corp-reports/{agent}/");
            let attack = agent_attacks
                .iter()
                .find(|x| x.0 == a)
                .map(|x| (x.1, x.2, rng.range(4.min(days - 1), days)));
            let reconfig = match a % 10 {
                1 if on("agent_reconfig_announced") => Some("announced"),
                3 if on("agent_reconfig_late") => Some("late"),
                5 if on("agent_reconfig_unannounced") => Some("unannounced"),
                _ => None,
            }
            .filter(|_| attack.is_none());
            let change_day = rng.range(3.min(days - 1), days);
            let rare = on("agent_rare_writer") && a % 10 == 7;
            traps.count("agent_rare_writer", rare);
            traps.count(
                match reconfig {
                    Some("announced") => "agent_reconfig_announced",
                    Some("late") => "agent_reconfig_late",
                    _ => "agent_reconfig_unannounced",
                },
                reconfig.is_some(),
            );
            for d in 0..days {
                let start = T0 + d * DAY + H + rng.range(0, 60) * MIN;
                let run = format!("run-{agent}-{d}-{:06x}", rng.u64() & 0xffffff);
                let mcp_session = format!("mcps-{:012x}", rng.u64() & 0xffff_ffff_ffff);
                let mut late_note = None;
                if reconfig.is_some() && d == change_day {
                    dest = format!("s3://corp-reports-v2/{agent}/");
                    match reconfig {
                        Some("announced") => {
                            o.agent_config(start - H, &agent, &dest, "reports");
                        }
                        Some("late") => late_note = Some(start + 3 * H),
                        _ => {}
                    }
                }
                let calls = rng.range(12, 20);
                let writes_today = !rare || d % 7 == 3;
                for k in 0..calls {
                    let t = start + k * 2 * MIN + rng.range(0, 30) * S;
                    let tool = tools[(k as usize) % tools.len()];
                    o.span(t, &agent, &run, &token, tool, Some(server), None);
                    o.mcp(t + 200, &mcp_session, server, tool, &agent);
                    o.kong(
                        t + 800,
                        "GET",
                        api,
                        &agent,
                        &token,
                        "10.40.0.8",
                        "agent-runtime/2.4",
                        8192,
                    );
                    if writes_today && k == calls - 1 {
                        o.span(
                            t + 20 * S,
                            &agent,
                            &run,
                            &token,
                            "upload_report",
                            None,
                            Some(&dest),
                        );
                    }
                }
                if let Some(t) = late_note {
                    o.agent_config(t, &agent, &dest, "reports");
                }
                if let Some((kind, k, _)) = attack.filter(|x| x.2 == d) {
                    let at = start + (calls + 1) * 2 * MIN;
                    let arr = match kind {
                        "agent_domain_pivot" => {
                            // one object in a sensitive domain the workflow never touches, through a vendor-named tool
                            let tool = if a % ROLES.len() == 2 {
                                "workday_get_compensation"
                            } else {
                                ["netsuite_get_invoice", "workday_get_worker"][k % 2]
                            };
                            o.span(at, &agent, &run, &token, tool, None, None)
                        }
                        "agent_exfiltration" => {
                            let d2 = if k % 2 == 0 {
                                format!(
                                    "https://webhook.site/{:08x}-{:04x}",
                                    rng.u64() as u32,
                                    rng.u64() as u16
                                )
                            } else {
                                format!("s3://{:06x}-backup-sync/", rng.u64() & 0xffffff)
                            };
                            o.span(at, &agent, &run, &token, "upload_report", None, Some(&d2))
                        }
                        _ => {
                            let srv = format!("mcp.{:06x}-tools.dev", rng.u64() & 0xffffff);
                            let tool = ["fetch_url", "run_command"][k % 2];
                            let arr = o.span(at, &agent, &run, &token, tool, Some(&srv), None);
                            o.mcp(at + 200, &mcp_session, &srv, tool, &agent);
                            arr
                        }
                    };
                    labels.add(
                        kind,
                        if k % 2 == 0 { "a" } else { "b" },
                        (None, None, Some(&run)),
                        at,
                        arr,
                        &[Action::StepUp, Action::RevokeToken],
                    );
                    attacked_agents.push(agent.clone());
                }
            }
        }
        attacked_agents
    }

    /// Write the lines in arrival order (or event-time order), the labels and the operator's configuration.
    fn write(
        self,
        dir: &Path,
        people: &[Person],
        services: usize,
        scraped: &[usize],
        attacked_agents: &[String],
    ) -> std::io::Result<SimSummary> {
        let Sim {
            cfg,
            mut o,
            days,
            traps,
            labels,
            ..
        } = self;
        o.lines.sort_by_key(|(t, s, _)| (*t, *s));
        std::fs::create_dir_all(dir)?;
        let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("events.jsonl"))?);
        for (_, _, l) in &o.lines {
            w.write_all(l.as_bytes())?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        let attacked: Vec<&str> = labels
            .attacks
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
            attacks: labels.attacks,
            benign_principals: benign,
            days: days as f64,
        };
        std::fs::write(
            dir.join("labels.json"),
            serde_json::to_vec_pretty(&labels).map_err(std::io::Error::other)?,
        )?;
        std::fs::write(dir.join("quench.toml"), world::operator_config())?;
        Ok(SimSummary {
            events: o.lines.len(),
            attacks: labels.attacks.len(),
            benign: labels.benign_principals.len(),
            traps: traps.0,
        })
    }
}

/// The attacks on people: [`ATTACKS`] before token scraping (on service accounts) and the agents'.
fn human_kinds() -> &'static [&'static str] {
    &ATTACKS[..7]
}

/// The attacks on agents: the last of [`ATTACKS`].
fn agent_kinds() -> &'static [&'static str] {
    &ATTACKS[8..]
}

/// The network a person's request comes from at `t`.
fn net_at(rng: &mut Rng, p: &Person, day: &Day<'_>, t: i64, traffic: Traffic) -> Net {
    let c = day.here;
    let within = |w: Option<(i64, i64)>| w.is_some_and(|(a, b)| t >= a && t < b);
    if within(day.vpn) {
        let v = &world::VPN[p.home % world::VPN.len()];
        return Net::at_site(world::host(v.prefix, p.hh, 0), v);
    }
    let in_office = within(day.office);
    if p.zscaler && traffic == Traffic::Web {
        let z = &world::ZSCALER[c.zscaler];
        return Net::at_site(world::host(z.prefix, rng.u64(), 0), z);
    }
    if p.relay && traffic == Traffic::Web && !in_office {
        let r = &world::RELAY[c.relay];
        return Net::at_site(world::host(r.prefix, rng.u64(), 0), r);
    }
    if within(day.tether) {
        return Net::at_city(
            world::mobile_ip(day.here_i, rng.u64() >> 40),
            c,
            c.mobile_asn,
            c.mobile,
            c.hub,
        );
    }
    if in_office {
        return Net::at_city(
            world::office_ip(day.here_i),
            c,
            c.isp_asn,
            c.isp,
            (c.lat, c.lon),
        );
    }
    if !day.at_home {
        // a hotel's broadband
        return Net::at_city(
            world::home_v4(day.here_i, 59_000 + p.hh % 1000),
            c,
            c.isp_asn,
            c.isp,
            (c.lat, c.lon),
        );
    }
    if p.dual_stack && rng.chance(0.5) {
        let temp = (p.hh << 20) ^ (((t - T0) / DAY) as u64 * 0x9E37_79B9);
        return Net::at_city(
            world::home_v6(day.here_i, p.hh, temp),
            c,
            c.isp_v6_asn,
            c.isp,
            (c.lat, c.lon),
        );
    }
    Net::at_city(
        world::home_v4(day.here_i, p.hh),
        c,
        c.isp_asn,
        c.isp,
        (c.lat, c.lon),
    )
}

/// One attack on person `p` today; labels it with its first malicious event's time and arrival.
#[allow(clippy::too_many_arguments)]
fn attack_person(
    o: &mut Out,
    rng: &mut Rng,
    labels: &mut Labeller,
    p: &Person,
    day: &Day<'_>,
    kind: &str,
    variant: usize,
    entra_session: &str,
    last_uti: &str,
    okta_session: &str,
    rt: &str,
) {
    let who = p.who();
    let home = &CITIES[p.home];
    // while the victim is at work
    let at = day.start + rng.range(90, 240) * MIN;
    let site = &world::ATTACKERS[rng.below(world::ATTACKERS.len() as u64) as usize];
    let foreign = Net::at_site(world::host(site.prefix, rng.u64(), 0), site);
    let h = world::hosting_for(home);
    let cloud = Net {
        ip: world::hosting_ip(p.home, rng.u64()),
        asn: h.asn,
        org: h.org,
        lat: h.lat,
        lon: h.lon,
        city: home.name,
        country: home.country,
        cc: home.cc,
        proxy: false,
    };
    let victim_ua = ua_of(p.browser, p.version);
    let attacker_ua = ATTACKER_UAS[variant % ATTACKER_UAS.len()];
    let subject = (Some(p.email.as_str()), None, None);
    let (first, variant_name, actions): (i64, &str, &[Action]) = match kind {
        "cookie_replay" => {
            let mut first = 0;
            for k in 0..3 {
                let arr = o.okta(
                    at + k * 2 * MIN,
                    "user.authentication.sso",
                    &who,
                    &foreign,
                    okta_session,
                    attacker_ua,
                    None,
                    APPS[k as usize],
                );
                if k == 0 {
                    first = arr;
                }
            }
            (
                first,
                if variant.is_multiple_of(2) {
                    "tooling"
                } else {
                    "browser"
                },
                SESSION_ACTIONS,
            )
        }
        "aitm_replay" => {
            // the kit replays the victim's session with the victim's exact user agent and device, from a cloud
            // region in the victim's country
            let first = o.entra(
                at,
                &who,
                &cloud,
                entra_session,
                &format!("{last_uti}x"),
                &victim_ua,
                Some(&p.laptop),
                "Microsoft Exchange Online",
                false,
            );
            for k in 0..3 {
                o.m365(
                    at + (k + 1) * MIN,
                    "Exchange",
                    "MailItemsAccessed",
                    &who,
                    &cloud.ip,
                    &format!("Client=OWA;{victim_ua}"),
                    entra_session,
                    &format!("{last_uti}x"),
                    "",
                );
            }
            (first, "same_device_cloud", SESSION_ACTIONS)
        }
        "impossible_travel" => {
            let first = if variant.is_multiple_of(2) {
                o.okta(
                    at,
                    "user.session.start",
                    &who,
                    &foreign,
                    &format!("102{}x{}", p.okta_id, at),
                    attacker_ua,
                    None,
                    "Okta Dashboard",
                )
            } else {
                o.entra(
                    at,
                    &who,
                    &foreign,
                    &format!("{}-atk{at}", &p.oid[..8]),
                    &format!("utiatk{at}"),
                    attacker_ua,
                    None,
                    "OfficeHome",
                    true,
                )
            };
            (
                first,
                if variant.is_multiple_of(2) {
                    "okta"
                } else {
                    "entra"
                },
                &[
                    Action::StepUp,
                    Action::RevokeToken,
                    Action::TerminateSession,
                ][..],
            )
        }
        "refresh_token_reuse" => (
            o.okta_refresh(at, &who, &foreign, rt, true),
            "idp_reported",
            SESSION_ACTIONS,
        ),
        "entra_token_replay" => {
            let net = if variant.is_multiple_of(2) {
                &foreign
            } else {
                &cloud
            };
            let first = o.entra(
                at,
                &who,
                net,
                entra_session,
                last_uti,
                attacker_ua,
                None,
                "Microsoft Graph",
                false,
            );
            (
                first,
                if variant.is_multiple_of(2) {
                    "foreign"
                } else {
                    "cloud"
                },
                SESSION_ACTIONS,
            )
        }
        "m365_mailbox_access" => {
            let net = if variant.is_multiple_of(2) {
                &foreign
            } else {
                &cloud
            };
            let mut first = 0;
            for k in 0..5 {
                let arr = o.m365(
                    at + k * 2 * MIN,
                    "Exchange",
                    "MailItemsAccessed",
                    &who,
                    &net.ip,
                    "Client=REST;Client=RESTSystem;;",
                    entra_session,
                    &format!("utim{at}"),
                    "",
                );
                if k == 0 {
                    first = arr;
                }
            }
            (
                first,
                if variant.is_multiple_of(2) {
                    "foreign"
                } else {
                    "cloud"
                },
                SESSION_ACTIONS,
            )
        }
        _ => {
            // bulk export to a new integration
            if variant.is_multiple_of(2) && p.sales {
                let first = o.salesforce_export(
                    at,
                    &who,
                    &foreign.ip,
                    &format!("sk-{okta_session}"),
                    200_000 + rng.below(100_000),
                    "0H4DataLoaderExt",
                );
                (first, "salesforce_new_app", SESSION_ACTIONS)
            } else {
                let first = o.google(at, "token", "authorize", &who, &foreign.ip, json!([{"name": "client_id", "value": format!("{:x}-backup.apps.googleusercontent.com", rng.u64() & 0xffff)}, {"name": "app_name", "value": "Drive Backup Pro"}, {"name": "scope", "multiValue": ["https://www.googleapis.com/auth/drive.readonly"]}]));
                for k in 0..150 {
                    o.google(at + 5 * MIN + k * 8 * S, "drive", "download", &who, &foreign.ip, json!([{"name": "doc_id", "value": format!("doc-{}", rng.below(5000))}, {"name": "doc_type", "value": "spreadsheet"}]));
                }
                (first, "drive_new_oauth_app", SESSION_ACTIONS)
            }
        }
    };
    labels.add(kind, variant_name, subject, at, first, actions);
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_writes_the_same_traffic_and_every_attack_kind_appears() {
        let base = std::env::temp_dir().join(format!("quench-sim-{}", std::process::id()));
        let cfg = SimConfig {
            people: 60,
            agents: 12,
            days: 7,
            seed: 42,
            only: None,
            event_time_order: false,
        };
        simulate(&cfg, &base.join("a")).unwrap();
        let s = simulate(&cfg, &base.join("b")).unwrap();
        let read = |d: &str| std::fs::read(base.join(d).join("events.jsonl")).unwrap();
        assert_eq!(read("a"), read("b"));
        let labels: Labels =
            serde_json::from_slice(&std::fs::read(base.join("a/labels.json")).unwrap()).unwrap();
        let kinds: std::collections::BTreeSet<&str> =
            labels.attacks.iter().map(|a| a.kind.as_str()).collect();
        for k in ATTACKS {
            assert!(kinds.contains(k), "{k} missing from {kinds:?}");
        }
        // every first malicious event arrives after it happened
        for a in &labels.attacks {
            let arr = a.first_malicious_arrival.unwrap();
            assert!(arr.0 > a.first_malicious_at.0, "{a:?}");
        }
        assert!(s.events > 5000 && s.benign > 50, "{s:?}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_attack_kinds_split_into_people_service_accounts_and_agents() {
        assert_eq!(human_kinds().len() + 1 + agent_kinds().len(), ATTACKS.len());
        assert_eq!(ATTACKS[human_kinds().len()], "token_scraping");
        assert!(human_kinds().iter().all(|k| !k.starts_with("agent_")));
        assert!(agent_kinds().iter().all(|k| k.starts_with("agent_")));
    }

    #[test]
    fn lines_are_written_in_arrival_order_so_slow_sources_arrive_late() {
        let dir = std::env::temp_dir().join(format!("quench-sim-order-{}", std::process::id()));
        let cfg = SimConfig {
            people: 20,
            agents: 2,
            days: 2,
            seed: 3,
            only: None,
            event_time_order: false,
        };
        simulate(&cfg, &dir).unwrap();
        let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
        // M365 records arrive 30-90 min after they happened: somewhere an M365 record follows an Okta record that
        // happened more than 25 minutes after it
        let mut newest_okta = 0i64;
        let mut late = 0;
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(t) = v["published"].as_str() {
                newest_okta = newest_okta.max(Ts::parse(t).unwrap().0);
            } else if let Some(t) = v["CreationTime"].as_str() {
                if newest_okta - Ts::parse(t).unwrap().0 > 25 * MIN {
                    late += 1;
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(late > 10, "{late} late M365 records");
    }

    #[test]
    fn only_rejects_a_name_that_is_neither_a_trap_nor_an_attack() {
        let cfg = SimConfig {
            people: 1,
            agents: 0,
            days: 2,
            seed: 1,
            only: Some("astrology".into()),
            event_time_order: false,
        };
        let e = cfg.check().unwrap_err();
        assert!(
            e.contains("astrology") && e.contains("dual_stack") && e.contains("aitm_replay"),
            "{e}"
        );
    }
}
