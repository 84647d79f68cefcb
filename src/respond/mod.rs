//! Respond: send revocation commands for decisions to the IdP/SaaS APIs.
//!
//! In: [`Decision`]s whose action some configured target handles. Out: HTTP requests to those targets, and one
//! [`Delivery`] report per (decision, target). State: per target, its rate limiter and revocation budget; the
//! deliveries in flight (one task per decision and target); nothing per event.
//! Each target runs independently on the async runtime: timeouts, retries with exponential backoff for errors a
//! retry can help, and a dry run (logged, not sent) when no target is configured. [`Dispatcher::dispatch`]
//! (`replay --dispatch`) returns at once, each delivery being its own task; in `run`, decisions become commands
//! on a topic that the [`outbox`] loop delivers, so the consumer waits only for the broker to take them.
//! An error is reported (logged, and in the [`Delivery`]) only as [`error_text`] makes it: the target's credentials
//! redacted from the whole text, then cut to 300 bytes, then its control characters escaped.

pub mod address;
mod caep;
pub mod confirm;
mod github;
mod google;
mod graph;
mod okta;
pub mod outbox;
mod salesforce;
mod slack;
mod webhook;
pub use webhook::signature as webhook_signature;

use crate::decide::{Action, Decision};
use crate::event::Vendor;
use crate::event::{PrincipalKind, Ts};
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
    Status {
        status: u16,
        body: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    #[error("transport: {0}")]
    Transport(String),
    #[error("cannot address the target: {0}")]
    Target(String),
    #[error("credentials: {0}")]
    Credentials(String),
    /// The API answered 2xx but reported an error in its body (Slack's `{"ok": false}`).
    #[error("API error: {error}")]
    Api { error: String, retryable: bool },
}

impl RespondError {
    /// Timeouts, connection errors, 429 and 5xx can succeed later; other 4xx and config problems cannot.
    pub fn retryable(&self) -> bool {
        match self {
            RespondError::Status { status, .. } => {
                *status == 429 || *status >= 500 || *status == 408
            }
            RespondError::Transport(_) => true,
            RespondError::Api { retryable, .. } => *retryable,
            RespondError::Target(_) | RespondError::Credentials(_) => false,
        }
    }
}

