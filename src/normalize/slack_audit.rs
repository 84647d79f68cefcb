//! Slack Audit Logs API entries (Enterprise Grid).
//!
//! In: one entry. Out: one event. Principal: `actor.user` (e-mail, id); network: `context.ip_address`,
//! `context.ua`; session: `context.session_id`; the user an admin acted on: `entity.user` (e-mail, else id).
//! `user_login` is a login; `user_logout`, `user_session_invalidated` and admin session resets end sessions;
//! `file_downloaded`, `file_shared` and `file_public_link_created` are exports; `anomaly` entries are kept as
//! `other` with an unknown outcome. State: none.

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "slack_audit";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &["date_create", "action", "actor"];

/// `[normalize.formats.slack_audit]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: SlackConfig = parse_config(NAME, t)?;
    Ok(Box::new(SlackAudit))
}

pub struct SlackAudit;

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    /// Epoch seconds, or the same time rewritten by a pipeline ("2021-06-08 22:16:15", a numeric string).
    #[serde(borrow, default)]
    date_create: super::Loose<'a>,
    #[serde(borrow)]
    action: Text<'a>,
    #[serde(borrow, default)]
    details: Option<Details<'a>>,
    #[serde(borrow, default)]
    actor: Option<Actor<'a>>,
    #[serde(borrow, default)]
    entity: Option<Entity<'a>>,
    #[serde(borrow, default)]
    context: Option<SlackContext<'a>>,
}

#[derive(Deserialize)]
struct Actor<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    user: Option<User<'a>>,
}

#[derive(Deserialize)]
struct User<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    email: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Entity<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    file: Option<Named<'a>>,
    #[serde(borrow, default)]
    app: Option<Named<'a>>,
    #[serde(borrow, default)]
    channel: Option<Named<'a>>,
    /// The user an admin action acted on (`user_session_reset_by_admin`, `user_deactivated` …).
    #[serde(borrow, default)]
    user: Option<User<'a>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct SlackContext<'a> {
    #[serde(borrow, default)]
    ip_address: Option<Text<'a>>,
    #[serde(borrow, default)]
    ua: Option<Text<'a>>,
    #[serde(borrow, default)]
    session_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    location: Option<Named<'a>>,
}

/// `details` of an `anomaly` entry: why Slack flagged the session.
#[derive(Deserialize)]
struct Details<'a> {
    #[serde(borrow, default)]
    reason: Option<Vec<Text<'a>>>,
    /// "England, GB": where Slack placed the request, without coordinates.
    #[serde(borrow, default)]
    location: Option<Text<'a>>,
    #[serde(borrow, default)]
    previous_ip_address: Option<Text<'a>>,
}

fn category(action: &str) -> Category {
    use Category::*;
    match action {
        "user_login" => Login,
        "user_logout" | "user_session_reset_by_admin" | "user_session_invalidated" => SessionEnd,
        "file_downloaded" | "file_public_link_created" | "file_shared" => Export,
        "file_uploaded" => DataWrite,
        "app_installed"
        | "app_scopes_expanded"
        | "app_approved"
        | "bot_token_upgraded"
        | "app_token_preserved" => AdminChange,
        a if a.starts_with("role_") || a.starts_with("user_") || a.starts_with("pref_") => {
            AdminChange
        }
        _ => Other,
    }
}

impl Normalizer for SlackAudit {
    fn authority(&self) -> super::Authority {
        super::Authority::OwnUsers
    }

