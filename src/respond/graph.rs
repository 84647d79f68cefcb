//! Microsoft Graph: revoke every refresh token and session cookie of a user.
//!
//! In: `revoke_token` / `terminate_session` decisions. Out: `POST {base_url}/users/{id|upn}/revokeSignInSessions`
//! with a bearer token and no body (the action takes none). The token comes from the environment variable `access_token_env`, or is fetched with the
//! OAuth client-credentials grant from `{token_url}` using `client_id` and the secret in `client_secret_env`
//! (cached until shortly before it expires). State: that cached token, and the one before it; both are among the
//! target's secrets the whole time, a refresh under way included, so that no report or log can carry them.

use super::address;
use super::{
    check, parse_base, secret_from_env, url_with, BoxFuture, BuildError, Registered, RespondError,
    Responder, Sample, MIN_SECRET,
};
use crate::decide::Decision;
use crate::event::Vendor;
use serde::Deserialize;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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

// one per target, built once: the size difference costs nothing
#[allow(clippy::large_enum_variant)]
enum Cred {
    Static(String),
    ClientCredentials {
        token_url: reqwest::Url,
        client_id: String,
        secret: String,
        /// Held while a token is fetched, so that concurrent requests wait for one fetch.
        refresh: tokio::sync::Mutex<()>,
        /// Read and written only briefly, never across an await: [`Responder::secrets`] always sees it.
        tokens: Mutex<Tokens>,
    },
}

/// The access tokens fetched with the client secret.
#[derive(Default)]
struct Tokens {
    /// The token in use and until when.
    current: Option<(String, Instant)>,
    /// The one it replaced (a request may still be using it).
    previous: Option<String>,
}

impl Tokens {
    fn fresh(m: &Mutex<Tokens>) -> Option<String> {
        let t = m.lock().unwrap_or_else(PoisonError::into_inner);
        t.current
            .as_ref()
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(tok, _)| tok.clone())
    }
}

