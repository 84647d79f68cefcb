//! tool_drift: an agent workflow reaching an MCP server or tool it never used.
//!
//! In: tool calls of agents the runtime vouches for (`principal.kind` agent with a vouch), with the server reached
//! (`resource.server`: OTel `server.address`, an MCP proxy's server) and the tool (`resource.object_id` of a
//! tool), and `admin_change` events. The baseline is the agent's workflow: every run of it shares one, whatever the
//! run id. Out: once the workflow is learned (more than `learn_runs` runs, a run being a job id, or `settle_secs`
//! since first seen), one finding per new server (`server_score`: a prompt-injected or reconfigured agent reaching
//! out to a server nobody set up for it) and per new tool on a known server or without one (`tool_score`). An
//! `admin_change` naming an agent already tracked as its job (the agent platform's configuration audit) with a
//! server announces it: known from then on, without a finding. State: per agent, in a [`KeyedState`] bounded by an
//! event-time TTL (`ttl_secs`) and a key cap (`max_keys`): first-seen time, runs seen and a digest of the latest
//! run's id, and at most `max_servers` servers and `max_tools` tools (the least recently seen forgotten first).

use super::{BuildContext, ConfigError, Detector, Finding};
use crate::event::{Category, PrincipalKind, SessionEvent, Ts};
use crate::state::{bounded, digest, KeyedState, RecentSet, LISTED};
use serde::Deserialize;

pub const NAME: &str = "tool_drift";
const FILE: &str = "tool_drift.toml";
const BUILTIN: &str = include_str!("../../detectors/tool_drift.toml");

/// `detectors/tool_drift.toml`; defaults in that file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolDriftConfig {
    pub learn_runs: u32,
    pub settle_secs: u64,
    pub server_score: f64,
    pub tool_score: f64,
    pub max_servers: usize,
    pub max_tools: usize,
    pub ttl_secs: u64,
    pub max_keys: usize,
}

impl Default for ToolDriftConfig {
    fn default() -> Self {
        ToolDriftConfig {
            learn_runs: 3,
            settle_secs: 259_200,
            server_score: 0.75,
            tool_score: 0.3,
            max_servers: 64,
            max_tools: 256,
            ttl_secs: 1_209_600,
            max_keys: 100_000,
        }
    }
}