    fn sniff(&self, p: &Probe) -> bool {
        p.has("date_create") && p.has("action") && p.has("actor")
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let r: Raw<'a> = super::parse_json(NAME, raw)?;
        let cat = category(&r.action);
        let src = SourceInfo {
            family: Family::Saas,
            vendor: crate::event::Vendor::Slack.as_str().into(),
            format: NAME.into(),
        };
        let id = r.id.unwrap_or_else(|| super::fallback_id(ctx, 0));
        let time = r
            .date_create
            .0
            .as_deref()
            .and_then(|t| match t.parse::<i64>() {
                Ok(secs) if secs.abs() < 100_000_000_000 => Some(Ts(secs.saturating_mul(1000))),
                _ => Ts::parse(t),
            })
            .ok_or_else(|| NormalizeError::invalid(NAME, "no parsable date_create"))?;
        let mut ev = SessionEvent::new(src, id, time, cat);
        ev.outcome = if r.action.ends_with("_blocked") {
            Outcome::Failure
        } else if r.action == "anomaly" {
            // Slack's alert about the session, not an action that succeeded
            Outcome::Unknown
        } else {
            Outcome::Success
        };
        if let Some(a) = r.actor {
            ev.principal.kind = match a.kind.as_deref() {
                Some("user") => PrincipalKind::Human,
                Some(_) => PrincipalKind::Service,
                None => PrincipalKind::Unknown,
            };
            if let Some(u) = a.user {
                ev.principal.id = u.id;
                ev.principal.email = u.email;
                ev.principal.display_name = u.name;
            }
        }
        if let Some(c) = r.context {
            ev.network.ip = c.ip_address;
            ev.network.user_agent = c.ua;
            ev.session.session_id = c.session_id;
            ev.resource.app = c.location.and_then(|l| l.name.or(l.id));
        }
        if let Some(e) = r.entity {
            ev.resource.object_type = e.kind;
            let named = e.file.or(e.app).or(e.channel);
            ev.resource.object_id = named.and_then(|n| n.id.or(n.name));
            // the user an admin acted on, by e-mail first (what the Slack target looks users up by)
            if let Some(u) = e.user {
                ev.resource.object_type = Some("user".into());
                ev.resource.object_id = u.email.or(u.id);
            }
        }
        if cat == Category::Export {
            ev.resource.destination = Some("device".into());
        }
        if let Some(d) = r.details.filter(|_| r.action == "anomaly") {
            // Slack's own verdict on the session: what changed ("asn", "ip_address", "tor", "ua" …) is its kind
            let reasons: Vec<&str> = d.reason.iter().flatten().map(|t| t.as_str()).collect();
            ev.risk = Some(Risk {
                level: RiskLevel::Medium,
                kind: Text::from(format!("anomaly:{}", reasons.join(","))),
            });
            ev.network.country = d.location.as_ref().and_then(|l| {
                let c = l.rsplit(',').next().unwrap_or("").trim();
                (!c.is_empty()).then(|| Text::from(c.to_string()))
            });
            ev.network.city = d.location.and_then(|l| {
                l.split_once(',')
                    .map(|(c, _)| Text::from(c.trim().to_string()))
            });
            ev.resource.object_type = Some("previous_ip".into());
            ev.resource.object_id = d.previous_ip_address;
        }
        ev.action = Some(r.action);
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Found by comparing with Elastic's pipeline: Slack's anomaly alert became `success`.
    #[test]
    fn an_anomaly_alert_is_not_a_success() {
        let raw = r#"{"id":"s-2","date_create":1793606400,"action":"anomaly","actor":{"type":"user","user":{"id":"W1","name":"Ann","email":"ann@acme.com"}},"entity":{"type":"user","user":{"id":"W1"}},"context":{"location":{"type":"workspace","id":"T1","name":"Acme"},"ua":"Slack/4.36","ip_address":"198.51.100.9"},"details":{"reason":["asn","ip_address"]}}"#;
        let ev = &crate::normalize::testutil::normalize_one(raw)[0];
        assert_eq!(ev.outcome, Outcome::Unknown);
    }

    use crate::event::*;
    use crate::normalize::testutil::normalize_one;

    #[test]
    fn file_download_with_numeric_session_id() {
        let raw = r#"{"id":"s-1","date_create":1793606400,"action":"file_downloaded","actor":{"type":"user","user":{"id":"W1","name":"Ann","email":"ann@acme.com"}},"entity":{"type":"file","file":{"id":"F9","name":"plan.pdf"}},"context":{"location":{"type":"workspace","id":"T1","name":"Acme"},"ua":"Slack/4.36","ip_address":"198.51.100.9","session_id":913888259765}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::Export);
        assert_eq!(ev.session.session_id.as_deref(), Some("913888259765"));
        assert_eq!(ev.event_time, Ts(1_793_606_400_000));
        assert_eq!(ev.resource.object_id.as_deref(), Some("F9"));
        assert_eq!(ev.principal.email.as_deref(), Some("ann@acme.com"));
    }
}
