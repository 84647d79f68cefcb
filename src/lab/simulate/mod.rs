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

mod agents;
mod attacks;
mod people;
mod services;
mod vendors;
mod workdays;
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
