//! Google Workspace (Admin SDK Directory API): sign a user out of every web and device session.
//!
//! In: `terminate_session` / `revoke_token` decisions. Out: `POST {base_url}/admin/directory/v1/users/{userKey}/signOut`
//! (the user's primary e-mail as `userKey`), with a bearer token and no body; success is 204. Credentials: an access
//! token with the `admin.directory.user.security` scope, minted by your deployment (a service account with
//! domain-wide delegation) into the environment variable named by `access_token_env`.

use super::{
    check, parse_base, parse_target, secret_from_env, url_with, BoxFuture, RespondError, Responder,
};
use crate::decide::Decision;
use serde::Deserialize;

pub const NAME: &str = "google";

/// `[[respond.targets]] type = "google"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// API root. Default `"https://admin.googleapis.com"`.
    #[serde(default = "default_base")]
    pub base_url: String,
    /// Environment variable with the access token. Default `"GOOGLE_ADMIN_ACCESS_TOKEN"`.
    #[serde(default = "default_env")]
    pub access_token_env: String,
}

fn default_base() -> String {
    "https://admin.googleapis.com".into()
}
fn default_env() -> String {
    "GOOGLE_ADMIN_ACCESS_TOKEN".into()
}

pub fn build(t: toml::Table) -> Result<Box<dyn Responder>, String> {
    let cfg: GoogleConfig = parse_target(t)?;
    Ok(Box::new(Google {
        base: parse_base(&cfg.base_url)?,
        token: secret_from_env(&cfg.access_token_env)?,
    }))
}

pub struct Google {
    base: reqwest::Url,
    token: String,
}

impl Responder for Google {
    fn confirmed_by(&self) -> Option<&'static str> {
        Some("google")
    }

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
            // Google addresses users by primary e-mail (or its own numeric id, which other sources do not carry)
            let user = d
                .principal
                .as_deref()
                .filter(|p| p.contains('@'))
                .ok_or_else(|| {
                    RespondError::Target(
                        "Google needs the user's e-mail; the decision has none".into(),
                    )
                })?;
            let url = url_with(
                &self.base,
                &["admin", "directory", "v1", "users", user, "signOut"],
            )?;
            let resp = http
                .post(url)
                .bearer_auth(&self.token)
                .header("Content-Length", "0")
                .send()
                .await?;
            check(resp).await
        })
    }
}
