//! Okta: clear a user's sessions and OAuth tokens.
//!
//! In: `revoke_token` / `terminate_session` decisions. Out: `DELETE {base_url}/api/v1/users/{userId}/sessions
//! ?oauthTokens=true` with `Authorization: SSWS <token>` (the user is the decision's Okta user id, else its
//! e-mail/login). Success is 204. Credentials: an API token from the environment variable named by
//! `api_token_env`.

use super::{
    check, parse_base, secret_from_env, url_with, user_ref, BoxFuture, RespondError, Responder,
};
use crate::decide::Decision;
use serde::Deserialize;

pub const NAME: &str = "okta";

/// `[[respond.targets]] type = "okta"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// Your org's URL, e.g. `https://example.okta.com`. Required.
    pub base_url: String,
    /// Environment variable holding the SSWS API token. Default `"OKTA_API_TOKEN"`.
    #[serde(default = "default_env")]
    pub api_token_env: String,
}

fn default_env() -> String {
    "OKTA_API_TOKEN".into()
}

pub fn build(t: toml::Table) -> Result<Box<dyn Responder>, String> {
    let cfg: OktaConfig = super::parse_target(t)?;
    let base = parse_base(&cfg.base_url)?;
    let token = secret_from_env(&cfg.api_token_env)?;
    Ok(Box::new(Okta {
        base,
        auth: format!("SSWS {token}"),
    }))
}

pub struct Okta {
    base: reqwest::Url,
    auth: String,
}

impl Responder for Okta {
    fn secrets(&self) -> Vec<&str> {
        vec![self.auth.as_str(), self.auth.trim_start_matches("SSWS ")]
    }

    fn send<'a>(
        &'a self,
        http: &'a reqwest::Client,
        d: &'a Decision,
        _key: &'a str,
    ) -> BoxFuture<'a, Result<u16, RespondError>> {
        Box::pin(async move {
            let user = user_ref(d)?;
            let mut url = url_with(&self.base, &["api", "v1", "users", user, "sessions"])?;
            url.query_pairs_mut().append_pair("oauthTokens", "true");
            let resp = http
                .delete(url)
                .header("Authorization", &self.auth)
                .header("Accept", "application/json")
                .send()
                .await?;
            check(resp).await
        })
    }
}
