//! Correlate: attribute each event to its token, session, agent job and principal.
//!
//! In: a normalized [`SessionEvent`]. Out: the same event with missing keys filled from what earlier events linked
//! (a tool-call span names job J and token T; a gateway call carrying only T is then attributed to J and J's
//! principal). State: links token → job, token → principal, job → principal and session → principal, each in a
//! [`KeyedState`] bounded by TTL and key count (event time). Attributed values are shared `Arc<str>`s, so filling
//! an event allocates nothing.

use crate::event::{PrincipalKind, SessionEvent, Text, Ts};
use crate::state::{Bounds, KeyedState};
use serde::Deserialize;
use std::sync::Arc;

/// `[correlate]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelateConfig {
    /// How long a link lives after its last event, in seconds of event time. Default 86400 (one day).
    pub ttl_secs: u64,
    /// Most keys tracked per link map. Default 1000000.
    pub max_keys: usize,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        CorrelateConfig {
            ttl_secs: 86_400,
            max_keys: 1_000_000,
        }
    }
}

#[derive(Clone)]
struct Who {
    id: Arc<str>,
    kind: PrincipalKind,
}

/// Keyed links between tokens, jobs, sessions and principals.
pub struct Correlator {
    token_job: KeyedState<Arc<str>>,
    token_principal: KeyedState<Who>,
    job_principal: KeyedState<Who>,
    session_principal: KeyedState<Who>,
}

impl Correlator {
    pub fn new(cfg: &CorrelateConfig) -> Self {
        let b = Bounds::from_secs(cfg.ttl_secs, cfg.max_keys);
        Correlator {
            token_job: KeyedState::new(b),
            token_principal: KeyedState::new(b),
            job_principal: KeyedState::new(b),
            session_principal: KeyedState::new(b),
        }
    }

    /// Learn links from `ev` and fill its missing job and principal from earlier links.
    pub fn correlate(&mut self, ev: &mut SessionEvent<'_>) {
        let now = ev.event_time;
        let token = ev.session.token_id.as_deref();
        let job = ev.session.job_id.as_deref();
        let session = ev.session.session_id.as_deref();
        let who = ev.principal.id.as_deref().map(|id| (id, ev.principal.kind));

        // learn
        if let (Some(t), Some(j)) = (token, job) {
            let v = self.token_job.entry(t, now, || Arc::from(j));
            if &**v != j {
                *v = Arc::from(j);
            }
        }
        if let Some((id, kind)) = who {
            for (map, key) in [
                (&mut self.token_principal, token),
                (&mut self.job_principal, job),
                (&mut self.session_principal, session),
            ] {
                if let Some(k) = key {
                    let w = map.entry(k, now, || Who {
                        id: Arc::from(id),
                        kind,
                    });
                    if &*w.id != id {
                        *w = Who {
                            id: Arc::from(id),
                            kind,
                        };
                    }
                }
            }
        }

        // attribute
        if ev.session.job_id.is_none() {
            if let Some(j) = token.and_then(|t| self.token_job.get_mut(t, now)) {
                ev.session.job_id = Some(Text::Shared(j.clone()));
            }
        }
        if ev.principal.id.is_none() || ev.principal.kind == PrincipalKind::Service {
            // A gateway consumer acting for an agent job belongs to that job's principal.
            let from_job = ev
                .session
                .job_id
                .as_deref()
                .and_then(|j| self.job_principal.peek(j))
                .cloned();
            let found = from_job.or_else(|| {
                if ev.principal.id.is_some() {
                    return None;
                }
                token
                    .and_then(|t| self.token_principal.peek(t))
                    .or_else(|| session.and_then(|s| self.session_principal.peek(s)))
                    .cloned()
            });
            if let Some(w) = found {
                ev.principal.id = Some(Text::Shared(w.id));
                ev.principal.kind = w.kind;
            }
        }
    }

    /// Drop links idle for longer than the TTL.
    pub fn evict(&mut self, now: Ts) {
        self.token_job.evict(now);
        self.token_principal.evict(now);
        self.job_principal.evict(now);
        self.session_principal.evict(now);
    }

    /// Keys currently held, over all link maps.
    pub fn tracked_keys(&self) -> usize {
        self.token_job.len()
            + self.token_principal.len()
            + self.job_principal.len()
            + self.session_principal.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;

    fn ev(
        t: i64,
        token: Option<&'static str>,
        job: Option<&'static str>,
        who: Option<(&'static str, PrincipalKind)>,
    ) -> SessionEvent<'static> {
        let src = SourceInfo {
            family: Family::Gateway,
            vendor: "t".into(),
            format: "t".into(),
        };
        let mut e = SessionEvent::new(src, Text::from("e"), Ts(t), Category::DataRead);
        e.session.token_id = token.map(Text::from);
        e.session.job_id = job.map(Text::from);
        if let Some((id, k)) = who {
            e.principal.id = Some(id.into());
            e.principal.kind = k;
        }
        e
    }

    #[test]
    fn gateway_call_with_only_a_token_is_attributed_to_the_job_and_its_agent() {
        let mut c = Correlator::new(&CorrelateConfig::default());
        let mut span = ev(
            0,
            Some("T"),
            Some("J"),
            Some(("agent-1", PrincipalKind::Agent)),
        );
        c.correlate(&mut span);
        let mut call = ev(
            1000,
            Some("T"),
            None,
            Some(("gw-consumer", PrincipalKind::Service)),
        );
        c.correlate(&mut call);
        assert_eq!(call.session.job_id.as_deref(), Some("J"));
        assert_eq!(call.principal.id.as_deref(), Some("agent-1"));
        assert_eq!(call.principal.kind, PrincipalKind::Agent);
    }

    #[test]
    fn links_expire_after_the_ttl_in_event_time() {
        let mut c = Correlator::new(&CorrelateConfig {
            ttl_secs: 60,
            max_keys: 10,
        });
        c.correlate(&mut ev(0, Some("T"), Some("J"), None));
        c.evict(Ts(120_000));
        let mut late = ev(120_000, Some("T"), None, None);
        c.correlate(&mut late);
        assert_eq!(late.session.job_id, None);
        assert_eq!(c.tracked_keys(), 0);
    }
}
