//! Google Workspace (Admin SDK Directory API): sign a user out of every web and device session, or revoke their
//! tokens for one OAuth client.
//!
//! In: `terminate_session` / `revoke_token` decisions. Out: by the method configured per action (`revoke_token` /
//! `terminate_session` keys, `sign_out` by default for both):
//! - `sign_out`: `POST {base_url}/admin/directory/v1/users/{userKey}/signOut` with no body; success is 204;
//! - `client_tokens`: `DELETE {base_url}/admin/directory/v1/users/{userKey}/tokens/{clientId}`: the user's tokens
//!   for the OAuth client `client_id` (required with this method).
//!
//! `userKey` is the user's e-mail: the principal id Google's own log vouched for when it is one, else the e-mail an
//! IdP vouched for. Every request carries a bearer token. State: none. Credentials: an access token with the
//! `admin.directory.user.security` scope, minted by your deployment (a service account with domain-wide
//! delegation) into the environment variable named by `access_token_env`.

use super::address;
use super::{
    check, parse_base, parse_target, secret_from_env, url_with, BoxFuture, BuildError, Registered,
    RespondError, Responder, Sample,
};
use crate::decide::{Action, Decision};
use crate::event::Vendor;
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
    /// How `revoke_token` is carried out: `sign_out` or `client_tokens`. Default `"sign_out"`.
    #[serde(default = "default_method")]
    pub revoke_token: Method,
    /// How `terminate_session` is carried out (same choices). Default `"sign_out"`.
    #[serde(default = "default_method")]
    pub terminate_session: Method,
    /// The OAuth client id whose tokens `client_tokens` revokes. Required with `client_tokens`.
    pub client_id: Option<String>,
}

/// How an action is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    SignOut,
    ClientTokens,
}

fn default_method() -> Method {
    Method::SignOut
}

fn default_base() -> String {
    "https://admin.googleapis.com".into()
}
fn default_env() -> String {
    "GOOGLE_ADMIN_ACCESS_TOKEN".into()
}

pub fn build(t: toml::Table) -> Result<Box<dyn Responder>, BuildError> {
    let cfg: GoogleConfig = parse_target(t)?;
    if (cfg.revoke_token == Method::ClientTokens || cfg.terminate_session == Method::ClientTokens)
        && cfg.client_id.is_none()
    {
        return Err(BuildError::new(
            "client_id",
            "",
            "client_tokens needs client_id (the OAuth client whose tokens to revoke)",
        ));
    }
    Ok(Box::new(Google {
        base: parse_base("base_url", &cfg.base_url)?,
        token: secret_from_env("access_token_env", &cfg.access_token_env)?,
        revoke_token: cfg.revoke_token,
        terminate_session: cfg.terminate_session,
        client_id: cfg.client_id,
    }))
}

pub struct Google {
    base: reqwest::Url,
    token: String,
    revoke_token: Method,
    terminate_session: Method,
    client_id: Option<String>,
}

impl Responder for Google {
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
            let user = match address::user(d, VENDOR)? {
                address::User::Email(e) => e,
                address::User::Id(id) if id.contains('@') => id,
                address::User::Id(_) => match address::verified_email(d)? {
                    Some(e) => e,
                    None => {
                        return Err(RespondError::Target(
                            "refused: Google needs an e-mail that Google or an IdP vouched for"
                                .into(),
                        ))
                    }
                },
            };
            let method = match d.action {
                Action::TerminateSession => self.terminate_session,
                _ => self.revoke_token,
            };
            let req = match (method, self.client_id.as_deref()) {
                (Method::ClientTokens, Some(client)) => http.delete(url_with(
                    &self.base,
                    &["admin", "directory", "v1", "users", user, "tokens", client],
                )?),
                _ => http
                    .post(url_with(
                        &self.base,
                        &["admin", "directory", "v1", "users", user, "signOut"],
                    )?)
                    .header("Content-Length", "0"),
            };
            let resp = req.bearer_auth(&self.token).send().await?;
            check(resp).await
        })
    }
}
/// The vendor whose log names the users this target addresses, and confirms its revocations.
const VENDOR: Vendor = Vendor::Google;

/// The registry entry of Google Workspace.
pub const ENTRY: Registered = Registered::new(NAME, build, Some(VENDOR), |base, env| {
    Sample::bearer(
        format!("type = \"{NAME}\"\nbase_url = \"{base}\"\naccess_token_env = \"{env}_GOOGLE\"\n"),
        format!("{env}_GOOGLE"),
        "ya29.googleSecretAccessToken",
    )
});
