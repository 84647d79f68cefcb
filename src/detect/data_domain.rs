//! data_domain: an agent workflow, job or token reaching a data domain outside the set it normally touches.
//!
//! In: events of an agent (the runtime vouches for it), a job or a token. Domains come from the event's own labels
//! and from `detectors/data_domains.toml`: glob patterns over the resource, the tool name (`tool:`) and the server
//! reached (`server:`), and words: a tool name, object or server is split into words (`workday_get_worker` →
//! workday, get, worker) and a domain's words name it (vendor catalogues and vocabulary, so a vendor-named tool
//! nobody listed still has a domain). Out: after a key's domain set is learned (more than `learn_events` events and
//! `learn_secs` seconds), one finding per new domain (a sync agent that read "projects" starts reading "billing"),
//! scored `sensitive_score` for a domain marked sensitive, else `score`. An `admin_change` event naming the job and
//! its domains (the agent platform's configuration audit) announces a legitimate change: those domains become known
//! without a finding. State: per key (an agent's workflow, so every run of it shares one baseline; else a job, else
//! a token), in a [`KeyedState`] bounded by an event-time TTL (`ttl_secs`) and a key cap (`max_keys`; keys first
//! seen unvouched live in its smaller claimed pool): first-seen time, event count, and the domains seen (at most
//! `max_domains`, the least recently seen forgotten first).

use super::{glob, BuildContext, ConfigError, Detector, Finding};
use crate::event::{Keys, PrincipalKind, SessionEvent, Ts};
use crate::state::{bounded, KeyedState, RecentSet, LISTED};
use serde::Deserialize;

pub const NAME: &str = "data_domain";
const FILE: &str = "data_domain.toml";
const BUILTIN: &str = include_str!("../../detectors/data_domain.toml");
const MAP_FILE: &str = "data_domains.toml";
const MAP_BUILTIN: &str = include_str!("../../detectors/data_domains.toml");

/// `detectors/data_domain.toml`; defaults in that file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataDomainConfig {
    pub learn_events: u32,
    pub learn_secs: u64,
    pub score: f64,
    pub sensitive_score: f64,
    pub max_domains: usize,
    pub ttl_secs: u64,
    pub max_keys: usize,
}

impl Default for DataDomainConfig {
    fn default() -> Self {
        DataDomainConfig {
            learn_events: 20,
            learn_secs: 1800,
            score: 0.6,
            sensitive_score: 0.75,
            max_domains: 256,
            ttl_secs: 604_800,
            max_keys: 100_000,
        }
    }
}

/// `detectors/data_domains.toml`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DomainMap {
    /// The domains. Default: none.
    #[serde(default)]
    pub domain: Vec<DomainRule>,
}

/// One data domain and the resources in it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainRule {
    /// Domain label.
    pub name: String,
    /// Reaching it newly scores `sensitive_score`. Default false.
    #[serde(default)]
    pub sensitive: bool,
    /// Globs over resource app, object type, object id, `tool:<name>` and `server:<server>`. Default [].
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Words that name the domain in a tool name, object id or server (compared whole, lower case). Default [].
    #[serde(default)]
    pub words: Vec<String>,
}

/// The words of an identifier: split on anything not a letter or digit, and at lower-to-upper case changes.
fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in s.chars().take(256) {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter()
}

impl DomainMap {
    /// Call `f` with each domain of an event: its own labels, then every rule with a matching pattern.
    fn for_each_domain<'e>(&'e self, ev: &'e SessionEvent<'_>, mut f: impl FnMut(&'e str)) {
        ev.resource.domains.iter().for_each(|d| f(d.as_str()));
        let r = &ev.resource;
        let is_tool = r.object_type.as_deref() == Some("tool");
        let mut ws: Vec<String> = Vec::new();
        if self.domain.iter().any(|d| !d.words.is_empty()) {
            for v in [&r.object_id, &r.server].into_iter().flatten() {
                ws.extend(words(v));
            }
        }
        for rule in &self.domain {
            let hit = rule.patterns.iter().any(|p| {
                if let Some(tp) = p.strip_prefix("tool:") {
                    is_tool && r.object_id.as_deref().is_some_and(|t| glob(tp, t))
                } else if let Some(sp) = p.strip_prefix("server:") {
                    r.server.as_deref().is_some_and(|v| glob(sp, v))
                } else {
                    [&r.app, &r.object_type, &r.object_id]
                        .into_iter()
                        .flatten()
                        .any(|v| glob(p, v))
                }
            }) || rule.words.iter().any(|w| ws.iter().any(|x| x == w));
            if hit {
                f(&rule.name);
            }
        }
    }
    fn sensitive(&self, name: &str) -> bool {
        self.domain.iter().any(|d| d.name == name && d.sensitive)
    }
}

