//! Slack (Enterprise Grid admin API): end a user's Slack sessions.
//!
//! In: `terminate_session` / `revoke_token` decisions. Out:
//! - `POST {base_url}/admin.users.session.reset` with form `user_id=…`: every session of the user, on every
//!   device (`terminate_session`, and `revoke_token` when the session is not known);
//! - `POST {base_url}/admin.users.session.invalidate` with form `team_id=…&session_id=…`: the one session a
//!   `revoke_token` decision names, when `team_id` is configured and the session id is Slack's (numeric).
//!
//! State: none. The user is the decision's Slack user id (`U…`/`W…`, from Slack's own audit logs); otherwise it is
//! looked up by the e-mail an IdP vouched for with `GET {base_url}/users.lookupByEmail?email=…` (needs
//! `users:read.email`). Slack answers HTTP 200 with `{"ok": false, "error": …}` when it refuses; that is a failure,
//! retryable only for Slack's transient errors.
//!
//! Credentials: a user token with `admin.users:write` from the environment variable `token_env`, sent as
//! `Authorization: Bearer` (how Slack reads it). Slack's published OpenAPI declares the token as a header named
//! `token` on the admin methods, so it is sent there too; that request then matches both the spec and the live
//! API. The lookup keeps the token out of the URL although that spec lists it as a query parameter: Slack rejects
//! query-string tokens for apps created since 2021.

use super::address;
use super::{
    parse_base, parse_target, secret_from_env, status_error, url_with, BoxFuture, BuildError,
    Registered, RespondError, Responder, Sample,
};
use crate::decide::{Action, Decision};
use crate::event::Vendor;
use serde::Deserialize;

pub const NAME: &str = "slack";

/// `[[respond.targets]] type = "slack"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Web API root. Default `"https://slack.com/api"`.
    #[serde(default = "default_base")]
    pub base_url: String,
    /// Environment variable with the admin user token (`xoxp-…`). Default `"SLACK_ADMIN_TOKEN"`.
    #[serde(default = "default_env")]
    pub token_env: String,
    /// The workspace id (`T…`) whose single sessions `revoke_token` may invalidate. Default: none (always reset
    /// all of the user's sessions).
    pub team_id: Option<String>,
}

fn default_base() -> String {
    "https://slack.com/api".into()
}
fn default_env() -> String {
    "SLACK_ADMIN_TOKEN".into()
}

pub fn build(t: toml::Table) -> Result<Box<dyn Responder>, BuildError> {
    let cfg: SlackConfig = parse_target(t)?;
    Ok(Box::new(Slack {
        base: parse_base("base_url", &cfg.base_url)?,
        token: secret_from_env("token_env", &cfg.token_env)?,
        team_id: cfg.team_id,
    }))
}

pub struct Slack {
    base: reqwest::Url,
    token: String,
    team_id: Option<String>,
}

/// Slack user ids: `U` or `W` and upper-case letters and digits.
fn is_slack_user_id(s: &str) -> bool {
    s.len() >= 8
        && (s.starts_with('U') || s.starts_with('W'))
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[derive(Deserialize)]
struct Reply {
    ok: bool,
    error: Option<String>,
    user: Option<User>,
}

#[derive(Deserialize)]
struct User {
    id: String,
}

/// Slack's error codes that a later attempt can get past.
fn transient(error: &str) -> bool {
    matches!(
        error,
        "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout"
            | "ratelimited"
    )
}

async fn reply(resp: reqwest::Response) -> Result<Reply, RespondError> {
    if !resp.status().is_success() {
        return Err(status_error(resp).await);
    }
    let r: Reply = resp.json().await.map_err(|e| {
        RespondError::Transport(format!("unreadable Slack reply: {}", e.without_url()))
    })?;
    if r.ok {
        Ok(r)
    } else {
        let error = r.error.unwrap_or_else(|| "unknown".into());
        Err(RespondError::Api {
            retryable: transient(&error),
            error,
        })
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut u = reqwest::Url::parse("x:/").unwrap_or_else(|_| unreachable!());
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    u.query().unwrap_or("").to_string()
}

impl Slack {
    async fn user_id(&self, http: &reqwest::Client, d: &Decision) -> Result<String, RespondError> {
        if let Some(id) = address::vendor_id(d, VENDOR)?.filter(|i| is_slack_user_id(i)) {
            return Ok(id.to_string());
        }
        let email = address::verified_email(d)?.ok_or_else(|| {
            RespondError::Target(
                "refused: Slack needs a user id from Slack's own log or an IdP-verified e-mail"
                    .into(),
            )
        })?;
        let mut url = url_with(&self.base, &["users.lookupByEmail"])?;
        url.query_pairs_mut().append_pair("email", email);
        let resp = http.get(url).bearer_auth(&self.token).send().await?;
        match reply(resp).await {
            Ok(Reply { user: Some(u), .. }) => Ok(u.id),
            Ok(_) => Err(RespondError::Api {
                error: "users.lookupByEmail returned no user".into(),
                retryable: false,
            }),
            Err(e) => Err(e),
        }
    }
}

impl Responder for Slack {
    fn secrets(&self) -> Vec<String> {
        vec![self.token.clone()]
    }

    fn send<'a>(
        &'a self,
        http: &'a reqwest::Client,
        d: &'a Decision,
        _key: &'a str,
    ) -> BoxFuture<'a, Result<u16, RespondError>> {
        Box::pin(async move {
            // Only a session from Slack's own audit log: a numeric id from elsewhere (an MCP session) is not one.
            let single = match (d.action, &self.team_id, address::vendor_session(d, VENDOR)?) {
                (Action::RevokeToken, Some(team), Some(s))
                    if s.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    Some((team.as_str(), s))
                }
                _ => None,
            };
            let (method, body) = match single {
                Some((team, session)) => (
                    "admin.users.session.invalidate",
                    form(&[("team_id", team), ("session_id", session)]),
                ),
                None => {
                    let user = self.user_id(http, d).await?;
                    ("admin.users.session.reset", form(&[("user_id", &user)]))
                }
            };
            let resp = http
                .post(url_with(&self.base, &[method])?)
                .bearer_auth(&self.token)
                .header("token", &self.token)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await?;
            let status = resp.status().as_u16();
            reply(resp).await.map(|_| status)
        })
    }
}

/// The vendor whose log names the users and sessions this target addresses, and confirms its revocations.
const VENDOR: Vendor = Vendor::Slack;

/// The registry entry of Slack.
pub const ENTRY: Registered = Registered::new(NAME, build, Some(VENDOR), |base, env| {
    Sample::bearer(
        format!("type = \"{NAME}\"\nbase_url = \"{base}\"\ntoken_env = \"{env}_SLACK\"\n"),
        format!("{env}_SLACK"),
        "xoxp-1111-2222-3333-slacksecret",
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_user_ids_are_told_from_other_ids() {
        assert!(is_slack_user_id("W012A3CDE"));
        assert!(is_slack_user_id("U024BE7LH"));
        assert!(!is_slack_user_id("00ualice"));
        assert!(!is_slack_user_id("alice@example.com"));
        assert!(!is_slack_user_id("Wabc"));
    }

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(form(&[("user_id", "W1&x=y")]), "user_id=W1%26x%3Dy");
    }
}
