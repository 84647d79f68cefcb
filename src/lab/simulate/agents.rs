//! The AI agents' runs, their reconfigurations (announced on time, late or not at all) and the attacks on them.
//!
//! In: the configuration and the random stream. Out: their lines in [`Out`] and the attacks' labels. State: none
//! beyond [`Sim`]'s.

use super::*;

impl Sim<'_> {
    /// The agents' runs, reconfigurations and attacks; returns the agents attacked.
    pub(super) fn agents(&mut self) -> Vec<String> {
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
}
