//! Salesforce: end a user's Salesforce sessions by deleting their `AuthSession` records.
//!
//! In: `terminate_session` / `revoke_token` decisions. Out: `GET {instance_url}/services/data/{api_version}/query
//! ?q=SELECT Id FROM AuthSession WHERE …` (by the decision's Salesforce user id `005…`, else by `Users.Username`,
//! which is the e-mail-shaped login), then `DELETE …/sobjects/AuthSession/{Id}` for each session found (204 each).
//! Deleting a session logs it out of the UI and the API. No session found is success with nothing to do.
//! State: none.
//!
//! Quench never holds a user's raw OAuth token (audit logs do not carry one), so the documented
//! `POST /services/oauth2/revoke` form (`token=…`) has nothing to send; session deletion is the route that works
//! from logs. Values placed in SOQL are escaped, so a forged principal cannot widen the query.
//! Credentials: an access token of an integration user with "Manage Users", minted by your deployment (JWT
//! bearer flow) into the environment variable `access_token_env`.

use super::address;
use super::{
    check, parse_base, parse_target, secret_from_env, status_error, url_with, BoxFuture,
    BuildError, Registered, RespondError, Responder, Sample,
};
use crate::decide::Decision;
use crate::event::Vendor;
use serde::Deserialize;

pub const NAME: &str = "salesforce";

/// `[[respond.targets]] type = "salesforce"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    /// Your org's My Domain URL, e.g. `https://acme.my.salesforce.com`. Required.
    pub instance_url: String,
    /// REST API version. Default `"v60.0"`.
    #[serde(default = "default_version")]
    pub api_version: String,
    /// Environment variable with the access token. Default `"SALESFORCE_ACCESS_TOKEN"`.
    #[serde(default = "default_env")]
    pub access_token_env: String,
}

fn default_version() -> String {
    "v60.0".into()
}
fn default_env() -> String {
    "SALESFORCE_ACCESS_TOKEN".into()
}

pub fn build(t: toml::Table) -> Result<Box<dyn Responder>, BuildError> {
    let cfg: SalesforceConfig = parse_target(t)?;
    let v = cfg.api_version.trim_start_matches('v');
    if v.split_once('.').is_none_or(|(a, b)| {
        a.is_empty() || b.is_empty() || !a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
    }) {
        return Err(BuildError::new(
            "api_version",
            cfg.api_version,
            "allowed: a REST API version such as \"v60.0\"",
        ));
    }
    Ok(Box::new(Salesforce {
        base: parse_base("instance_url", &cfg.instance_url)?,
        version: format!("v{v}"),
        token: secret_from_env("access_token_env", &cfg.access_token_env)?,
    }))
}

pub struct Salesforce {
    base: reqwest::Url,
    version: String,
    token: String,
}

/// A SOQL string literal's content: quotes, backslashes and control characters escaped.
pub fn soql_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Salesforce record ids of users: 15 or 18 alphanumerics starting `005`.
fn is_user_id(s: &str) -> bool {
    (s.len() == 15 || s.len() == 18)
        && s.starts_with("005")
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[derive(Deserialize)]
struct QueryReply {
    records: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Record {
    id: String,
}

impl Salesforce {
    /// The SOQL that finds the decision's user's sessions.
    fn soql(d: &Decision) -> Result<String, RespondError> {
        if let Some(id) = address::vendor_id(d, VENDOR)?.filter(|i| is_user_id(i)) {
            return Ok(format!("SELECT Id FROM AuthSession WHERE UsersId = '{id}'"));
        }
        let login = address::verified_email(d)?.ok_or_else(|| {
            RespondError::Target(
                "refused: Salesforce needs a user id from Salesforce's own log or an IdP-verified login".into(),
            )
        })?;
        Ok(format!(
            "SELECT Id FROM AuthSession WHERE Users.Username = '{}'",
            soql_escape(login)
        ))
    }
}

impl Responder for Salesforce {
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
            let mut url = url_with(&self.base, &["services", "data", &self.version, "query"])?;
            url.query_pairs_mut().append_pair("q", &Self::soql(d)?);
            let resp = http
                .get(url)
                .bearer_auth(&self.token)
                .header("Accept", "application/json")
                .send()
                .await?;
            if !resp.status().is_success() {
                return Err(status_error(resp).await);
            }
            let status = resp.status().as_u16();
            let found: QueryReply = resp.json().await.map_err(|e| {
                RespondError::Transport(format!("unreadable query reply: {}", e.without_url()))
            })?;
            if found.records.is_empty() {
                tracing::info!(decision = %d.decision_id, "salesforce: the user has no session to end");
                return Ok(status);
            }
            let mut last = status;
            for r in &found.records {
                let url = url_with(
                    &self.base,
                    &[
                        "services",
                        "data",
                        &self.version,
                        "sobjects",
                        "AuthSession",
                        &r.id,
                    ],
                )?;
                let resp = http.delete(url).bearer_auth(&self.token).send().await?;
                last = match check(resp).await {
                    Ok(s) => s,
                    // ended meanwhile (logged out, expired): the goal is met
                    Err(RespondError::Status { status: 404, .. }) => 404,
                    Err(e) => return Err(e),
                };
            }
            Ok(if last == 404 { 204 } else { last })
        })
    }
}

/// The vendor whose log names the users this target addresses, and confirms its revocations.
const VENDOR: Vendor = Vendor::Salesforce;

/// The registry entry of Salesforce.
pub const ENTRY: Registered = Registered::new(NAME, build, Some(VENDOR), |base, env| {
    Sample::bearer(
        format!("type = \"{NAME}\"\ninstance_url = \"{base}\"\naccess_token_env = \"{env}_SF\"\n"),
        format!("{env}_SF"),
        "00Dxx0000001gPL!SalesforceSecret",
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_login_cannot_widen_the_soql() {
        let e = soql_escape("x' OR Id != '");
        assert_eq!(e, "x\\' OR Id != \\'");
        assert_eq!(soql_escape("a\\b\nc"), "a\\\\b\\nc");
    }

    #[test]
    fn user_ids_are_recognised() {
        assert!(is_user_id("005A0000001abcD"));
        assert!(is_user_id("005A0000001abcDEFG"));
        assert!(!is_user_id("00ualice"));
        assert!(!is_user_id("005' OR '1'='1"));
    }

    #[test]
    fn the_api_version_is_checked_at_start_up() {
        std::env::set_var("QUENCH_TEST_SF_TOKEN", "00Dxx!token");
        let t: toml::Table = toml::from_str(
            "instance_url = \"https://acme.my.salesforce.com\"\napi_version = \"latest\"\naccess_token_env = \"QUENCH_TEST_SF_TOKEN\"\n",
        )
        .unwrap();
        let e = build(t).err().unwrap().to_string();
        assert!(e.contains("api_version") && e.contains("v60.0"), "{e}");
    }
}