pub fn build(t: toml::Table) -> Result<Box<dyn Responder>, BuildError> {
    let cfg: GraphConfig = super::parse_target(t)?;
    let base = parse_base("base_url", &cfg.base_url)?;
    let cred = match (&cfg.access_token_env, &cfg.token_url, &cfg.client_id) {
        (Some(env), _, _) => Cred::Static(secret_from_env("access_token_env", env)?),
        (None, Some(url), Some(id)) => Cred::ClientCredentials {
            token_url: parse_base("token_url", url)?,
            client_id: id.clone(),
            secret: secret_from_env("client_secret_env", &cfg.client_secret_env)?,
            refresh: Default::default(),
            tokens: Default::default(),
        },
        _ => {
            return Err(BuildError::new(
                "access_token_env",
                "",
                "set access_token_env, or token_url and client_id (with client_secret_env)",
            ))
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
                refresh,
                tokens,
            } => {
                if let Some(t) = Tokens::fresh(tokens) {
                    return Ok(t);
                }
                let _fetching = refresh.lock().await;
                // another request may have fetched one while this one waited
                if let Some(t) = Tokens::fresh(tokens) {
                    return Ok(t);
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
                if t.access_token.len() < MIN_SECRET {
                    return Err(RespondError::Credentials(format!(
                        "the token endpoint issued an access token of {} bytes; at least {MIN_SECRET} are required \
                         (a shorter one could not be redacted from logs and reports)",
                        t.access_token.len()
                    )));
                }
                let life = Duration::from_secs(t.expires_in.unwrap_or(3600).saturating_sub(60));
                let mut held = tokens.lock().unwrap_or_else(PoisonError::into_inner);
                let replaced = held
                    .current
                    .replace((t.access_token.clone(), Instant::now() + life));
                if let Some((old, _)) = replaced {
                    held.previous = Some(old);
                }
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
    fn secrets(&self) -> Vec<String> {
        match &self.cred {
            Cred::Static(t) => vec![t.clone()],
            Cred::ClientCredentials { secret, tokens, .. } => {
                // the access tokens fetched with the secret are credentials too
                let t = tokens.lock().unwrap_or_else(PoisonError::into_inner);
                let mut out = vec![secret.clone()];
                out.extend(t.current.as_ref().map(|(tok, _)| tok.clone()));
                out.extend(t.previous.clone());
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
            // Entra addresses users by object id (from Entra's own log) or UPN (an IdP-verified e-mail).
            let user = address::user(d, VENDOR)?.as_str();
            let url = url_with(&self.base, &["users", user, self.action])?;
            let token = self.token(http).await?;
            let sent = async {
                let resp = http
                    .post(url)
                    .bearer_auth(&token)
                    // the action takes no body; Graph wants an explicit zero length on POST
                    .header("Content-Length", "0")
                    .send()
                    .await?;
                check(resp).await
            };
            // the token used may be two refreshes old by the time the error is reported: redact it here
            sent.await.map_err(|e| e.redacted(&[token]))
        })
    }
}

/// The vendor whose log names the users this target addresses, and confirms its revocations.
const VENDOR: Vendor = Vendor::Microsoft;

/// The registry entry of Microsoft Graph.
pub const ENTRY: Registered = Registered::new(NAME, build, Some(VENDOR), |base, env| {
    Sample::bearer(format!(
            "type = \"{NAME}\"\nbase_url = \"{base}/v1.0\"\ntoken_url = \"{base}/token\"\n\
             client_id = \"11111111-1111-1111-1111-111111111111\"\nclient_secret_env = \"{env}_GRAPH\"\n"
        ), format!("{env}_GRAPH"), "graph-client-secret-~0123456789")
});

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    const FIRST: &str = "eyJ0eXAiOiJKV1QifQ.first-access-token";
    const SECOND: &str = "eyJ0eXAiOiJKV1QifQ.second-access-token";

    /// A token endpoint issuing [`FIRST`], then [`SECOND`], each expiring at once (`expires_in: 0`). It announces
    /// the second request on the first channel and answers it only when the second fires.
    async fn token_endpoint() -> (reqwest::Url, oneshot::Receiver<()>, oneshot::Sender<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = parse_base(
            "token_url",
            &format!("http://{}/token", l.local_addr().unwrap()),
        )
        .unwrap();
        let (asked_tx, asked) = oneshot::channel();
        let (release, release_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut hold = Some((asked_tx, release_rx));
            for tok in [FIRST, SECOND] {
                let (mut s, _) = l.accept().await.unwrap();
                let _ = s.read(&mut [0u8; 8192]).await;
                if tok == SECOND {
                    let (asked_tx, release_rx) = hold.take().unwrap();
                    asked_tx.send(()).unwrap();
                    release_rx.await.unwrap();
                }
                let body =
                    format!(r#"{{"access_token":"{tok}","token_type":"Bearer","expires_in":0}}"#);
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        (url, asked, release)
    }

    #[tokio::test]
    async fn a_token_refresh_under_way_does_not_hide_the_cached_token_from_redaction() {
        let (token_url, asked, release) = token_endpoint().await;
        let g = Graph {
            base: parse_base("base_url", "http://127.0.0.1:9/v1.0").unwrap(),
            cred: Cred::ClientCredentials {
                token_url,
                client_id: "11111111-1111-1111-1111-111111111111".into(),
                secret: "graph-client-secret-0123".into(),
                refresh: Default::default(),
                tokens: Default::default(),
            },
            action: "revokeSignInSessions",
        };
        let http = reqwest::Client::new();
        assert_eq!(g.token(&http).await.unwrap(), FIRST);
        // FIRST has expired: the next request refreshes, and the token endpoint keeps it waiting
        let refresh = g.token(&http);
        tokio::pin!(refresh);
        tokio::select! {
            r = &mut refresh => panic!("the refresh ended before the token endpoint answered: {r:?}"),
            _ = asked => {}
        }
        let during = g.secrets();
        assert!(
            during.iter().any(|s| s == FIRST),
            "during the refresh the token still cached is not redacted: {during:?}"
        );
        release.send(()).unwrap();
        assert_eq!(refresh.await.unwrap(), SECOND);
        let after = g.secrets();
        for t in ["graph-client-secret-0123", FIRST, SECOND] {
            assert!(after.iter().any(|s| s == t), "{t} missing from {after:?}");
        }
    }
}