impl RespondError {
    /// This error with `secrets` [`redact`]ed from its text: for a target that must redact a credential itself
    /// (one it may have replaced by the time the error is reported).
    pub(crate) fn redacted(self, secrets: &[String]) -> Self {
        use RespondError::*;
        match self {
            Status {
                status,
                body,
                retry_after,
            } => Status {
                status,
                body: redact(&body, secrets),
                retry_after,
            },
            Transport(t) => Transport(redact(&t, secrets)),
            Target(t) => Target(redact(&t, secrets)),
            Credentials(t) => Credentials(redact(&t, secrets)),
            Api { error, retryable } => Api {
                error: redact(&error, secrets),
                retryable,
            },
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
    Err(status_error(resp).await)
}

/// Bytes of an error body read at most. The body is kept whole up to here, so that redaction sees every credential
/// it echoes before [`error_text`] cuts it for reports.
const BODY_READ: usize = 16 * 1024;

/// The first `max` bytes of a response body (a character cut at the end becomes U+FFFD).
async fn read_start(mut resp: reqwest::Response, max: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < max {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c[..c.len().min(max - buf.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The [`RespondError::Status`] of a non-2xx response: status, the first [`BODY_READ`] bytes of the body (not yet
/// redacted: report it only through [`error_text`]), `Retry-After`.
pub(crate) async fn status_error(resp: reqwest::Response) -> RespondError {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let now = chrono::DateTime::from_timestamp_millis(Ts::now().0).unwrap_or_default();
            parse_retry_after(v, now)
        });
    let body = read_start(resp, BODY_READ).await;
    RespondError::Status {
        status,
        body,
        retry_after,
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `now`; capped at one hour.
pub(crate) fn parse_retry_after(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = v.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(d.min(Duration::from_secs(3600)))
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
    #[error("respond.enforce is not set: revocation targets are configured, so say whether Quench may act on them: enforce = true (send revocations) or enforce = false (build and check the targets, record decisions, send nothing)")]
    EnforceUnset,
}

/// One revocation target. `send` is the only required method.
pub trait Responder: Send + Sync {
    /// Carry out `d.action` for the decision's subject. `key` is the command's idempotency key (the same for
    /// every attempt and after a restart); send it where the API takes one. Returns the HTTP status on success.
    fn send<'a>(
        &'a self,
        http: &'a reqwest::Client,
        d: &'a Decision,
        key: &'a str,
    ) -> BoxFuture<'a, Result<u16, RespondError>>;

    /// The credentials this target holds, so that nothing Quench logs or reports can carry them (a server may
    /// echo a request header in its error body). Default: none.
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }

    /// The public JWK a receiver verifies this target's signatures with (`quench jwks`). Default: none.
    fn public_key(&self) -> Option<serde_json::Value> {
        None
    }
}

/// The JWK Set of every configured target that signs what it sends (for receivers to verify with).
pub fn jwks(targets: &[Target]) -> serde_json::Value {
    let keys: Vec<serde_json::Value> = targets
        .iter()
        .filter_map(|t| t.responder.public_key())
        .collect();
    serde_json::json!({ "keys": keys })
}

/// A registry entry: everything Quench knows about a target type before one is configured.
pub struct Registered {
    /// The `type` of its `[[respond.targets]]` tables.
    pub name: &'static str,
    /// Build one from its table (without `type`); the error names the key.
    pub build: fn(toml::Table) -> Result<Box<dyn Responder>, BuildError>,
    /// The vendor whose own log shows this type's revocations taking effect, which makes `confirm_within_secs`
    /// possible. None: the type leaves no trace in a log Quench reads.
    pub confirmed_by: Option<Vendor>,
    /// A working table of this type pointed at a test server, so tests cover every registered type.
    pub sample: fn(base: &str, env_prefix: &str) -> Sample,
}

/// A target table for tests: what [`Registered::sample`] returns.
pub struct Sample {
    /// The table's TOML lines (with `type`), pointed at the given base URL.
    pub table: String,
    /// The environment variables its credentials are read from, with a credential each.
    pub env: Vec<(String, String)>,
    /// Whether a credential travels with each request (a bearer token does; a webhook's signing key does not).
    pub credential_travels: bool,
}

impl Registered {
    pub const fn new(
        name: &'static str,
        build: fn(toml::Table) -> Result<Box<dyn Responder>, BuildError>,
        confirmed_by: Option<Vendor>,
        sample: fn(&str, &str) -> Sample,
    ) -> Registered {
        Registered {
            name,
            build,
            confirmed_by,
            sample,
        }
    }
}

impl Sample {
    /// A sample whose one credential, read from `var`, travels with every request.
    pub fn bearer(table: String, var: String, credential: &str) -> Sample {
        Sample {
            table,
            env: vec![(var, credential.into())],
            credential_travels: true,
        }
    }
}

/// Why a target's table could not be built: the key, its value and what is allowed.
#[derive(Debug, thiserror::Error)]
#[error("{key} = {value:?}: {why}")]
pub struct BuildError {
    pub key: &'static str,
    pub value: String,
    pub why: String,
}

impl BuildError {
    pub fn new(key: &'static str, value: impl Into<String>, why: impl Into<String>) -> BuildError {
        BuildError {
            key,
            value: value.into(),
            why: why.into(),
        }
    }
}

/// Every target type. Adding one is one file (with its `ENTRY`) plus one line here.
pub fn registry() -> Vec<Registered> {
    vec![
        webhook::ENTRY,
        okta::ENTRY,
        graph::ENTRY,
        google::ENTRY,
        caep::ENTRY,
        slack::ENTRY,
        salesforce::ENTRY,
        github::ENTRY,
    ]
}

/// Parse a target's table into its config struct (unknown keys are an error).
pub(crate) fn parse_target<T: serde::de::DeserializeOwned>(
    t: toml::Table,
) -> Result<T, BuildError> {
    toml::Value::Table(t.clone())
        .try_into()
        .map_err(|e: toml::de::Error| {
            // serde names the key it could not take in backquotes ("unknown field `x`", "missing field `y`")
            let message = e.message().to_string();
            let named = message.split('`').nth(1).unwrap_or_default();
            let key = KEYS
                .iter()
                .copied()
                .find(|k| *k == named)
                .unwrap_or("(table)");
            let value = match t.get(named) {
                Some(toml::Value::String(s)) => s.clone(),
                Some(v) => format!("{v:?}"),
                None => String::new(),
            };
            BuildError::new(key, value, message)
        })
}

/// Keys an error of [`parse_target`] can name: those of every target type, and `(table)` for the rest (an
/// unknown key is named in the message).
const KEYS: &[&str] = &[
    "url",
    "base_url",
    "token_url",
    "instance_url",
    "client_id",
    "org",
    "issuer",
    "audience",
    "secret_env",
    "api_token_env",
    "access_token_env",
    "client_secret_env",
    "token_env",
    "signing_key_env",
    "signing_key_file",
    "authorization_env",
    "subject_format",
    "subject_issuer",
    "key_id",
    "revoke_token",
    "terminate_session",
    "quarantine",
];

/// The shortest credential accepted, in bytes. [`redact`] treats every 4-byte start of a credential as the
/// credential, which only hides a meaningful part of one that is at least this long; a shorter one is refused at
/// start-up rather than left unredacted.
pub(crate) const MIN_SECRET: usize = 8;

/// Read the secret of the target key `key` (`api_token_env`, ...) from the environment variable `var` it names, or
/// from the file named by `{var}_FILE` (Docker and Kubernetes secrets; one trailing newline is dropped). Never
/// from config text or the command line. Errors name the key and the variable; a secret shorter than
/// [`MIN_SECRET`] bytes is an error.
pub(crate) fn secret_from_env(key: &'static str, var: &str) -> Result<String, BuildError> {
    let s = read_secret(var).map_err(|why| BuildError::new(key, var, why))?;
    if s.len() < MIN_SECRET {
        return Err(BuildError::new(
            key,
            var,
            format!(
                "the credential has {} bytes; at least {MIN_SECRET} are required (a shorter one could not be \
                 redacted from logs and reports)",
                s.len()
            ),
        ));
    }
    Ok(s)
}

fn read_secret(var: &str) -> Result<String, String> {
    if let Ok(v) = std::env::var(var) {
        return Ok(v);
    }
    let file_var = format!("{var}_FILE");
    match std::env::var(&file_var) {
        Ok(path) => {
            let mut s = std::fs::read_to_string(&path)
                .map_err(|e| format!("{file_var} = {path:?}: {e}"))?;
            if s.ends_with('\n') {
                s.pop();
                if s.ends_with('\r') {
                    s.pop();
                }
            }
            if s.is_empty() {
                return Err(format!("{file_var} = {path:?}: the file is empty"));
            }
            Ok(s)
        }
        Err(_) => Err(format!(
            "environment variable {var} is not set (nor {file_var}, a file holding it)"
        )),
    }
}

/// `[respond]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespondConfig {
    /// Per-request timeout in milliseconds. Default 5000.
    pub timeout_ms: u64,
    /// Attempts per (decision, target), first included. Default 5.
    pub max_attempts: u32,
    /// First retry delay in milliseconds, doubled each attempt (with up to 50 % random jitter), at most
    /// `max_backoff_ms`. A `Retry-After` from the server replaces the computed delay. Default 200.
    pub backoff_ms: u64,
    /// Longest retry delay in milliseconds. Default 30000.
    pub max_backoff_ms: u64,
    /// A command not delivered this many seconds after it was decided is given up and dead-lettered, however
    /// many attempts remain. Default 600.
    pub give_up_after_secs: u64,
    /// PEM file of extra CA certificates to trust (a private CA in front of a target); the system roots stay
    /// trusted and certificates are always verified. Default: none.
    pub ca_bundle: Option<std::path::PathBuf>,
    /// `[respond.outbox]`: the Kafka commands topic decisions to act go through (used by `quench run` and the
    /// demo).
    pub outbox: outbox::OutboxConfig,
    /// Targets: tables with `type` (one of the registry names), `actions` and the type's own keys. Default: none
    /// (dry run).
    pub targets: Vec<toml::Table>,
    /// Whether Quench may send revocations to the targets: an explicit choice, required once a target is
    /// configured. `false` builds and checks every target and records decisions but sends nothing. Default: unset
    /// (an error when `targets` is not empty).
    pub enforce: Option<bool>,
}

impl Default for RespondConfig {
    fn default() -> Self {
        RespondConfig {
            timeout_ms: 5000,
            max_attempts: 5,
            backoff_ms: 200,
            max_backoff_ms: 30_000,
            give_up_after_secs: 600,
            ca_bundle: None,
            outbox: Default::default(),
            targets: Vec::new(),
            enforce: None,
        }
    }
}

/// The keys of `[[respond.targets]]` every target type takes (documented on [`Target`]).
#[derive(Deserialize)]
struct Common {
    #[serde(default = "default_actions")]
    actions: Vec<Action>,
    #[serde(default)]
    principal_kinds: Vec<PrincipalKind>,
    #[serde(default)]
    allow: Vec<String>,
    rate_per_sec: Option<f64>,
    burst: Option<u32>,
    max_revocations: Option<u64>,
    budget_window_secs: Option<u64>,
    confirm_within_secs: Option<u64>,
}

impl Common {
    const KEYS: [&'static str; 8] = [
        "actions",
        "principal_kinds",
        "allow",
        "rate_per_sec",
        "burst",
        "max_revocations",
        "budget_window_secs",
        "confirm_within_secs",
    ];
}

fn default_actions() -> Vec<Action> {
    vec![Action::RevokeToken, Action::TerminateSession]
}

/// A target's revocation budget when its config sets none: this many requests per hour of wall clock.
pub const DEFAULT_TARGET_BUDGET: usize = 20;

/// A built target.
pub struct Target {
    pub name: String,
    pub actions: Vec<Action>,
    /// Kinds of principal this target acts for (`principal_kinds`). Default: all.
    pub principal_kinds: Vec<PrincipalKind>,
    /// Globs of the principals this target may act on (`allow`). Default: all.
    pub allow: Vec<String>,
    /// Requests per second at most (`rate_per_sec`, with bursts of `burst`). Default: unlimited.
    pub limit: Option<RateLimit>,
    /// Seconds within which the vendor's own log must show a delivered revocation taking effect, else an alert
    /// (`confirm_within_secs`). Default: not watched.
    pub confirm_within_secs: Option<u64>,
    /// This target's own revocation budget (`max_revocations` per `budget_window_secs`). Default: 20 per 3600 s
    /// ([`DEFAULT_TARGET_BUDGET`]); the global budget in `[decide.guardrails]` applies as well.
    pub budget: Option<Budget>,
    /// The vendor whose log confirms this target's revocations (from its registry entry). Default: none.
    pub confirmed_by: Option<Vendor>,
    pub responder: Box<dyn Responder>,
}

/// A target's revocation budget: at most `max` requests per `window_ms` of wall clock; past it, commands are not
/// sent (alert only) until the window frees up.
pub struct Budget {
    max: usize,
    window_ms: i64,
    state: std::sync::Mutex<(std::collections::VecDeque<i64>, bool)>,
}

impl Budget {
    pub fn new(max: usize, window_secs: u64) -> Self {
        Budget {
            max,
            window_ms: window_secs as i64 * 1000,
            state: Default::default(),
        }
    }

    /// Take one revocation at `now_ms`: `Ok` when within budget, else `Err(first)` where `first` marks the first
    /// refusal since the budget was last available.
    pub fn take(&self, now_ms: i64) -> Result<(), bool> {
        let mut st = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (recent, exhausted) = &mut *st;
        while recent
            .front()
            .is_some_and(|t| *t <= now_ms - self.window_ms)
        {
            recent.pop_front();
        }
        if recent.len() < self.max {
            recent.push_back(now_ms);
            *exhausted = false;
            Ok(())
        } else {
            let first = !*exhausted;
            *exhausted = true;
            Err(first)
        }
    }
}

/// A per-target request rate limit (GCRA: `rate` per second on average, bursts of up to `burst`).
pub struct RateLimit {
    interval: Duration,
    tolerance: Duration,
    tat: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl RateLimit {
    pub fn new(rate: f64, burst: u32) -> Self {
        let interval = Duration::from_secs_f64(1.0 / rate);
        RateLimit {
            interval,
            tolerance: interval * burst.saturating_sub(1),
            tat: tokio::sync::Mutex::new(None),
        }
    }

    /// Wait for this request's slot.
    pub async fn acquire(&self) {
        let at = {
            let mut tat = self.tat.lock().await;
            let now = tokio::time::Instant::now();
            let t = tat.map_or(now, |t| t.max(now));
            *tat = Some(t + self.interval);
            t.checked_sub(self.tolerance).unwrap_or(now).max(now)
        };
        tokio::time::sleep_until(at).await;
    }
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
///
/// With `enforce = false` every target is built and checked, and none is returned: a dry run. Configured targets
/// without `enforce` are an error, so that acting on them is always an explicit choice.
pub fn build_targets(cfg: &RespondConfig) -> Result<Vec<Target>, ConfigError> {
    let built = build_each(cfg)?;
    match cfg.enforce {
        _ if built.is_empty() => Ok(built),
        None => Err(ConfigError::EnforceUnset),
        Some(false) => {
            tracing::warn!(
                targets = built.len(),
                "respond.enforce = false: targets checked, decisions recorded, nothing will be sent"
            );
            Ok(Vec::new())
        }
        Some(true) => Ok(built),
    }
}

fn build_each(cfg: &RespondConfig) -> Result<Vec<Target>, ConfigError> {
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
        // the keys every target takes; the rest of the table is the target type's own
        let mut common = toml::Table::new();
        for key in Common::KEYS {
            if let Some(v) = t.remove(key) {
                common.insert(key.to_string(), v);
            }
        }
        let c: Common =
            toml::Value::Table(common)
                .try_into()
                .map_err(|source| ConfigError::Parse {
                    index,
                    kind: kind.clone(),
                    source,
                })?;
        let invalid = |key: &'static str, value: String, why: &str| ConfigError::Invalid {
            index,
            key,
            value,
            why: why.into(),
        };
        let limit = match (c.rate_per_sec, c.burst) {
            (None, None) => None,
            (None, Some(b)) => {
                return Err(invalid("burst", b.to_string(), "burst needs rate_per_sec"))
            }
            (Some(r), _) if !(r.is_finite() && r > 0.0) => {
                return Err(invalid(
                    "rate_per_sec",
                    r.to_string(),
                    "allowed: a number of requests per second above 0",
                ))
            }
            (Some(_), Some(b)) if !(1..=10_000).contains(&b) => {
                return Err(invalid(
                    "burst",
                    b.to_string(),
                    "allowed: an integer from 1 to 10000",
                ))
            }
            (Some(r), b) => Some(RateLimit::new(r, b.unwrap_or((r.ceil() as u32).max(1)))),
        };
        let budget = match (c.max_revocations, c.budget_window_secs) {
            (None, None) => Some(Budget::new(DEFAULT_TARGET_BUDGET, 3600)),
            (None, Some(w)) => {
                return Err(invalid(
                    "budget_window_secs",
                    w.to_string(),
                    "budget_window_secs needs max_revocations",
                ))
            }
            (Some(0), _) => {
                return Err(invalid(
                    "max_revocations",
                    "0".into(),
                    "allowed: a whole number of 1 or more",
                ))
            }
            (Some(_), Some(w)) if !(1..=604_800).contains(&w) => {
                return Err(invalid(
                    "budget_window_secs",
                    w.to_string(),
                    "allowed: whole seconds from 1 to 604800",
                ))
            }
            (Some(m), w) => Some(Budget::new(m as usize, w.unwrap_or(3600))),
        };
        if let Some(s) = c.confirm_within_secs.filter(|s| !(1..=86_400).contains(s)) {
            return Err(invalid(
                "confirm_within_secs",
                s.to_string(),
                "allowed: whole seconds from 1 to 86400",
            ));
        }
        let (actions, principal_kinds, allow, confirm_within_secs) =
            (c.actions, c.principal_kinds, c.allow, c.confirm_within_secs);
        if out.iter().any(|o: &Target| o.name == name) {
            return Err(ConfigError::Invalid {
                index,
                key: "name",
                value: name,
                why: "target names must be unique (they are part of each command's idempotency key); set `name`"
                    .into(),
            });
        }
        let responder = (r.build)(t).map_err(|e| ConfigError::Invalid {
            index,
            key: e.key,
            value: e.value,
            why: e.why,
        })?;
        if confirm_within_secs.is_some() && r.confirmed_by.is_none() {
            let confirmable: Vec<&str> = reg
                .iter()
                .filter(|r| r.confirmed_by.is_some())
                .map(|r| r.name)
                .collect();
            return Err(ConfigError::Invalid {
                index,
                key: "confirm_within_secs",
                value: kind.clone(),
                why: format!(
                    "this target type leaves no trace in a vendor log Quench reads; allowed on {} targets",
                    confirmable.join(", ")
                ),
            });
        }
        out.push(Target {
            name,
            actions,
            principal_kinds,
            allow,
            limit,
            confirm_within_secs,
            budget,
            confirmed_by: r.confirmed_by,
            responder,
        });
    }
    Ok(out)
}

/// The result of one (decision, target) dispatch.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub decision_id: String,
    /// The idempotency key: decision id and target name.
    pub command_id: String,
    pub action: Action,
    pub principal: Option<String>,
    pub target: String,
    pub attempts: u32,
    /// Ok(HTTP status) or the last error (credentials redacted).
    pub result: Result<u16, String>,
    /// Whether a retry could still help when it failed (it failed for lack of time or attempts).
    pub retryable: bool,
    pub dry_run: bool,
    /// Wall clock when the delivery ended (the target's answer, or the refusal).
    pub finished_at: Ts,
    /// Not sent: the target's revocation budget was spent. `Some(true)` on the first refusal of an episode (the
    /// one that announces it).
    pub over_budget: Option<bool>,
}

/// Counters of the respond stage.
#[derive(Default, Debug)]
pub struct RespondStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
    pub dry_run: AtomicU64,
    pub over_budget: AtomicU64,
}

/// The idempotency key of a (decision, target) command.
pub fn command_id(decision_id: &str, target: &str) -> String {
    format!("{decision_id}.{target}")
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
    /// The wall clock of deadlines, budgets and retry waits.
    clock: Arc<dyn crate::clock::Clock>,
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

/// Read the PEM certificates of `path` (for `ca_bundle`).
fn load_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, RespondError> {
    let pem = std::fs::read(path).map_err(|e| {
        RespondError::Target(format!("respond.ca_bundle = {:?}: {e}", path.display()))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        RespondError::Target(format!("respond.ca_bundle = {:?}: {e}", path.display()))
    })?;
    if certs.is_empty() {
        return Err(RespondError::Target(format!(
            "respond.ca_bundle = {:?}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

impl Dispatcher {
    /// `reports` receives one [`Delivery`] per (decision, target) when given. Runs on the system clock.
    pub fn new(
        cfg: RespondConfig,
        targets: Vec<Target>,
        reports: Option<mpsc::UnboundedSender<Delivery>>,
    ) -> Result<Self, RespondError> {
        Dispatcher::with_clock(cfg, targets, reports, Arc::new(crate::clock::SystemClock))
    }

    /// [`Dispatcher::new`] on the given wall clock (tests move a [`crate::clock::ManualClock`] themselves).
    pub fn with_clock(
        cfg: RespondConfig,
        targets: Vec<Target>,
        reports: Option<mpsc::UnboundedSender<Delivery>>,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<Self, RespondError> {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .user_agent(concat!("quench/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_bundle {
            for c in load_ca_bundle(path)? {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
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
                clock,
            }),
        })
    }

    /// The current time on this dispatcher's wall clock.
    pub fn now(&self) -> Ts {
        self.inner.clock.now()
    }

    pub fn stats(&self) -> &RespondStats {
        &self.inner.stats
    }

    pub fn config(&self) -> &RespondConfig {
        &self.inner.cfg
    }

    /// True when no target is configured: decisions are logged, not sent.
    pub fn dry_run(&self) -> bool {
        self.inner.targets.is_empty()
    }

    /// The names of the targets that act on `d` (none for shadow decisions).
    pub fn targets_for<'a>(&'a self, d: &'a Decision) -> impl Iterator<Item = &'a str> + 'a {
        self.inner
            .targets
            .iter()
            .filter(move |t| !d.shadow && t.takes(d))
            .map(|t| t.name.as_str())
    }

    /// Whether any target's revocations are confirmed from the vendor's log.
    pub fn watches_confirmations(&self) -> bool {
        self.inner
            .targets
            .iter()
            .any(|t| t.confirm_within_secs.is_some())
    }

    /// The vendor log and the time within which target `name`'s revocations must be confirmed, if watched.
    pub fn confirmation_of(&self, name: &str) -> Option<(&'static str, u64)> {
        let t = self.inner.targets.iter().find(|t| t.name == name)?;
        Some((t.confirmed_by?.as_str(), t.confirm_within_secs?))
    }

    /// Log (and report) a decision a dry run would have acted on.
    fn dry(&self, d: &Decision) {
        if d.action >= Action::StepUp && !d.shadow {
            self.inner.stats.dry_run.fetch_add(1, Ordering::Relaxed);
            tracing::info!(decision = %d.decision_id, action = d.action.as_str(), principal = ?d.principal, "dry run: no target configured, nothing sent");
            self.report(Delivery {
                decision_id: d.decision_id.clone(),
                command_id: command_id(&d.decision_id, "dry-run"),
                action: d.action,
                principal: d.principal.clone(),
                target: "dry-run".into(),
                attempts: 0,
                result: Ok(0),
                retryable: false,
                dry_run: true,
                over_budget: None,
                finished_at: self.now(),
            });
        }
    }

    /// Start dispatching `d` to every target that handles it, directly (no outbox: `replay --dispatch`).
    /// Returns at once (needs a Tokio runtime).
    pub fn dispatch(&self, d: Arc<Decision>) {
        if self.dry_run() {
            return self.dry(&d);
        }
        let names: Vec<String> = self.targets_for(&d).map(String::from).collect();
        let started = self.now();
        for name in names {
            let me = self.clone();
            let d = d.clone();
            let guard = self.inner.tracker.enter();
            tokio::spawn(async move {
                let _guard = guard;
                me.deliver(&name, &d, started).await;
            });
        }
    }

    /// Deliver `d` to the target `name` until it succeeds, fails for good, runs out of attempts or passes
    /// `decided_at + give_up_after_secs` (wall clock). Honours `Retry-After` and the target's rate limit.
    pub async fn deliver(&self, name: &str, d: &Decision, decided_at: Ts) -> Delivery {
        let inner = &self.inner;
        let key = command_id(&d.decision_id, name);
        let Some(t) = inner.targets.iter().find(|t| t.name == name) else {
            inner.stats.failed.fetch_add(1, Ordering::Relaxed);
            return self.report(Delivery {
                decision_id: d.decision_id.clone(),
                command_id: key,
                action: d.action,
                principal: d.principal.clone(),
                target: name.into(),
                attempts: 0,
                result: Err(format!("target {name:?} is not configured (any more)")),
                retryable: false,
                dry_run: false,
                over_budget: None,
                finished_at: self.now(),
            });
        };
        if let Some(b) = &t.budget {
            if let Err(first) = b.take(self.now().0) {
                inner.stats.over_budget.fetch_add(1, Ordering::Relaxed);
                tracing::error!(decision = %d.decision_id, target = %t.name, action = d.action.as_str(), "target revocation budget exhausted: not sent, alert only");
                return self.report(Delivery {
                    decision_id: d.decision_id.clone(),
                    command_id: key,
                    action: d.action,
                    principal: d.principal.clone(),
                    target: t.name.clone(),
                    attempts: 0,
                    result: Err(format!(
                        "not sent: the revocation budget of target {:?} is spent ({} per {} s); alert only",
                        t.name,
                        b.max,
                        b.window_ms / 1000
                    )),
                    retryable: false,
                    dry_run: false,
                    over_budget: Some(first),
                    finished_at: self.now(),
                });
            }
        }
        let deadline_ms = decided_at.0 + inner.cfg.give_up_after_secs as i64 * 1000;
        let max_backoff = Duration::from_millis(inner.cfg.max_backoff_ms);
        let mut delay = Duration::from_millis(inner.cfg.backoff_ms);
        let mut attempts = 0;
        let (result, retryable) = loop {
            if self.now().0 >= deadline_ms {
                let e = format!(
                    "given up: not delivered within give_up_after_secs = {}",
                    inner.cfg.give_up_after_secs
                );
                tracing::error!(decision = %d.decision_id, target = %t.name, attempts, "revocation given up");
                inner.stats.failed.fetch_add(1, Ordering::Relaxed);
                break (Err(e), true);
            }
            if let Some(l) = &t.limit {
                l.acquire().await;
            }
            attempts += 1;
            match t.responder.send(&inner.http, d, &key).await {
                Ok(status) => {
                    inner.stats.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(decision = %d.decision_id, target = %t.name, action = d.action.as_str(), status, attempts, "revocation sent");
                    break (Ok(status), false);
                }
                Err(e) if e.retryable() && attempts < inner.cfg.max_attempts => {
                    inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                    // the server's Retry-After wins; otherwise exponential backoff with jitter
                    let wait = match &e {
                        RespondError::Status {
                            retry_after: Some(r),
                            ..
                        } => *r,
                        _ => delay.mul_f64(1.0 + fastrand::f64() * 0.5).min(max_backoff),
                    };
                    let left = Duration::from_millis((deadline_ms - self.now().0).max(0) as u64);
                    let e = error_text(&e, &t.responder.secrets());
                    tracing::warn!(decision = %d.decision_id, target = %t.name, attempts, wait_ms = wait.as_millis() as u64, error = %e, "revocation failed, retrying");
                    inner.clock.sleep(wait.min(left)).await;
                    delay = (delay * 2).min(max_backoff);
                }
                Err(e) => {
                    inner.stats.failed.fetch_add(1, Ordering::Relaxed);
                    let retryable = e.retryable();
                    let e = error_text(&e, &t.responder.secrets());
                    tracing::error!(decision = %d.decision_id, target = %t.name, attempts, retryable, error = %e, "revocation failed");
                    break (Err(e), retryable);
                }
            }
        };
        self.report(Delivery {
            decision_id: d.decision_id.clone(),
            command_id: key,
            action: d.action,
            principal: d.principal.clone(),
            target: t.name.clone(),
            attempts,
            result,
            retryable,
            dry_run: false,
            over_budget: None,
            finished_at: self.now(),
        })
    }

    fn report(&self, r: Delivery) -> Delivery {
        if let Some(tx) = &self.inner.reports {
            let _ = tx.send(r.clone());
        }
        r
    }

    /// Wait until every dispatch started so far has finished.
    pub async fn drain(&self) {
        self.inner.tracker.idle().await;
    }
}

/// The notice that a target's spent revocation budget refused `d` ([`crate::decide::notice::target_budget`]), made
/// when the refusal was.
pub fn budget_notice(delivery: &Delivery, d: &Decision) -> Decision {
    let why = delivery
        .result
        .as_ref()
        .err()
        .map(String::as_str)
        .unwrap_or("");
    crate::decide::notice::target_budget(d, &delivery.target, why, delivery.finished_at)
}

/// What [`redact`] puts in place of a credential.
const REDACTED: &str = "[redacted]";

/// The shortest start of a credential that [`redact`] replaces.
const SECRET_PREFIX: usize = 4;

/// Bytes of an error's text that [`error_text`] keeps (before escaping).
const ERROR_SHOWN: usize = 300;

/// `text` with every run of [`SECRET_PREFIX`] (4) or more bytes that is the start of one of `secrets` replaced by
/// `[redacted]`, wherever it stands. That covers a whole secret and also one cut short, by the server or by a read
/// or display limit, at the end of the text or before more text: at most 3 bytes of a credential's start can
/// show. Text that merely begins like a credential (`ghp_`, `xoxb-`) is redacted too; that is the price.
/// Credentials are at least [`MIN_SECRET`] bytes (checked at start-up); an empty one is ignored.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let run = secrets
            .iter()
            .map(|s| common_start(rest, s))
            .max()
            .unwrap_or(0);
        if run >= SECRET_PREFIX {
            out.push_str(REDACTED);
            rest = &rest[run..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// How many bytes `text` and `secret` begin with in common (ending on a character boundary of `text`).
fn common_start(text: &str, secret: &str) -> usize {
    let n = text
        .bytes()
        .zip(secret.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    (0..=n)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

/// An error as reports and logs carry it: `secrets` [`redact`]ed from the whole text first, then cut to
/// [`ERROR_SHOWN`] (300) bytes (not inside a `[redacted]`, marked `…`), then its control characters escaped
/// ([`crate::text::escape_control`]). Redacting before cutting is what keeps a cut from leaving part of a
/// credential unrecognised.
pub(crate) fn error_text(e: &RespondError, secrets: &[String]) -> String {
    let mut t = redact(&e.to_string(), secrets);
    if t.len() > ERROR_SHOWN {
        let mut cut = (0..=ERROR_SHOWN)
            .rev()
            .find(|i| t.is_char_boundary(*i))
            .unwrap_or(0);
        // a marker cut in two would read as text; cut before it
        let from = cut.saturating_sub(REDACTED.len() - 1);
        if let Some(m) = (from..cut).find(|m| t.get(*m..).is_some_and(|r| r.starts_with(REDACTED)))
        {
            cut = m;
        }
        t.truncate(cut);
        t.push('…');
    }
    crate::text::escape_control(&t).into_owned()
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
pub(crate) fn parse_base(key: &'static str, s: &str) -> Result<reqwest::Url, BuildError> {
    let u = reqwest::Url::parse(s).map_err(|e| BuildError::new(key, s, e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(BuildError::new(key, s, "allowed: an http or https URL"));
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
            body: String::new(),
            retry_after: None
        }
        .retryable());
        assert!(RespondError::Status {
            status: 503,
            body: String::new(),
            retry_after: None
        }
        .retryable());
        assert!(!RespondError::Status {
            status: 404,
            body: String::new(),
            retry_after: None
        }
        .retryable());
        assert!(!RespondError::Credentials("x".into()).retryable());
    }

    #[test]
    fn a_secret_can_come_from_the_file_named_by_var_file() {
        let dir = std::env::temp_dir().join(format!("quench-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "s3cret-from-file\n").unwrap();
        std::env::set_var("QUENCH_TEST_SECRET_VIA_FILE_FILE", &f);
        assert_eq!(
            secret_from_env("token_env", "QUENCH_TEST_SECRET_VIA_FILE").unwrap(),
            "s3cret-from-file"
        );
        let e = secret_from_env("token_env", "QUENCH_TEST_SECRET_NOWHERE").unwrap_err();
        assert_eq!(e.key, "token_env");
        let e = e.to_string();
        assert!(e.contains("QUENCH_TEST_SECRET_NOWHERE_FILE"), "{e}");
    }

    /// Found by a mutation run: a target's budget notice is decided now, is never a shadow record, carries no trust
    /// of its own, and keeps the refused decision's event time and subject.
    #[test]
    fn a_budget_notice_is_a_fresh_alert_about_the_refused_decision() {
        let d = Decision {
            kind: Default::default(),
            decision_id: "a".repeat(32),
            decided_at: Ts(0),
            event_time: Ts(5_000),
            action: Action::TerminateSession,
            principal: Some("alice@example.com".into()),
            principal_id: None,
            principal_kind: crate::event::PrincipalKind::Human,
            token_id: None,
            session_id: Some("s-1".into()),
            job_id: None,
            score: 0.9,
            findings: vec![],
            evidence: vec!["e1".into()],
            guardrail: None,
            shadow: true,
            trust: crate::decide::Trust::vouched_by("okta", crate::event::Family::Idp, "e1"),
        };
        let delivery = Delivery {
            decision_id: d.decision_id.clone(),
            command_id: "c".into(),
            action: d.action,
            principal: d.principal.clone(),
            target: "okta".into(),
            attempts: 0,
            result: Err(
                "not sent: the revocation budget of target \"okta\" is spent (1 per 3600 s)".into(),
            ),
            retryable: false,
            dry_run: false,
            over_budget: Some(true),
            finished_at: Ts::now(),
        };
        let n = budget_notice(&delivery, &d);
        assert_eq!(n.decision_id, format!("{}-okta-budget", "a".repeat(24)));
        assert_eq!(n.action, Action::Alert);
        assert!(n.decided_at.0 > 0);
        assert_eq!(
            (n.event_time, n.session_id.as_deref()),
            (Ts(5_000), Some("s-1"))
        );
        assert!(!n.shadow);
        assert_eq!(n.trust, crate::decide::Trust::default());
        assert!(n.guardrail.unwrap().contains("1 per 3600 s"));
    }

    /// Found by a mutation run: the cut of a long error must keep a marker that ends exactly at the cut, and drop
    /// one the cut would split.
    #[test]
    fn a_long_error_is_cut_before_a_split_marker_and_keeps_a_whole_one() {
        let secrets = vec!["sk-0123456789abcdef".to_string()];
        let error = |pad: usize| RespondError::Status {
            status: 401,
            body: format!(
                "{}sk-0123456789abcdef and more text after it",
                "x".repeat(pad)
            ),
            retry_after: None,
        };
        // "HTTP 401: " is 10 bytes: the marker ends exactly at byte ERROR_SHOWN
        let whole = error_text(&error(ERROR_SHOWN - 10 - REDACTED.len()), &secrets);
        assert!(whole.ends_with("[redacted]…"), "{whole}");
        // an error of exactly ERROR_SHOWN bytes is whole: nothing cut, no ellipsis
        let exact = error_text(
            &RespondError::Status {
                status: 401,
                body: "y".repeat(ERROR_SHOWN - 10),
                retry_after: None,
            },
            &secrets,
        );
        assert_eq!(exact.len(), ERROR_SHOWN);
        assert!(!exact.ends_with('…'), "{exact}");
        // one byte later the cut would split it: it goes entirely
        let split = error_text(&error(ERROR_SHOWN - 10 - REDACTED.len() + 1), &secrets);
        assert!(split.ends_with("x…") && !split.contains("[red"), "{split}");
    }

    const TOKEN: &str = "00Zq7vN3kLp9XwT2bR8sYc4HjM6dF1gA5eU0iO3tQ7x";

    fn okta_secrets() -> Vec<String> {
        vec![format!("SSWS {TOKEN}"), TOKEN.to_string()]
    }

    #[test]
    fn a_token_the_server_cut_short_is_redacted_wherever_it_stands() {
        let text = format!("a {TOKEN} b {}... c SSWS {}", &TOKEN[..12], &TOKEN[..5]);
        assert_eq!(
            redact(&text, &okta_secrets()),
            "a [redacted] b [redacted]... c [redacted]"
        );
        // three bytes are too few to be told from text; an empty secret redacts nothing
        assert_eq!(redact("x 00Z", &okta_secrets()), "x 00Z");
        assert_eq!(redact("x 00Z", &[String::new()]), "x 00Z");
    }

    #[test]
    fn an_error_body_ending_inside_a_token_or_cut_beside_one_shows_none_of_it() {
        let status = |body: String| RespondError::Status {
            status: 401,
            body,
            retry_after: None,
        };
        // the body itself ends in the token's first 30 bytes (a server's own cut, or the read limit)
        let e = status(format!("authorization: SSWS {}", &TOKEN[..30]));
        assert_eq!(
            error_text(&e, &okta_secrets()),
            "HTTP 401: authorization: [redacted]"
        );
        // the 300-byte cut would fall inside the token: it falls before the marker instead
        let e = status(format!("{}{TOKEN} and more\n\x1b[2J", ".".repeat(285)));
        let t = error_text(&e, &okta_secrets());
        assert_eq!(t, format!("HTTP 401: {}…", ".".repeat(285)));
        // a short body keeps all of itself, control characters escaped
        let t = error_text(
            &status(format!("{TOKEN} and more\n\x1b[2J")),
            &okta_secrets(),
        );
        assert_eq!(t, "HTTP 401: [redacted] and more\\n\\u{1b}[2J");
    }

    #[test]
    fn a_credential_shorter_than_8_bytes_is_refused_at_start_up_naming_the_key() {
        std::env::set_var("QUENCH_TEST_SHORT_TOKEN", "00abcde");
        let e = build(
            "[[targets]]\ntype = \"okta\"\nbase_url = \"https://x.okta.com\"\napi_token_env = \"QUENCH_TEST_SHORT_TOKEN\"\n",
        )
        .err()
        .unwrap();
        assert!(
            e.contains("api_token_env")
                && e.contains("QUENCH_TEST_SHORT_TOKEN")
                && e.contains("7 bytes")
                && e.contains("at least 8"),
            "{e}"
        );
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    fn build(toml_text: &str) -> Result<Vec<Target>, String> {
        std::env::set_var("QUENCH_TEST_BUILD_SECRET", "0123456789abcdef0123");
        let cfg: RespondConfig = toml::from_str(toml_text).unwrap();
        build_targets(&cfg).map_err(|e| e.to_string())
    }

    /// A target's own build error is reported under the key it is about (it was `(target)` for every one).
    #[test]
    fn a_targets_build_error_names_its_key_and_value() {
        let e = build(
            "enforce = true\n[[targets]]\ntype = \"okta\"\nbase_url = \"ftp://okta.example\"\napi_token_env = \"QUENCH_TEST_BUILD_SECRET\"\n",
        )
        .err()
        .unwrap();
        assert!(
            e.contains("respond.targets[0].base_url = \"ftp://okta.example\"")
                && e.contains("http or https"),
            "{e}"
        );
        let e = build(
            "enforce = true\n[[targets]]\ntype = \"okta\"\nbase_url = \"https://okta.example\"\napi_token_env = \"QUENCH_TEST_BUILD_NOWHERE\"\n",
        )
        .err()
        .unwrap();
        assert!(
            e.contains("respond.targets[0].api_token_env = \"QUENCH_TEST_BUILD_NOWHERE\""),
            "{e}"
        );
        let e = build(
            "enforce = true\n[[targets]]\ntype = \"slack\"\nbase_url = \"https://slack.example\"\ntoken_env = \"QUENCH_TEST_BUILD_SECRET\"\ntokn_env = \"x\"\n",
        )
        .err()
        .unwrap();
        assert!(
            e.contains("respond.targets[0].(table)") && e.contains("tokn_env"),
            "{e}"
        );
        // confirmation is allowed exactly on the types the registry says a vendor's log confirms
        let e = build("enforce = true\n[[targets]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nsecret_env = \"QUENCH_TEST_BUILD_SECRET\"\nconfirm_within_secs = 60\n")
        .err()
        .unwrap();
        let confirmable: Vec<&str> = registry()
            .iter()
            .filter(|r| r.confirmed_by.is_some())
            .map(|r| r.name)
            .collect();
        assert!(confirmable.len() >= 5, "{confirmable:?}");
        assert!(
            e.contains(&format!("allowed on {} targets", confirmable.join(", "))),
            "{e}"
        );
    }

    #[test]
    fn rate_limits_and_target_names_are_checked_at_start_up() {
        let hook = "type = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nsecret_env = \"QUENCH_TEST_BUILD_SECRET\"\n";
        let e = build(&format!(
            "enforce = true\n[[targets]]\n{hook}rate_per_sec = 0\n"
        ))
        .err()
        .unwrap();
        assert!(e.contains("rate_per_sec") && e.contains("above 0"), "{e}");
        let e = build(&format!("enforce = true\n[[targets]]\n{hook}burst = 3\n"))
            .err()
            .unwrap();
        assert!(
            e.contains("burst") && e.contains("needs rate_per_sec"),
            "{e}"
        );
        let e = build(&format!(
            "enforce = true\n[[targets]]\n{hook}[[targets]]\n{hook}"
        ))
        .err()
        .unwrap();
        assert!(e.contains("targets[1].name") && e.contains("unique"), "{e}");
        let ok = build(&format!(
            "enforce = true\n[[targets]]\n{hook}rate_per_sec = 2.5\nburst = 4\n"
        ))
        .unwrap();
        assert!(ok[0].limit.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_spaces_requests_after_the_burst() {
        let l = RateLimit::new(2.0, 3);
        let t0 = tokio::time::Instant::now();
        let mut at = Vec::new();
        for _ in 0..6 {
            l.acquire().await;
            at.push((tokio::time::Instant::now() - t0).as_millis());
        }
        // three at once, then one every 500 ms
        assert_eq!(at, vec![0, 0, 0, 500, 1000, 1500]);
    }

    #[test]
    fn a_ca_bundle_that_is_not_pem_is_rejected_naming_the_key() {
        let dir = std::env::temp_dir().join(format!("quench-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("ca.pem");
        std::fs::write(&f, "not a certificate").unwrap();
        let cfg = RespondConfig {
            ca_bundle: Some(f),
            ..Default::default()
        };
        let e = Dispatcher::new(cfg, vec![], None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("respond.ca_bundle") && e.contains("ca.pem"),
            "{e}"
        );
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
    fn configured_targets_need_an_explicit_enforce_and_false_sends_nothing() {
        std::env::set_var("QUENCH_TEST_ENFORCE_SECRET", "0123456789abcdef0123");
        let t: toml::Table = toml::from_str(
            "type = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nsecret_env = \"QUENCH_TEST_ENFORCE_SECRET\"\n",
        )
        .unwrap();
        let cfg = |enforce| RespondConfig {
            targets: vec![t.clone()],
            enforce,
            ..Default::default()
        };
        let e = build_targets(&cfg(None)).err().unwrap().to_string();
        assert!(e.contains("respond.enforce"), "{e}");
        assert!(build_targets(&cfg(Some(false))).unwrap().is_empty());
        let built = build_targets(&cfg(Some(true))).unwrap();
        assert_eq!(built.len(), 1);
        assert!(
            built[0].budget.is_some(),
            "a per-target budget is on by default"
        );
        // a bad target is still reported with enforce = false
        let mut bad = t.clone();
        bad.insert("url".into(), toml::Value::String("not a url".into()));
        let e = build_targets(&RespondConfig {
            targets: vec![bad],
            enforce: Some(false),
            ..Default::default()
        });
        assert!(e.is_err());
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
            enforce: Some(true),
            ..Default::default()
        })
        .unwrap();
        let d = |action, kind, p: &str| Decision {
            kind: Default::default(),
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
            trust: Default::default(),
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
