//! Microsoft Graph: revoke every refresh token and session cookie of a user.
//!
//! In: `revoke_token` / `terminate_session` decisions. Out: `POST {base_url}/users/{id|upn}/revokeSignInSessions`
//! with a bearer token and no body (the action takes none). The token comes from the environment variable `access_token_env`, or is fetched with the
//! OAuth client-credentials grant from `{token_url}` using `client_id` and the secret in `client_secret_env`
//! (cached until shortly before it expires).

use super::{
    check, parse_base, secret_from_env, url_with, user_ref, BoxFuture, RespondError, Responder,
};
use crate::decide::Decision;
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub const NAME: &str = "graph";

/// `[[respond.targets]] type = "graph"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// Graph root including the version. Default `"https://graph.microsoft.com/v1.0"`.
    #[serde(default = "default_base")]
    pub base_url: String,
    /// Use the namespace-qualified action name (`microsoft.graph.revokeSignInSessions`). Default false.
    #[serde(default)]
    pub qualified_action_name: bool,
    /// Environment variable with a ready bearer token. Default: none (use client credentials).
    #[serde(default)]
    pub access_token_env: Option<String>,
    /// Token endpoint, e.g. `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`. Default: none.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Application (client) id for client credentials. Default: none.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Environment variable with the client secret. Default `"GRAPH_CLIENT_SECRET"`.
    #[serde(default = "default_secret_env")]
    pub client_secret_env: String,
}

fn default_base() -> String {
    "https://graph.microsoft.com/v1.0".into()
}
fn default_secret_env() -> String {
    "GRAPH_CLIENT_SECRET".into()
}

enum Cred {
    Static(String),
    ClientCredentials {
        token_url: reqwest::Url,
        client_id: String,
        secret: String,
        cached: Mutex<Option<(String, Instant)>>,
    },
}

pub fn build(t: toml::Table) -> Result<Box<dyn Responder>, String> {
    let cfg: GraphConfig = super::parse_target(t)?;
    let base = parse_base(&cfg.base_url)?;
    let cred = match (&cfg.access_token_env, &cfg.token_url, &cfg.client_id) {
        (Some(env), _, _) => Cred::Static(secret_from_env("access_token_env", env)?),
        (None, Some(url), Some(id)) => Cred::ClientCredentials {
            token_url: parse_base(url)?,
            client_id: id.clone(),
            secret: secret_from_env("client_secret_env", &cfg.client_secret_env)?,
            cached: Mutex::new(None),
        },
        _ => {
            return Err(
                "set access_token_env, or token_url and client_id (with client_secret_env)".into(),
            )
        }
    };
    let action = if cfg.qualified_action_name {
        "microsoft.graph.revokeSignInSessions"
    } else {
        "revokeSignInSessions"
    };
    Ok(Box::new(Graph { base, cred, action }))
}

pub struct Graph {
    base: reqwest::Url,
    cred: Cred,
    action: &'static str,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Graph {
    async fn token(&self, http: &reqwest::Client) -> Result<String, RespondError> {
        match &self.cred {
            Cred::Static(t) => Ok(t.clone()),
            Cred::ClientCredentials {
                token_url,
                client_id,
                secret,
                cached,
            } => {
                let mut c = cached.lock().await;
                if let Some((t, until)) = c.as_ref() {
                    if Instant::now() < *until {
                        return Ok(t.clone());
                    }
                }
                let body = format!(
                    "grant_type=client_credentials&scope={}&client_id={}&client_secret={}",
                    enc("https://graph.microsoft.com/.default"),
                    enc(client_id),
                    enc(secret)
                );
                let resp = http
                    .post(token_url.clone())
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await?;
                let status = resp.status().as_u16();
                if !resp.status().is_success() {
                    // the body may echo request details; keep only the status
                    return Err(if status >= 500 || status == 429 {
                        RespondError::Status {
                            status,
                            body: "token endpoint".into(),
                            retry_after: None,
                        }
                    } else {
                        RespondError::Credentials(format!("token endpoint answered {status}"))
                    });
                }
                let t: TokenResponse = resp.json().await?;
                let life = Duration::from_secs(t.expires_in.unwrap_or(3600).saturating_sub(60));
                *c = Some((t.access_token.clone(), Instant::now() + life));
                Ok(t.access_token)
            }
        }
    }
}

fn enc(s: &str) -> String {
    let mut u = reqwest::Url::parse("x:/").unwrap_or_else(|_| unreachable!());
    u.query_pairs_mut().append_pair("v", s);
    u.query()
        .unwrap_or("v=")
        .trim_start_matches("v=")
        .to_string()
}

impl Responder for Graph {
    fn confirmed_by(&self) -> Option<&'static str> {
        Some("microsoft")
    }

    fn secrets(&self) -> Vec<String> {
        match &self.cred {
            Cred::Static(t) => vec![t.clone()],
            Cred::ClientCredentials { secret, cached, .. } => {
                // the access token fetched with the secret is a credential too
                let mut out = vec![secret.clone()];
                if let Ok(c) = cached.try_lock() {
                    out.extend(c.as_ref().map(|(t, _)| t.clone()));
                }
                out
            }
        }
    }

    fn send<'a>(
        &'a self,
        http: &'a reqwest::Client,
        d: &'a Decision,
        _key: &'a str,
    ) -> BoxFuture<'a, Result<u16, RespondError>> {
        Box::pin(async move {
            // Entra addresses users by object id or UPN; the principal key is the e-mail/UPN when known.
            let user = match d.principal.as_deref() {
                Some(p) => p,
                None => user_ref(d)?,
            };
            let url = url_with(&self.base, &["users", user, self.action])?;
            let token = self.token(http).await?;
            let resp = http
                .post(url)
                .bearer_auth(token)
                // the action takes no body; Graph wants an explicit zero length on POST
                .header("Content-Length", "0")
                .send()
                .await?;
            check(resp).await
        })
    }
}