pub fn build(ctx: &BuildContext) -> Result<Box<dyn Detector>, ConfigError> {
    let (file, cfg): (String, ToolDriftConfig) = ctx.config(FILE, BUILTIN)?;
    super::check_scores(
        &file,
        &[
            ("server_score", cfg.server_score),
            ("tool_score", cfg.tool_score),
        ],
    )?;
    for (key, v) in [
        ("max_servers", cfg.max_servers),
        ("max_tools", cfg.max_tools),
    ] {
        if v == 0 {
            return Err(ConfigError::Invalid {
                file,
                key,
                value: "0".into(),
                why: "must be at least 1".into(),
            });
        }
    }
    let bounds = ctx.bounds(cfg.ttl_secs, cfg.max_keys);
    Ok(Box::new(ToolDrift {
        cfg,
        state: KeyedState::new(bounds),
    }))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AgentState {
    first_seen: Ts,
    /// Runs (job ids) seen, and a digest of the latest.
    runs: u32,
    last_run: [u8; 16],
    servers: RecentSet,
    tools: RecentSet,
}

pub struct ToolDrift {
    cfg: ToolDriftConfig,
    state: KeyedState<AgentState>,
}

impl Detector for ToolDrift {
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
        if ev.category == Category::AdminChange {
            self.observe(ev, &mut Vec::new());
        }
    }

    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        let cfg = &self.cfg;
        if ev.category == Category::AdminChange {
            // the agent platform announcing a server for an agent (named as the job)
            if let (Some(agent), Some(server)) = (&ev.session.job_id, &ev.resource.server) {
                if let Some(s) = self
                    .state
                    .get_mut_in(agent, ev.event_time, ev.actor_vouched())
                {
                    s.servers.see(server);
                }
            }
            return;
        }
        if ev.principal.kind != PrincipalKind::Agent || ev.principal.vouched_by.is_none() {
            return;
        }
        if ev.category != Category::ToolCall {
            return;
        }
        let Some(agent) = ev.principal.key() else {
            return;
        };
        let s = self
            .state
            .entry_in(agent, ev.event_time, true, || AgentState {
                first_seen: ev.event_time,
                runs: 0,
                last_run: [0; 16],
                servers: RecentSet::new(cfg.max_servers),
                tools: RecentSet::new(cfg.max_tools),
            });
        let run = digest(ev.session.job_id.as_deref().unwrap_or(""));
        if run != s.last_run {
            s.last_run = run;
            s.runs = s.runs.saturating_add(1);
        }
        let age = ev.event_time.secs_since(s.first_seen);
        // a workflow's tools are learned over its runs, not within the first one
        let learned = s.runs > cfg.learn_runs || age >= cfg.settle_secs as f64;
        let tool = ev
            .resource
            .object_id
            .as_deref()
            .filter(|_| ev.resource.object_type.as_deref() == Some("tool"));
        let server = ev.resource.server.as_deref();
        let new_server = server.is_some_and(|v| !s.servers.contains(v));
        let new_tool = tool.is_some_and(|t| !s.tools.contains(t));
        if learned && (new_server || new_tool) {
            let who = bounded(agent);
            let (score, reason) = if new_server {
                let known = s.servers.summary(LISTED);
                (
                    cfg.server_score,
                    format!(
                        "agent {who} reached server {} it never used (tool {}); it uses: {known}",
                        bounded(server.unwrap_or("?")),
                        bounded(tool.unwrap_or("-"))
                    ),
                )
            } else {
                (
                    cfg.tool_score,
                    format!(
                        "agent {who} called tool {} it never used{}",
                        bounded(tool.unwrap_or("?")),
                        server
                            .map(|v| format!(" on {}", bounded(v)))
                            .unwrap_or_default()
                    ),
                )
            };
            out.push(Finding::new(
                NAME,
                score,
                reason,
                vec![ev.event_id.to_string()],
                ev,
            ));
        }
        if let Some(v) = server {
            s.servers.see(v);
        }
        if let Some(t) = tool {
            s.tools.see(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::at;
    use crate::event::*;

    fn call(
        secs: i64,
        agent: &'static str,
        tool: &'static str,
        server: Option<&'static str>,
    ) -> SessionEvent<'static> {
        let mut e = at(secs, &format!("c{secs}"), Family::Agent, Category::ToolCall);
        e.principal.id = Some(agent.into());
        e.principal.kind = PrincipalKind::Agent;
        e.session.job_id = Some(Text::from(format!("run-{}", secs / 86_400)));
        e.resource.object_type = Some("tool".into());
        e.resource.object_id = Some(tool.into());
        e.resource.server = server.map(Text::from);
        e.vouch_all();
        e
    }

    fn nightly(d: &mut Box<dyn Detector>, out: &mut Vec<Finding>, nights: i64) {
        for n in 0..nights {
            for k in 0..15 {
                let t = n * 86_400 + 3600 + k * 120;
                d.observe(
                    &call(
                        t,
                        "agent-7",
                        ["jira_search_issues", "github_list_pull_requests"][k as usize % 2],
                        Some("mcp.atlassian.corp"),
                    ),
                    out,
                );
            }
        }
    }

    /// A tool used late in the first run is part of the workflow, not drift.
    #[test]
    fn a_tool_first_used_at_the_end_of_the_first_run_is_not_drift() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        for k in 0..40 {
            d.observe(
                &call(
                    3600 + k * 60,
                    "agent-7",
                    "jira_search_issues",
                    Some("mcp.atlassian.corp"),
                ),
                &mut out,
            );
        }
        d.observe(
            &call(3600 + 41 * 60, "agent-7", "upload_report", None),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    /// Every nightly run has its own run id: the workflow's baseline spans them.
    #[test]
    fn a_new_mcp_server_after_nights_of_runs_is_flagged_once_across_run_ids() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        nightly(&mut d, &mut out, 4);
        assert!(out.is_empty(), "{out:?}");
        let t = 4 * 86_400 + 3600;
        d.observe(
            &call(t, "agent-7", "fetch_url", Some("mcp.1b2c-tools.dev")),
            &mut out,
        );
        d.observe(
            &call(t + 60, "agent-7", "fetch_url", Some("mcp.1b2c-tools.dev")),
            &mut out,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].score, 0.75);
        assert!(
            out[0].reason.contains("mcp.1b2c-tools.dev")
                && out[0].reason.contains("mcp.atlassian.corp")
        );
    }

    #[test]
    fn a_new_tool_on_a_known_server_is_a_weak_signal() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        nightly(&mut d, &mut out, 4);
        d.observe(
            &call(
                4 * 86_400 + 3600,
                "agent-7",
                "jira_create_issue",
                Some("mcp.atlassian.corp"),
            ),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.3);
    }

    #[test]
    fn an_unvouched_span_naming_the_agent_teaches_and_triggers_nothing() {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        nightly(&mut d, &mut out, 4);
        let mut forged = call(
            4 * 86_400 + 3600,
            "agent-7",
            "fetch_url",
            Some("mcp.evil.dev"),
        );
        forged.unvouch_all();
        forged.principal.vouched_by = None;
        d.observe(&forged, &mut out);
        assert!(out.is_empty());
    }
}
