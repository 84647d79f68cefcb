//! Respond: send revocation commands for decisions to the IdP/SaaS APIs.
//!
//! In: [`Decision`]s whose action some configured target handles. Out: HTTP requests to those targets, and one
//! [`Delivery`] report per (decision, target). State: per-process counters; nothing per event.
//! Each target runs independently on the async runtime: timeouts, retries with exponential backoff for errors a
//! retry can help, and a dry run (logged, not sent) when no target is configured. Ingestion never waits on it.

mod google;
mod graph;
mod okta;
mod webhook;
pub use webhook::signature as webhook_signature;

use crate::decide::{Action, Decision};
use crate::event::PrincipalKind;
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a revocation request failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("transport: {0}")]
    Transport(String),
    #[error("cannot address the target: {0}")]
    Target(String),
    #[error("credentials: {0}")]
    Credentials(String),
}

impl RespondError {
    /// Timeouts, connection errors, 429 and 5xx can succeed later; other 4xx and config problems cannot.
    pub fn retryable(&self) -> bool {
        match self {
            RespondError::Status { status, .. } => {
                *status == 429 || *status >= 500 || *status == 408
            }
            RespondError::Transport(_) => true,
            RespondError::Target(_) | RespondError::Credentials(_) => false,
        }
    }
}

impl From<reqwest::Error> for RespondError {
    fn from(e: reqwest::Error) -> Self {
        RespondError::Transport(e.without_url().to_string())
    }
}

/// Turn a response into Ok or a [`RespondError::Status`].
pub(crate) async fn check(resp: reqwest::Response) -> Result<u16, RespondError> {
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return Ok(status);
    }
    let mut body = resp.text().await.unwrap_or_default();
    body.truncate(300);
    Err(RespondError::Status { status, body })
}

/// A configuration problem found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("respond.targets[{index}] ({kind}): {source}")]
    Parse {
        index: usize,
        kind: String,
        source: toml::de::Error,
    },
    #[error("respond.targets[{index}].{key} = {value:?}: {why}")]
    Invalid {
        index: usize,
        key: &'static str,
        value: String,
        why: String,
    },
}

/// One revocation target. `send` is the only required method.
pub trait Responder: Send + Sync {
    /// Carry out `d.action` for the decision's subject. Returns the HTTP status on success.
    fn send<'a>(
        &'a self,
        http: &'a reqwest::Client,
        d: &'a Decision,
    ) -> BoxFuture<'a, Result<u16, RespondError>>;

    /// The credentials this target holds, so that nothing Quench logs or reports can carry them (a server may
    /// echo a request header in its error body). Default: none.
    fn secrets(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// A registry entry: the target type's name and how to build it from its `[[respond.targets]]` table.
pub struct Registered {
    pub name: &'static str,
    pub build: fn(toml::Table) -> Result<Box<dyn Responder>, String>,
}

/// Every target type. Adding one is one file plus one line here.
pub fn registry() -> Vec<Registered> {
    vec![
        Registered {
            name: webhook::NAME,
            build: webhook::build,
        },
        Registered {
            name: okta::NAME,
            build: okta::build,
        },
        Registered {
            name: graph::NAME,
            build: graph::build,
        },
        Registered {
            name: google::NAME,
            build: google::build,
        },
    ]
}

/// Parse a target's table into its config struct (unknown keys are an error).
pub(crate) fn parse_target<T: serde::de::DeserializeOwned>(t: toml::Table) -> Result<T, String> {
    toml::Value::Table(t)
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string())
}

/// Read a secret from the named environment variable (never from config text or the command line).
pub(crate) fn secret_from_env(var: &str) -> Result<String, String> {
    std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
}

/// `[respond]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespondConfig {
    /// Per-request timeout in milliseconds. Default 5000.
    pub timeout_ms: u64,
    /// Attempts per (decision, target), first included. Default 5.
    pub max_attempts: u32,
    /// First retry delay in milliseconds, doubled each attempt. Default 200.
    pub backoff_ms: u64,
    /// Targets: tables with `type` (one of the registry names), `actions` and the type's own keys. Default: none
    /// (dry run).
    pub targets: Vec<toml::Table>,
}