pub fn build(ctx: &BuildContext) -> Result<Box<dyn Detector>, ConfigError> {
    let (file, cfg): (String, DataDomainConfig) = ctx.config(FILE, BUILTIN)?;
    let (mfile, map): (String, DomainMap) = ctx.config(MAP_FILE, MAP_BUILTIN)?;
    super::check_scores(
        &file,
        &[
            ("score", cfg.score),
            ("sensitive_score", cfg.sensitive_score),
        ],
    )?;
    if let Some(d) = map
        .domain
        .iter()
        .find(|d| (d.patterns.is_empty() && d.words.is_empty()) || d.name.is_empty())
    {
        return Err(ConfigError::Invalid {
            file: mfile,
            key: "domain.patterns",
            value: d.name.clone(),
            why: "each domain needs a name and at least one pattern or word".into(),
        });
    }
    if cfg.max_domains == 0 {
        return Err(ConfigError::Invalid {
            file,
            key: "max_domains",
            value: "0".into(),
            why: "must be at least 1".into(),
        });
    }
    let bounds = ctx.bounds(cfg.ttl_secs, cfg.max_keys);
    Ok(Box::new(DataDomain {
        cfg,
        map,
        state: KeyedState::new(bounds),
    }))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState {
    first_seen: Ts,
    events: u32,
    domains: RecentSet,
}

pub struct DataDomain {
    cfg: DataDomainConfig,
    map: DomainMap,
    state: KeyedState<KeyState>,
}

impl Detector for DataDomain {
    fn expire(&mut self, watermark: Ts) {
        self.state.expire(watermark);
    }

    fn save(&self) -> Result<Option<super::Saved>, serde_json::Error> {
        super::save(&self.state)
    }

    fn load(&mut self, saved: &serde_json::value::RawValue) -> Result<(), String> {
        self.state.restore(super::load(saved)?)
    }

    fn announce(&mut self, ev: &SessionEvent<'_>) {
        // what an admin_change announces is learned by observe, which judges nothing of it
        if ev.category == crate::event::Category::AdminChange {
            self.observe(ev, &mut Vec::new());
        }
    }

    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        let agent = (ev.principal.kind == PrincipalKind::Agent
            && ev.principal.vouched_by.is_some()
            && ev.category != crate::event::Category::AdminChange)
            .then(|| ev.principal.key())
            .flatten();
        let (what, key, vouched) = match (agent, &ev.session.job_id, &ev.session.token_id) {
            (Some(a), _, _) => ("agent", a, true),
            (None, Some(j), _) => ("job", j.as_str(), ev.vouches(Keys::JOB)),
            (None, None, Some(t)) => ("token", t.as_str(), ev.vouches(Keys::TOKEN)),
            _ => return,
        };
        let (cfg, map) = (&self.cfg, &self.map);
        let s = self
            .state
            .entry_in(key, ev.event_time, vouched, || KeyState {
                first_seen: ev.event_time,
                events: 0,
                domains: RecentSet::new(cfg.max_domains),
            });
        if ev.category == crate::event::Category::AdminChange {
            // a configuration change announcing the domains a job may touch: known from now on
            map.for_each_domain(ev, |d| {
                s.domains.see(d);
            });
            return;
        }
        s.events += 1;
        let learned = s.events > cfg.learn_events
            && ev.event_time.secs_since(s.first_seen) >= cfg.learn_secs as f64;
        map.for_each_domain(ev, |d| {
            if learned && !s.domains.contains(d) {
                let known = s.domains.summary(LISTED);
                let res = ev.resource.object_id.as_deref().or(ev.resource.app.as_deref()).unwrap_or("a resource");
                let score = if map.sensitive(d) { cfg.sensitive_score } else { cfg.score };
                let (key, d, res) = (bounded(key), bounded(d), bounded(res));
                let reason = format!("{what} {key} reached data domain \"{d}\" ({res}) for the first time; it normally touches: {known}");
                out.push(Finding::new(NAME, score, reason, vec![ev.event_id.to_string()], ev));
            }
            s.domains.see(d);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_into_words() {
        let w: Vec<String> = words("workday_get_worker").collect();
        assert_eq!(w, ["workday", "get", "worker"]);
        let w: Vec<String> = words("getEmployeeSalary mcp.workday.corp").collect();
        assert_eq!(w, ["get", "employee", "salary", "mcp", "workday", "corp"]);
    }

    /// A vendor-named tool no pattern lists still lands in its domain through its words.
    #[test]
    fn a_vendor_named_tool_is_placed_by_its_words() {
        let (_, map): (String, DomainMap) = BuildContext::default()
            .config(MAP_FILE, MAP_BUILTIN)
            .unwrap();
        let mut e = crate::detect::testutil::at(
            0,
            "t",
            crate::event::Family::Agent,
            crate::event::Category::ToolCall,
        );
        e.resource.object_type = Some("tool".into());
        e.resource.object_id = Some("bamboohr_fetch_employee_compensation".into());
        let mut got = Vec::new();
        map.for_each_domain(&e, |d| got.push(d.to_string()));
        assert_eq!(got, ["hr"]);
        assert!(map.sensitive("hr"));
    }
    use crate::detect::testutil::at;
    use crate::event::*;

    fn tool(secs: i64, job: &'static str, name: &'static str) -> SessionEvent<'static> {
        let mut e = at(secs, &format!("e{secs}"), Family::Agent, Category::ToolCall);
        e.session.job_id = Some(job.into());
        e.resource.object_type = Some("tool".into());
        e.resource.object_id = Some(name.into());
        e
    }

    #[test]
    fn a_sync_agent_that_starts_reading_billing_notes_is_flagged_once() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..40 {
            d.observe(&tool(i * 60, "job-1", "read_project_metadata"), &mut out);
        }
        assert!(out.is_empty());
        d.observe(&tool(2500, "job-1", "read_billing_notes"), &mut out);
        d.observe(&tool(2510, "job-1", "read_billing_notes"), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.75, "billing is sensitive");
        assert!(
            out[0].reason.contains("\"billing\"") && out[0].reason.contains("projects"),
            "{}",
            out[0].reason
        );
    }

    #[test]
    fn domains_seen_while_learning_are_normal() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..40 {
            let name = if i % 2 == 0 {
                "read_project_metadata"
            } else {
                "read_invoice"
            };
            d.observe(&tool(i * 60, "job-2", name), &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }
}
