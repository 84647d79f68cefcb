//! GitHub (Enterprise Cloud organizations with SAML SSO): cut a user's tokens off from the organization.
//!
//! In: `revoke_token` / `terminate_session` decisions about a GitHub user (the principal is their login, as
//! GitHub's audit log names them). Out: `GET {base_url}/orgs/{org}/credential-authorizations?login={login}` (100
//! a page, at most ten pages), then `DELETE {base_url}/orgs/{org}/credential-authorizations/{credential_id}` for
//! each of the user's token authorizations (personal access tokens, OAuth app and GitHub app tokens; SSH keys too
//! with `include_ssh_keys`). A token whose SSO authorization is removed can no longer reach the organization's
//! resources until the user authorizes it again through the IdP. An authorization that names another login is
//! never touched, whatever the server answers. State: none.
//!
//! GitHub's token revocation endpoints (`DELETE /applications/{client_id}/token`, `POST /credentials/revoke`)
//! take the raw token, which no audit log carries (only `hashed_token`), so this is the route that works from
//! logs. Credentials: a token of an organization owner (or a GitHub App with organization administration
//! permission) in the environment variable `token_env`.

use super::address;
use super::{
    check, parse_base, parse_target, secret_from_env, status_error, url_with, BoxFuture,
    BuildError, Registered, RespondError, Responder, Sample,
};
use crate::decide::Decision;
use crate::event::Vendor;
use serde::Deserialize;

pub const NAME: &str = "github";

/// `[[respond.targets]] type = "github"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// REST API root. Default `"https://api.github.com"`.
    #[serde(default = "default_base")]
    pub base_url: String,
    /// The organization whose SSO authorizations are removed. Required.
    pub org: String,
    /// Environment variable with the owner's token. Default `"GITHUB_TOKEN"`.
    #[serde(default = "default_env")]
    pub token_env: String,
    /// Also remove the user's SSH key authorizations. Default false.
    #[serde(default)]
    pub include_ssh_keys: bool,
}

fn default_base() -> String {
    "https://api.github.com".into()
}
fn default_env() -> String {
    "GITHUB_TOKEN".into()
}

pub fn build(t: toml::Table) -> Result<Box<dyn Responder>, BuildError> {
    let cfg: GithubConfig = parse_target(t)?;
    if cfg.org.is_empty()
        || !cfg
            .org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(BuildError::new(
            "org",
            cfg.org,
            "allowed: a GitHub organization login (letters, digits, hyphens)",
        ));
    }
    Ok(Box::new(Github {
        base: parse_base("base_url", &cfg.base_url)?,
        org: cfg.org,
        token: secret_from_env("token_env", &cfg.token_env)?,
        include_ssh_keys: cfg.include_ssh_keys,
    }))
}

pub struct Github {
    base: reqwest::Url,
    org: String,
    token: String,
    include_ssh_keys: bool,
}

#[derive(Deserialize)]
struct Authorization {
    login: String,
    credential_id: i64,
    credential_type: String,
}

/// A GitHub login: letters, digits and single hyphens, at most 39 characters.
fn is_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
}

impl Github {
    /// A request with the owner's token and the API version GitHub's description is for.
    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        rb.bearer_auth(&self.token)
            .header("Accept", "application/json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    }
}

impl Responder for Github {
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
            // Only a login from GitHub's own audit log: an e-mail or another vendor's id is not a GitHub login.
            let login = address::vendor_id(d, VENDOR)?
                .filter(|p| is_login(p))
                .ok_or_else(|| {
                    RespondError::Target(
                        "refused: GitHub needs a login from GitHub's own audit log; the decision names none"
                            .into(),
                    )
                })?;
            let mut mine = Vec::new();
            for page in 1..=10u32 {
                let mut url = url_with(
                    &self.base,
                    &["orgs", &self.org, "credential-authorizations"],
                )?;
                url.query_pairs_mut()
                    .append_pair("login", login)
                    .append_pair("per_page", "100")
                    .append_pair("page", &page.to_string());
                let resp = self.authed(http.get(url)).send().await?;
                if !resp.status().is_success() {
                    return Err(status_error(resp).await);
                }
                let list: Vec<Authorization> = resp.json().await.map_err(|e| {
                    RespondError::Transport(format!(
                        "unreadable credential list: {}",
                        e.without_url()
                    ))
                })?;
                let n = list.len();
                for a in list {
                    if !a.login.eq_ignore_ascii_case(login) {
                        tracing::warn!(asked = login, got = %crate::text::escape_control(&a.login), "github: an authorization of another login was listed; left alone");
                    } else if self.include_ssh_keys || a.credential_type != "SSH key" {
                        mine.push(a.credential_id);
                    }
                }
                if n < 100 {
                    break;
                }
            }
            let mut status = 200;
            for id in mine {
                let url = url_with(
                    &self.base,
                    &[
                        "orgs",
                        &self.org,
                        "credential-authorizations",
                        &id.to_string(),
                    ],
                )?;
                let resp = self.authed(http.delete(url)).send().await?;
                status = match check(resp).await {
                    Ok(s) => s,
                    // removed meanwhile: the goal is met
                    Err(RespondError::Status { status: 404, .. }) => 204,
                    Err(e) => return Err(e),
                };
            }
            Ok(status)
        })
    }
}

/// The vendor whose log names the logins this target addresses.
const VENDOR: Vendor = Vendor::GitHub;

/// The registry entry of GitHub (its audit log does not record a removal taking effect in a way Quench reads).
pub const ENTRY: Registered = Registered::new(NAME, build, None, |base, env| {
    Sample::bearer(format!(
            "type = \"{NAME}\"\nbase_url = \"{base}\"\norg = \"acme\"\ntoken_env = \"{env}_GITHUB\"\n"
        ), format!("{env}_GITHUB"), "ghp_githubOrgOwnerSecret0123456789")
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_told_from_e_mails_and_ids() {
        assert!(is_login("octo-cat"));
        assert!(!is_login("octo@example.com"));
        assert!(!is_login("-octo"));
        assert!(!is_login(&"a".repeat(40)));
    }

    #[test]
    fn the_org_is_checked_at_start_up() {
        std::env::set_var("QUENCH_TEST_GH_TOKEN", "ghp_test");
        let t: toml::Table =
            toml::from_str("org = \"acme/../x\"\ntoken_env = \"QUENCH_TEST_GH_TOKEN\"\n").unwrap();
        let e = build(t).err().unwrap().to_string();
        assert!(e.contains("org") && e.contains("acme/../x"), "{e}");
    }
}