impl Default for RespondConfig {
    fn default() -> Self {
        RespondConfig {
            timeout_ms: 5000,
            max_attempts: 5,
            backoff_ms: 200,
            targets: Vec::new(),
        }
    }
}

/// A built target.
pub struct Target {
    pub name: String,
    pub actions: Vec<Action>,
    /// Kinds of principal this target acts for (`principal_kinds`). Default: all.
    pub principal_kinds: Vec<PrincipalKind>,
    /// Globs of the principals this target may act on (`allow`). Default: all.
    pub allow: Vec<String>,
    pub responder: Box<dyn Responder>,
}

impl Target {
    /// Whether this target takes `d`: its action, its kind of principal, and a principal on its allow-list.
    pub fn takes(&self, d: &Decision) -> bool {
        self.actions.contains(&d.action)
            && (self.principal_kinds.is_empty() || self.principal_kinds.contains(&d.principal_kind))
            && (self.allow.is_empty()
                || [&d.principal, &d.principal_id]
                    .into_iter()
                    .flatten()
                    .any(|p| self.allow.iter().any(|g| crate::pattern::glob(g, p))))
    }
}

/// Build every configured target.
pub fn build_targets(cfg: &RespondConfig) -> Result<Vec<Target>, ConfigError> {
    let reg = registry();
    let mut out = Vec::new();
    for (index, t) in cfg.targets.iter().enumerate() {
        let mut t = t.clone();
        let kind = match t.remove("type") {
            Some(toml::Value::String(s)) => s,
            other => {
                return Err(ConfigError::Invalid {
                    index,
                    key: "type",
                    value: other.map(|v| format!("{v:?}")).unwrap_or_default(),
                    why: format!(
                        "allowed: {}",
                        reg.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
                    ),
                })
            }
        };
        let Some(r) = reg.iter().find(|r| r.name == kind) else {
            return Err(ConfigError::Invalid {
                index,
                key: "type",
                value: kind,
                why: format!(
                    "allowed: {}",
                    reg.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
                ),
            });
        };
        let name = match t.remove("name") {
            Some(toml::Value::String(s)) => s,
            _ => kind.clone(),
        };
        let actions: Vec<Action> = match t.remove("actions") {
            Some(v) => v.try_into().map_err(|source| ConfigError::Parse {
                index,
                kind: kind.clone(),
                source,
            })?,
            None => vec![Action::RevokeToken, Action::TerminateSession],
        };
        let principal_kinds: Vec<PrincipalKind> = match t.remove("principal_kinds") {
            Some(v) => v.try_into().map_err(|source| ConfigError::Parse {
                index,
                kind: kind.clone(),
                source,
            })?,
            None => Vec::new(),
        };
        let allow: Vec<String> = match t.remove("allow") {
            Some(v) => v.try_into().map_err(|source| ConfigError::Parse {
                index,
                kind: kind.clone(),
                source,
            })?,
            None => Vec::new(),
        };
        let responder = (r.build)(t).map_err(|why| ConfigError::Invalid {
            index,
            key: "(target)",
            value: kind.clone(),
            why,
        })?;
        out.push(Target {
            name,
            actions,
            principal_kinds,
            allow,
            responder,
        });
    }
    Ok(out)
}

/// The result of one (decision, target) dispatch.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub decision_id: String,
    pub action: Action,
    pub principal: Option<String>,
    pub target: String,
    pub attempts: u32,
    /// Ok(HTTP status) or the last error.
    pub result: Result<u16, String>,
    pub dry_run: bool,
}

/// Counters of the respond stage.
#[derive(Default, Debug)]
pub struct RespondStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
    pub dry_run: AtomicU64,
}

/// Hands decisions to targets without blocking the caller.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    targets: Vec<Target>,
    http: reqwest::Client,
    cfg: RespondConfig,
    stats: RespondStats,
    reports: Option<mpsc::UnboundedSender<Delivery>>,
    tracker: tokio_util_lite::Tracker,
}

