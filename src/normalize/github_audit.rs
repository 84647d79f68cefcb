//! GitHub audit log (organization and enterprise; REST API and streaming JSON), including `api.request` events.
//!
//! In: one entry. Out: one event. Principal: `actor` (the login), with its numeric `actor_id` as
//! `directory_id`; token id: `hashed_token` (GitHub's SHA-256 of the token, never the token), else `token_id`
//! (kept as `auth.credential_id` beside a hash); OAuth client: `oauth_application_id`; IP: `actor_ip`;
//! user agent: `user_agent`; country (no coordinates): `actor_location.country_code`. `api.request` (by method)
//! and `git.fetch`/`git.push` are data access,
//! `git.clone`/`repo.download_zip` exports, token and OAuth grants/revocations map to token categories,
//! `user.login`/`user.logout` to login and session end, everything else to `admin_change`. State: none.

use super::{parse_config, ConfigError, Context, Loose, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "github_audit";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &[
    "action",
    "actor",
    "created_at",
    "@timestamp",
    "date_create",
    "eventType",
    "class_uid",
];

/// `[normalize.formats.github_audit]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: GithubConfig = parse_config(NAME, t)?;
    Ok(Box::new(GithubAudit))
}

pub struct GithubAudit;

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    action: Text<'a>,
    #[serde(borrow, default)]
    created_at: Loose<'a>,
    #[serde(borrow, default, rename = "@timestamp")]
    at_timestamp: Loose<'a>,
    #[serde(borrow, default, rename = "_document_id")]
    document_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    actor: Option<Text<'a>>,
    #[serde(default)]
    actor_is_bot: Option<bool>,
    #[serde(borrow, default, alias = "ip_address")]
    actor_ip: Option<Text<'a>>,
    #[serde(borrow, default)]
    hashed_token: Option<Text<'a>>,
    #[serde(borrow, default)]
    token_id: super::Loose<'a>,
    /// The actor's numeric user id, stable across renames of `actor`.
    #[serde(borrow, default)]
    actor_id: super::Loose<'a>,
    #[serde(borrow, default)]
    user_agent: Option<Text<'a>>,
    #[serde(borrow, default)]
    org: Loose<'a>,
    #[serde(borrow, default)]
    repo: Loose<'a>,
    #[serde(borrow, default)]
    route: Option<Text<'a>>,
    #[serde(borrow, default)]
    url_path: Option<Text<'a>>,
    #[serde(borrow, default)]
    request_method: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    status_code: Option<u16>,
    #[serde(borrow, default)]
    oauth_application_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    programmatic_access_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    actor_location: Option<Location<'a>>,
    /// The token's scopes, as GitHub writes them ("repo,read:org").
    #[serde(borrow, default)]
    token_scopes: Option<Text<'a>>,
}

/// `actor_location`: GitHub gives a country code only.
#[derive(Deserialize)]
struct Location<'a> {
    #[serde(borrow, default)]
    country_code: Option<Text<'a>>,
}

fn category(action: &str, method: Option<&str>) -> Category {
    use Category::*;
    match action {
        "api.request" => match method {
            Some("GET" | "HEAD") | None => DataRead,
            Some(_) => DataWrite,
        },
        "git.clone" | "repo.download_zip" => Export,
        "git.fetch" => DataRead,
        "git.push" => DataWrite,
        a if a.starts_with("personal_access_token.")
            || a.starts_with("oauth_access.")
            || a.starts_with("oauth_authorization.") =>
        {
            if a.contains("destroy") || a.contains("revoke") || a.contains("delete") {
                TokenRevoked
            } else {
                TokenIssued
            }
        }
        "user.login" | "user.two_factor_challenge_success" => Login,
        "user.logout" => SessionEnd,
        _ => AdminChange,
    }
}

impl Normalizer for GithubAudit {
    fn authority(&self) -> super::Authority {
        super::Authority::OwnUsers
    }

