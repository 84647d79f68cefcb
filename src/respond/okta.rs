//! Okta: end a user's sessions and tokens, in the way configured per action.
//!
//! In: `revoke_token` / `terminate_session` decisions. Out: by method (`revoke_token` / `terminate_session` keys):
//! - `user_sessions`: `DELETE {base_url}/api/v1/users/{userId}/sessions?oauthTokens=true`: every session and every
//!   OAuth token of the user (204). The default for both actions.
//! - `session`: `DELETE {base_url}/api/v1/sessions/{sessionId}`: only the Okta session the decision names (204);
//!   falls back to `user_sessions` when it names none.
//! - `client_tokens`: `DELETE {base_url}/api/v1/users/{userId}/clients/{clientId}/tokens`: the user's tokens for
//!   one OAuth client (`client_id`, e.g. your agent platform's app), leaving their other sessions alone (204).
//! - `universal_logout`: `POST {base_url}/oauth2/v1/global-token-revocation` with `{"sub_id": {"format":
//!   "opaque", "id": userId}}`: Universal Logout, which also signs the user out of apps that support it (204).
//!
//! The user is the decision's Okta user id, else its e-mail/login (Universal Logout needs the id). State: none.
//! Credentials: an API token (`Authorization: SSWS …`) from the environment variable `api_token_env`.

use super::address;
use super::{
    check, parse_base, secret_from_env, url_with, BoxFuture, BuildError, Registered, RespondError,
    Responder, Sample,
};
use crate::decide::{Action, Decision};
use crate::event::Vendor;
use serde::Deserialize;

pub const NAME: &str = "okta";

/// How an action is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    UserSessions,
    Session,
    ClientTokens,
    UniversalLogout,
}

/// `[[respond.targets]] type = "okta"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// Your org's URL, e.g. `https://example.okta.com`. Required.
    pub base_url: String,
    /// Environment variable holding the SSWS API token. Default `"OKTA_API_TOKEN"`.
    #[serde(default = "default_env")]
    pub api_token_env: String,
    /// How `revoke_token` is carried out: `user_sessions`, `session`, `client_tokens` or `universal_logout`.
    /// Default `"user_sessions"`.
    #[serde(default = "default_method")]
    pub revoke_token: Method,
    /// How `terminate_session` is carried out (same choices). Default `"user_sessions"`.
    #[serde(default = "default_method")]
    pub terminate_session: Method,
    /// The OAuth client whose tokens `client_tokens` revokes (`0oa…`). Required with `client_tokens`.
    pub client_id: Option<String>,
}

fn default_env() -> String {
    "OKTA_API_TOKEN".into()
}
fn default_method() -> Method {
    Method::UserSessions
}

pub fn build(t: toml::Table) -> Result<Box<dyn Responder>, BuildError> {
    let cfg: OktaConfig = super::parse_target(t)?;
    let base = parse_base("base_url", &cfg.base_url)?;
    let token = secret_from_env("api_token_env", &cfg.api_token_env)?;
    if (cfg.revoke_token == Method::ClientTokens || cfg.terminate_session == Method::ClientTokens)
        && cfg.client_id.is_none()
    {
        return Err(BuildError::new(
            "client_id",
            "",
            "client_tokens needs client_id (the OAuth client whose tokens to revoke)",
        ));
    }
    Ok(Box::new(Okta {
        base,
        auth: format!("SSWS {token}"),
        revoke_token: cfg.revoke_token,
        terminate_session: cfg.terminate_session,
        client_id: cfg.client_id,
    }))
}

pub struct Okta {
    base: reqwest::Url,
    auth: String,
    revoke_token: Method,
    terminate_session: Method,
    client_id: Option<String>,
}

impl Okta {
    fn request(
        &self,
        http: &reqwest::Client,
        d: &Decision,
    ) -> Result<reqwest::RequestBuilder, RespondError> {
        let method = match d.action {
            Action::TerminateSession => self.terminate_session,
            _ => self.revoke_token,
        };
        let req = match (method, address::vendor_session(d, VENDOR)?) {
            (Method::Session, Some(s)) => {
                http.delete(url_with(&self.base, &["api", "v1", "sessions", s])?)
            }
            (Method::UserSessions | Method::Session, _) => {
                let mut url = url_with(
                    &self.base,
                    &[
                        "api",
                        "v1",
                        "users",
                        address::user(d, VENDOR)?.as_str(),
                        "sessions",
                    ],
                )?;
                url.query_pairs_mut().append_pair("oauthTokens", "true");
                http.delete(url)
            }
            (Method::ClientTokens, _) => {
                let client = self.client_id.as_deref().unwrap_or_default();
                http.delete(url_with(
                    &self.base,
                    &[
                        "api",
                        "v1",
                        "users",
                        address::user(d, VENDOR)?.as_str(),
                        "clients",
                        client,
                        "tokens",
                    ],
                )?)
            }
            (Method::UniversalLogout, _) => {
                let id = address::vendor_id(d, VENDOR)?
                    .filter(|i| i.starts_with("00u"))
                    .ok_or_else(|| {
                        RespondError::Target(
                            "refused: Universal Logout needs an Okta user id (00u…) from Okta's own log; the decision has none"
                                .into(),
                        )
                    })?;
                let body = serde_json::json!({"sub_id": {"format": "opaque", "id": id}});
                http.post(url_with(
                    &self.base,
                    &["oauth2", "v1", "global-token-revocation"],
                )?)
                .header("Content-Type", "application/json")
                .body(body.to_string())
            }
        };
        Ok(req
            .header("Authorization", &self.auth)
            .header("Accept", "application/json"))
    }
}

impl Responder for Okta {
    fn secrets(&self) -> Vec<String> {
        vec![
            self.auth.clone(),
            self.auth.trim_start_matches("SSWS ").to_string(),
        ]
    }

    fn send<'a>(
        &'a self,
        http: &'a reqwest::Client,
        d: &'a Decision,
        _key: &'a str,
    ) -> BoxFuture<'a, Result<u16, RespondError>> {
        Box::pin(async move { check(self.request(http, d)?.send().await?).await })
    }
}

/// The vendor whose log names the users and sessions this target addresses, and confirms its revocations.
const VENDOR: Vendor = Vendor::Okta;

/// The registry entry of Okta.
pub const ENTRY: Registered = Registered::new(NAME, build, Some(VENDOR), |base, env| {
    Sample::bearer(
        format!("type = \"{NAME}\"\nbase_url = \"{base}\"\napi_token_env = \"{env}_OKTA\"\n"),
        format!("{env}_OKTA"),
        "00SuperSecretOktaApiToken",
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tokens_needs_a_client_id() {
        std::env::set_var("QUENCH_TEST_OKTA_CT", "00token-0123456789");
        let t: toml::Table = toml::from_str(
            "base_url = \"https://x.okta.com\"\napi_token_env = \"QUENCH_TEST_OKTA_CT\"\nrevoke_token = \"client_tokens\"\n",
        )
        .unwrap();
        assert!(build(t).err().unwrap().to_string().contains("client_id"));
        let t: toml::Table = toml::from_str(
            "base_url = \"https://x.okta.com\"\napi_token_env = \"QUENCH_TEST_OKTA_CT\"\nterminate_session = \"everything\"\n",
        )
        .unwrap();
        let e = build(t).err().unwrap().to_string();
        assert!(
            e.contains("everything") && e.contains("universal_logout"),
            "{e}"
        );
    }
}