/// A tiny task tracker so shutdown can wait for in-flight dispatches.
mod tokio_util_lite {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::sync::Notify;

    #[derive(Default, Clone)]
    pub struct Tracker(Arc<(AtomicUsize, Notify)>);
    pub struct Guard(Arc<(AtomicUsize, Notify)>);
    impl Tracker {
        pub fn enter(&self) -> Guard {
            self.0 .0.fetch_add(1, Ordering::SeqCst);
            Guard(self.0.clone())
        }
        pub async fn idle(&self) {
            loop {
                let n = self.0 .1.notified();
                if self.0 .0.load(Ordering::SeqCst) == 0 {
                    return;
                }
                n.await;
            }
        }
    }
    impl Drop for Guard {
        fn drop(&mut self) {
            if self.0 .0.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.0 .1.notify_waiters();
            }
        }
    }
}

impl Dispatcher {
    /// `reports` receives one [`Delivery`] per (decision, target) when given.
    pub fn new(
        cfg: RespondConfig,
        targets: Vec<Target>,
        reports: Option<mpsc::UnboundedSender<Delivery>>,
    ) -> Result<Self, RespondError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .user_agent(concat!("quench/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RespondError::Transport(e.to_string()))?;
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                targets,
                http,
                cfg,
                stats: RespondStats::default(),
                reports,
                tracker: Default::default(),
            }),
        })
    }

    pub fn stats(&self) -> &RespondStats {
        &self.inner.stats
    }

    /// True when no target is configured: decisions are logged, not sent.
    pub fn dry_run(&self) -> bool {
        self.inner.targets.is_empty()
    }

    /// Start dispatching `d` to every target that handles its action. Returns at once (needs a Tokio runtime).
    pub fn dispatch(&self, d: Arc<Decision>) {
        let inner = &self.inner;
        if d.shadow {
            return; // shadow-mode decisions are recorded, never acted on
        }
        if inner.targets.is_empty() {
            if d.action >= Action::StepUp {
                inner.stats.dry_run.fetch_add(1, Ordering::Relaxed);
                tracing::info!(decision = %d.decision_id, action = d.action.as_str(), principal = ?d.principal, "dry run: no target configured, nothing sent");
                self.report(Delivery {
                    decision_id: d.decision_id.clone(),
                    action: d.action,
                    principal: d.principal.clone(),
                    target: "dry-run".into(),
                    attempts: 0,
                    result: Ok(0),
                    dry_run: true,
                });
            }
            return;
        }
        for (i, t) in inner.targets.iter().enumerate() {
            if !t.takes(&d) {
                continue;
            }
            let me = self.clone();
            let d = d.clone();
            let guard = inner.tracker.enter();
            tokio::spawn(async move {
                let _guard = guard;
                me.deliver(i, &d).await;
            });
        }
    }

    async fn deliver(&self, i: usize, d: &Decision) {
        let inner = &self.inner;
        let t = &inner.targets[i];
        let mut delay = Duration::from_millis(inner.cfg.backoff_ms);
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            match t.responder.send(&inner.http, d).await {
                Ok(status) => {
                    inner.stats.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(decision = %d.decision_id, target = %t.name, action = d.action.as_str(), status, attempts, "revocation sent");
                    break Ok(status);
                }
                Err(e) if e.retryable() && attempts < inner.cfg.max_attempts => {
                    inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let e = redact(&e.to_string(), &t.responder.secrets());
                    tracing::warn!(decision = %d.decision_id, target = %t.name, attempts, error = %e, "revocation failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    inner.stats.failed.fetch_add(1, Ordering::Relaxed);
                    let retryable = e.retryable();
                    let e = redact(&e.to_string(), &t.responder.secrets());
                    tracing::error!(decision = %d.decision_id, target = %t.name, attempts, retryable, error = %e, "revocation failed");
                    break Err(e);
                }
            }
        };
        self.report(Delivery {
            decision_id: d.decision_id.clone(),
            action: d.action,
            principal: d.principal.clone(),
            target: t.name.clone(),
            attempts,
            result,
            dry_run: false,
        });
    }

    fn report(&self, r: Delivery) {
        if let Some(tx) = &self.inner.reports {
            let _ = tx.send(r);
        }
    }

    /// Wait until every dispatch started so far has finished.
    pub async fn drain(&self) {
        self.inner.tracker.idle().await;
    }
}