    fn sniff(&self, p: &Probe) -> bool {
        p.has("action")
            && p.has("actor")
            && (p.has("created_at") || p.has("@timestamp"))
            && !p.has("date_create")
            && !p.has("eventType")
            && !p.has("class_uid")
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let r: Raw<'a> = super::parse_json(NAME, raw)?;
        let time = r
            .at_timestamp
            .0
            .or(r.created_at.0)
            .and_then(|t| super::ms_or_timestamp(&t));
        let time = time
            .ok_or_else(|| NormalizeError::invalid(NAME, "no parsable created_at or @timestamp"))?;
        let cat = category(&r.action, r.request_method.as_deref());
        let src = SourceInfo {
            family: Family::Saas,
            vendor: crate::event::Vendor::GitHub.as_str().into(),
            format: NAME.into(),
        };
        let id = r.document_id.unwrap_or_else(|| super::fallback_id(ctx, 0));
        let mut ev = SessionEvent::new(src, id, time, cat);
        ev.outcome = match r.status_code {
            Some(s) if s >= 400 => Outcome::Failure,
            // a push the branch protection refused
            _ if r.action.ends_with("rejected_ref_update") => Outcome::Failure,
            _ => Outcome::Success,
        };
        ev.principal.kind = if r.actor_is_bot == Some(true)
            || r.programmatic_access_type.as_deref() == Some("GitHub App server-to-server token")
        {
            PrincipalKind::Service
        } else {
            PrincipalKind::Human
        };
        ev.principal.id = r.actor.clone();
        ev.principal.display_name = r.actor;
        ev.principal.directory_id = r.actor_id.non_empty();
        let token_id = r.token_id.non_empty();
        if r.hashed_token.is_some() && token_id.is_some() {
            // the token's own id (what GitHub's token APIs take) beside the hash the requests are keyed by
            ev.auth_mut().credential_id = token_id.clone();
        }
        ev.session.token_id = r.hashed_token.or(token_id);
        ev.session.client_id = r.oauth_application_id;
        ev.network.ip = r.actor_ip;
        ev.network.user_agent = r.user_agent;
        ev.network.country = r.actor_location.and_then(|l| l.country_code);
        let scopes: Vec<Text<'a>> = r
            .token_scopes
            .as_deref()
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(|x| Text::from(x.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        if r.programmatic_access_type.is_some() || !scopes.is_empty() {
            let a = ev.auth_mut();
            a.method = r.programmatic_access_type.clone();
            a.scopes = scopes;
        }
        ev.resource.app = r.org.0;
        ev.resource.object_type = r.repo.0.as_ref().map(|_| Text::Borrowed("repo"));
        ev.resource.object_id = r.repo.0.or(r.route).or(r.url_path);
        if cat == Category::Export {
            ev.resource.destination = Some("git-client".into());
        }
        ev.action = Some(r.action);
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Found by comparing with Elastic's pipeline: a push refused by branch protection became `success`.
    #[test]
    fn a_rejected_ref_update_is_a_failure() {
        let raw = r#"{"actor":"octo","org":"acme","action":"protected_branch.rejected_ref_update","created_at":1793606400000,"repo":"acme/app"}"#;
        let ev = &crate::normalize::testutil::normalize_one(raw)[0];
        assert_eq!(ev.outcome, Outcome::Failure);
    }

    use crate::event::*;
    use crate::normalize::testutil::normalize_one;

    #[test]
    fn api_request_carries_the_hashed_token() {
        let raw = r#"{"@timestamp":1793606400000,"_document_id":"d-1","action":"api.request","actor":"octo","actor_id":11,"actor_ip":"198.51.100.4","created_at":1793606400000,"hashed_token":"E8Fz+2X=","org":"acme","request_method":"GET","route":"/repos/{owner}/{repo}/pulls","status_code":200,"token_id":555,"user_agent":"curl/8"}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::DataRead);
        assert_eq!(ev.session.token_id.as_deref(), Some("E8Fz+2X="));
        assert_eq!(ev.network.ip.as_deref(), Some("198.51.100.4"));
        assert_eq!(ev.principal.id.as_deref(), Some("octo"));
        // issue 13's dropped facts: the numeric actor and token ids
        assert_eq!(ev.principal.directory_id.as_deref(), Some("11"));
        let a = ev.auth.as_deref().expect("auth facts");
        assert_eq!(a.credential_id.as_deref(), Some("555"));
    }

    #[test]
    fn org_change_without_ids_is_an_admin_change() {
        let raw = r#"{"actor":"octo","org":"acme","action":"org.add_member","created_at":1583364382722,"user":"new-user"}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::AdminChange);
        assert_eq!(ev.event_time, Ts(1583364382722));
    }

    /// Issue 13's dropped facts: how a token authenticated and its scopes.
    #[test]
    fn an_api_request_keeps_its_access_type_and_token_scopes() {
        let raw = r#"{"@timestamp":1793606400000,"action":"api.request","actor":"octo","hashed_token":"h=","programmatic_access_type":"OAuth access token","token_scopes":"repo,read:org","request_method":"GET","route":"/repos","created_at":1793606400000}"#;
        let ev = &normalize_one(raw)[0];
        let a = ev.auth.as_deref().expect("auth facts");
        assert_eq!(a.method.as_deref(), Some("OAuth access token"));
        let scopes: Vec<&str> = a.scopes.iter().map(|s| s.as_str()).collect();
        assert_eq!(scopes, ["repo", "read:org"]);
    }
}
