//! Respond: send revocation commands for decisions to the IdP/SaaS APIs.
//!
//! In: [`Decision`]s whose action some configured target handles. Out: HTTP requests to those targets, and one
//! [`Delivery`] report per (decision, target). State: per target, its rate limiter and revocation budget
//! ([`limits`]); the deliveries in flight ([`dispatch`]); no state per event.
//!
//! This file holds what a target is: the [`Responder`] trait, the [`registry`] of target types (one `ENTRY` per
//! target file), the `[respond]` config and [`build_targets`]. Beside it: [`dispatch`] (the [`Dispatcher`]:
//! retries with backoff for errors a retry can help, `Retry-After`, deadlines, a dry run when no target is
//! configured), [`error`] (errors, and their text with credentials redacted, cut to 300 bytes, control characters
//! escaped), [`http`], [`secrets`], [`limits`], the [`outbox`] (in `run`, decisions become commands on a topic that
//! its loop delivers, so the consumer waits only for the broker to take them), [`confirm`] (the vendor's own log
//! shows a revocation took effect) and [`address`] (which ids a target may use).

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

pub mod dispatch;
pub mod error;
pub mod http;
pub mod limits;
pub mod secrets;
pub use dispatch::*;
pub use error::*;
pub(crate) use http::*;
pub use limits::*;
pub(crate) use secrets::*;

use crate::clock::WallTime;
use crate::decide::{Action, Decision};
use crate::event::PrincipalKind;
use crate::event::Vendor;
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

#[cfg(test)]
mod tests {
    use super::*;

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
            decision_id: "0".repeat(32),
            decided_at: crate::event::Ts(0),
            event_time: crate::event::Ts(0),
            action,
            principal: Some(p.into()),
            principal_kind: kind,
            score: 0.9,
            ..Default::default()
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
}