/// `text` with every secret (and every secret of 8 bytes or more it contains) replaced by `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 8) {
        out = out.replace(*s, "[redacted]");
    }
    out
}

/// The user id a vendor API should address: the IdP's own id when the principal came from that IdP, else e-mail.
pub(crate) fn user_ref(d: &Decision) -> Result<&str, RespondError> {
    d.principal_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .or(d.principal.as_deref())
        .ok_or_else(|| RespondError::Target("decision names no principal".into()))
}

/// `base` with path segments appended (each percent-encoded).
pub(crate) fn url_with(
    base: &reqwest::Url,
    segments: &[&str],
) -> Result<reqwest::Url, RespondError> {
    let mut u = base.clone();
    u.path_segments_mut()
        .map_err(|_| RespondError::Target(format!("{base} cannot be a base URL")))?
        .pop_if_empty()
        .extend(segments);
    Ok(u)
}

/// Parse a target's base URL at start-up.
pub(crate) fn parse_base(s: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(s).map_err(|e| format!("base_url {s:?}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("base_url {s:?}: scheme must be http or https"));
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_hints_follow_the_status() {
        assert!(RespondError::Status {
            status: 429,
            body: String::new()
        }
        .retryable());
        assert!(RespondError::Status {
            status: 503,
            body: String::new()
        }
        .retryable());
        assert!(!RespondError::Status {
            status: 404,
            body: String::new()
        }
        .retryable());
        assert!(!RespondError::Credentials("x".into()).retryable());
    }

    #[test]
    fn unknown_target_types_are_rejected_with_the_allowed_list() {
        let t: toml::Table = toml::from_str("type = \"pagerduty\"").unwrap();
        let e = build_targets(&RespondConfig {
            targets: vec![t],
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("respond.targets[0].type") && e.contains("pagerduty") && e.contains("okta"),
            "{e}"
        );
    }

    #[test]
    fn targets_take_only_their_actions_kinds_and_allowed_principals() {
        std::env::set_var("QUENCH_TEST_TAKES_SECRET", "0123456789abcdef0123");
        let t: toml::Table = toml::from_str(
            "type = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nsecret_env = \"QUENCH_TEST_TAKES_SECRET\"\nactions = [\"revoke_token\"]\nprincipal_kinds = [\"agent\"]\nallow = [\"agent-*\"]\n",
        )
        .unwrap();
        let targets = build_targets(&RespondConfig {
            targets: vec![t],
            ..Default::default()
        })
        .unwrap();
        let d = |action, kind, p: &str| Decision {
            decision_id: "0".repeat(32),
            decided_at: crate::event::Ts(0),
            event_time: crate::event::Ts(0),
            action,
            principal: Some(p.into()),
            principal_id: None,
            principal_kind: kind,
            token_id: None,
            session_id: None,
            job_id: None,
            score: 0.9,
            findings: vec![],
            evidence: vec![],
            guardrail: None,
            shadow: false,
        };
        assert!(targets[0].takes(&d(Action::RevokeToken, PrincipalKind::Agent, "agent-7")));
        assert!(!targets[0].takes(&d(
            Action::TerminateSession,
            PrincipalKind::Agent,
            "agent-7"
        )));
        assert!(!targets[0].takes(&d(Action::RevokeToken, PrincipalKind::Human, "agent-7")));
        assert!(!targets[0].takes(&d(Action::RevokeToken, PrincipalKind::Agent, "svc-1")));
    }

    #[test]
    fn unknown_keys_in_a_target_are_rejected() {
        let t: toml::Table = toml::from_str(
            "type = \"okta\"\nbase_url = \"https://x.okta.com\"\napi_token_env = \"T\"\ncolour = 1",
        )
        .unwrap();
        let e = build_targets(&RespondConfig {
            targets: vec![t],
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("colour"), "{e}");
    }
}
