//! Google Workspace Admin SDK Reports activities (`admin#reports#activity`): `login`, `token`, `drive`, `admin`.
//!
//! In: one activity (its `events` is an array in the API, a single object in some exporters). Out: one session
//! event per inner event. Principal: `actor.email`; app: `id.applicationName`; OAuth client from the `client_id`
//! parameter; Drive documents from `doc_id`/`doc_type`. Reports carry an IP but no geo and no session id.
//! Google's own verdicts become `risk`: the login audit's account warnings (`account_disabled_hijacked`
//! compromised; `user_signed_out_due_to_suspicious_session_cookie` and `account_disabled_password_leak` high),
//! about the account in `affected_email_address`, which is then the principal; `risky_sensitive_action_blocked`
//! and a sign-in's `is_suspicious` medium. Blocked suspicious sign-in attempts (`suspicious_login*`) are failed
//! sign-ins of the affected account and `gov_attack_warning` is no verdict: anyone can cause them. State: none.

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::de::IgnoredAny;
use serde::Deserialize;

pub const NAME: &str = "google_workspace";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &["kind", "events", "actor", "id", "eventType"];

/// `[normalize.formats.google_workspace]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GoogleWorkspaceConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: GoogleWorkspaceConfig = parse_config(NAME, t)?;
    Ok(Box::new(GoogleWorkspace {
        hint: super::Needles::new(&["\"admin#reports#activity\""]),
    }))
}

pub struct GoogleWorkspace {
    hint: super::Needles,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw<'a> {
    #[serde(borrow)]
    id: Id<'a>,
    #[serde(borrow, default)]
    actor: Option<Actor<'a>>,
    #[serde(borrow, default)]
    ip_address: Option<Text<'a>>,
    #[serde(borrow, default)]
    events: Option<OneOrMany<Event<'a>>>,
    /// Flattened rows (the BigQuery export, several SIEMs): one activity's `name` and `parameters` at the top.
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    parameters: Option<Vec<Param<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Id<'a> {
    #[serde(borrow)]
    time: Text<'a>,
    #[serde(borrow, default)]
    unique_qualifier: Option<Text<'a>>,
    #[serde(borrow)]
    application_name: Text<'a>,
    #[serde(borrow, default)]
    customer_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Actor<'a> {
    #[serde(borrow, default)]
    caller_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    email: Option<Text<'a>>,
    #[serde(borrow, default)]
    profile_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    name: Text<'a>,
    #[serde(borrow, default)]
    parameters: Vec<Param<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Param<'a> {
    #[serde(borrow)]
    name: Text<'a>,
    #[serde(borrow, default)]
    value: Option<Scalar<'a>>,
    #[serde(default)]
    int_value: Option<Scalar<'a>>,
    #[serde(default, rename = "boolValue")]
    bool_value: Option<bool>,
    #[serde(borrow, default, rename = "multiValue")]
    multi: Option<Vec<Scalar<'a>>>,
}

/// A parameter value: Google sends strings, exporters sometimes numbers or booleans.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar<'a> {
    #[serde(borrow)]
    S(Text<'a>),
    N(f64),
    Other(IgnoredAny),
}

impl<'a> Scalar<'a> {
    fn text(&self) -> Option<Text<'a>> {
        match self {
            Scalar::S(s) => Some(s.clone()),
            _ => None,
        }
    }
    fn num(&self) -> Option<u64> {
        match self {
            Scalar::N(n) if *n >= 0.0 => Some(*n as u64),
            Scalar::S(s) => s.parse().ok(),
            _ => None,
        }
    }
}

fn category(app: &str, name: &str) -> (Category, Outcome) {
    use Category::*;
    let ok = Outcome::Success;
    match (app, name) {
        ("login", "login_success") => (Login, ok),
        ("login", "login_failure") => (Login, Outcome::Failure),
        ("login", "login_challenge" | "login_verification") => (Login, Outcome::Unknown),
        ("login", "logout") => (SessionEnd, ok),
        // a sensitive action Google's risk check let through
        ("login", "risky_sensitive_action_allowed") => (Other, ok),
        ("login", "risky_sensitive_action_blocked") => (Other, Outcome::Failure),
        // sign-in attempts Google blocked as suspicious, and warnings that a government-backed attacker targets
        // the account: anyone can try an account, so these are failed sign-ins (their account is a claim), never a
        // verdict on it
        (
            "login",
            "suspicious_login"
            | "suspicious_login_less_secure_app"
            | "suspicious_programmatic_login"
            | "gov_attack_warning",
        ) => (Login, Outcome::Failure),
        // account warnings that are Google's verdicts on the account (`verdict` gives their levels); Google's own
        // sign-out for a suspicious cookie ended only the suspicious session, so it confirms no revocation and
        // is no `session_end`
        ("login", n) if verdict(app, n).is_some() => (Other, ok),
        ("token", "authorize") => (TokenIssued, ok),
        ("token", "revoke") => (TokenRevoked, ok),
        ("token", "activity") | ("token", "request") => (ApiRequest, ok),
        ("drive", "view" | "preview" | "print") => (DataRead, ok),
        ("drive", "download") => (Export, ok),
        (
            "drive",
            "edit" | "create" | "upload" | "copy" | "rename" | "move" | "delete" | "trash"
            | "untrash",
        ) => (DataWrite, ok),
        ("drive", n) if n.starts_with("change_") => (AdminChange, ok),
        ("admin", _) => (AdminChange, ok),
        _ => (Other, Outcome::Unknown),
    }
}

/// Google's own verdict carried by a login-audit event name (the `account_warning` events and a blocked risky
/// action), as a level and the name kept as its kind.
fn verdict(app: &str, name: &str) -> Option<RiskLevel> {
    if app != "login" {
        return None;
    }
    match name {
        // an account Google disabled as hijacked: confirmed compromise
        "account_disabled_hijacked" => Some(RiskLevel::Compromised),
        // a stolen session cookie (Google already ended the suspicious session; the person's other sessions
        // remain), or a password Google found leaked
        "user_signed_out_due_to_suspicious_session_cookie" | "account_disabled_password_leak" => {
            Some(RiskLevel::High)
        }
        // a sensitive action, in a signed-in session, that Google refused as risky: evidence, not proof
        "risky_sensitive_action_blocked" => Some(RiskLevel::Medium),
        // not verdicts: blocked sign-in attempts (`suspicious_login*`) and warnings that someone targets the account
        // (`gov_attack_warning`) are what an outsider can cause to anyone
        _ => None,
    }
}

impl Normalizer for GoogleWorkspace {
    fn authority(&self) -> super::Authority {
        super::Authority::OwnUsers
    }

    fn hint(&self, raw: &str) -> bool {
        self.hint.all_in(raw)
    }

    fn sniff(&self, p: &Probe) -> bool {
        p.kind.as_deref() == Some("admin#reports#activity")
            || (p.kind.is_none()
                && p.has("events")
                && p.has("actor")
                && p.has("id")
                && !p.has("eventType"))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        _ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let r: Raw<'a> = super::parse_json(NAME, raw)?;
        let time = Ts::parse(&r.id.time).ok_or_else(|| {
            NormalizeError::invalid(
                NAME,
                format!("id.time {:?} is not a timestamp", r.id.time.as_str()),
            )
        })?;
        let events = match (r.events, r.name) {
            (Some(OneOrMany::One(e)), _) => vec![e],
            (Some(OneOrMany::Many(v)), _) => v,
            (None, Some(name)) => vec![Event {
                name,
                parameters: r.parameters.unwrap_or_default(),
            }],
            (None, None) => {
                return Err(NormalizeError::invalid(
                    NAME,
                    "no events array and no flattened activity name",
                ))
            }
        };
        let app = r.id.application_name;
        let qualifier = r.id.unique_qualifier.as_deref().unwrap_or("0").to_string();
        let customer = r.id.customer_id.as_deref().unwrap_or("-").to_string();
        for (i, e) in events.into_iter().enumerate() {
            let (cat, outcome) = category(&app, &e.name);
            // decided by the event's name, never by its parameters: an account warning names the account it is
            // about (whom the verdict rates, or whose sign-in was tried); only a challenge has a challenge status
            let level = verdict(&app, &e.name);
            let about_affected = level.is_some() || e.name.starts_with("suspicious_");
            let challenge = matches!(e.name.as_str(), "login_challenge" | "login_verification");
            let src = SourceInfo {
                family: Family::Saas,
                vendor: crate::event::Vendor::Google.as_str().into(),
                format: NAME.into(),
            };
            let id = Text::from(format!("gws:{customer}:{app}:{qualifier}:{}:{i}", time.0));
            let mut ev = SessionEvent::new(src, id, time, cat);
            ev.outcome = outcome;
            if let Some(level) = level {
                ev.risk = Some(Risk {
                    level,
                    kind: e.name.clone(),
                });
            }
            ev.action = Some(e.name);
            ev.resource.app = Some(app.clone());
            ev.network.ip = r.ip_address.clone();
            if let Some(a) = &r.actor {
                ev.principal.kind = match a.caller_type.as_deref() {
                    Some("USER") => PrincipalKind::Human,
                    Some(_) => PrincipalKind::Service,
                    None => PrincipalKind::Unknown,
                };
                ev.principal.email = a.email.clone();
                ev.principal.id = a.profile_id.clone().or_else(|| a.email.clone());
            }
            for p in &e.parameters {
                let v = p.value.as_ref();
                match p.name.as_str() {
                    "client_id" => ev.session.client_id = v.and_then(Scalar::text),
                    "app_name" if ev.resource.object_id.is_none() && app == "token" => {
                        ev.resource.object_type = Some("oauth_app".into());
                        ev.resource.object_id = v.and_then(Scalar::text);
                    }
                    "doc_id" => ev.resource.object_id = v.and_then(Scalar::text),
                    "login_challenge_status" if challenge => {
                        // "Challenge Passed" / "Challenge Failed" on login_challenge and login_verification
                        // ("Challenge Passed.", "passed" in newer rows)
                        let status = v
                            .and_then(Scalar::text)
                            .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase());
                        match status.as_deref() {
                            Some(s) if s.ends_with("passed") => ev.outcome = Outcome::Success,
                            Some(s) if s.ends_with("failed") => ev.outcome = Outcome::Failure,
                            _ => {}
                        }
                    }
                    "login_type" => ev.auth_mut().login_type = v.and_then(Scalar::text),
                    "login_challenge_method" => {
                        let m = v
                            .and_then(Scalar::text)
                            .or_else(|| p.multi.iter().flatten().find_map(Scalar::text));
                        ev.auth_mut().method = m;
                    }
                    "is_second_factor" if p.bool_value.is_some() => {
                        ev.auth_mut().mfa = p.bool_value;
                    }
                    "scope" => {
                        let scopes: Vec<_> = v
                            .and_then(Scalar::text)
                            .into_iter()
                            .chain(p.multi.iter().flatten().filter_map(Scalar::text))
                            .collect();
                        if !scopes.is_empty() {
                            ev.auth_mut().scopes = scopes;
                        }
                    }
                    "affected_email_address" if about_affected => {
                        if let Some(affected) = v.and_then(Scalar::text).filter(|s| !s.is_empty()) {
                            if ev.principal.email.as_deref() != Some(affected.as_str()) {
                                ev.principal.kind = PrincipalKind::Human;
                                ev.principal.id = Some(affected.clone());
                                ev.principal.email = Some(affected);
                            }
                        }
                    }
                    // Google's own verdict that the sign-in looked suspicious
                    "is_suspicious"
                        if ev.risk.is_none()
                            && (p.bool_value == Some(true)
                                || v.and_then(Scalar::text).as_deref() == Some("true")) =>
                    {
                        ev.risk = Some(Risk {
                            level: RiskLevel::Medium,
                            kind: "is_suspicious".into(),
                        });
                    }
                    "doc_type" => ev.resource.object_type = v.and_then(Scalar::text),
                    "target_user" | "target_domain"
                        if cat == Category::Export || cat == Category::AdminChange =>
                    {
                        ev.resource.destination = v.and_then(Scalar::text)
                    }
                    "num_response_bytes" => {
                        ev.resource.bytes = v.or(p.int_value.as_ref()).and_then(Scalar::num)
                    }
                    _ => {}
                }
            }
            out.push(ev);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Found on a SIEM's export: activities flattened, `name`, `type` and `parameters` at the top of the row.
    #[test]
    fn a_flattened_activity_row_is_read() {
        let raw = r#"{"kind":"admin#reports#activity","id":{"time":"2026-11-02T09:00:00Z","uniqueQualifier":"9","applicationName":"drive","customerId":"1"},"actor":{"callerType":"USER","email":"foo@example.com"},"ipAddress":"198.51.100.7","type":"access","name":"download","parameters":[{"name":"doc_id","value":"doc-1"}]}"#;
        let evs = crate::normalize::testutil::normalize_one(raw);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].category, Category::Export);
        assert_eq!(evs[0].resource.object_id.as_deref(), Some("doc-1"));
    }

    /// Found by comparing with Elastic's pipeline: a passed or failed login challenge became `unknown`.
    #[test]
    fn a_login_challenge_takes_its_outcome_from_the_challenge_status() {
        let row = |status: &str| {
            format!(
                r#"{{"kind":"admin#reports#activity","id":{{"time":"2026-11-02T09:00:00Z","uniqueQualifier":"8","applicationName":"login","customerId":"1"}},"actor":{{"callerType":"USER","email":"foo@example.com"}},"ipAddress":"198.51.100.7","events":[{{"type":"login","name":"login_challenge","parameters":[{{"name":"login_challenge_method","multiValue":["password"]}},{{"name":"login_challenge_status","value":"{status}"}}]}}]}}"#
            )
        };
        let passed = row("Challenge Passed");
        let failed = row("Challenge Failed");
        assert_eq!(
            crate::normalize::testutil::normalize_one(&passed)[0].outcome,
            Outcome::Success
        );
        assert_eq!(
            crate::normalize::testutil::normalize_one(&failed)[0].outcome,
            Outcome::Failure
        );
    }

    use crate::event::*;
    use crate::normalize::testutil::normalize_one;

    #[test]
    fn drive_download_array_of_events_becomes_one_export_each() {
        let raw = r#"{"kind":"admin#reports#activity","id":{"time":"2026-11-02T09:00:00.000Z","uniqueQualifier":"-42","applicationName":"drive","customerId":"C01"},"actor":{"callerType":"USER","email":"bob@example.com","profileId":"1077"},"ipAddress":"98.1.2.3","events":[{"type":"access","name":"download","parameters":[{"name":"doc_id","value":"doc-9"},{"name":"doc_type","value":"spreadsheet"},{"name":"billable","boolValue":true}]},{"type":"access","name":"view","parameters":[{"name":"doc_id","value":"doc-9"}]}]}"#;
        let evs = normalize_one(raw);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].category, Category::Export);
        assert_eq!(evs[1].category, Category::DataRead);
        assert_eq!(evs[0].principal.email.as_deref(), Some("bob@example.com"));
        assert_eq!(evs[0].resource.object_id.as_deref(), Some("doc-9"));
        assert_eq!(evs[0].network.ip.as_deref(), Some("98.1.2.3"));
        assert_ne!(evs[0].event_id, evs[1].event_id);
    }

    #[test]
    fn login_with_single_event_object_and_numeric_ids() {
        let raw = r#"{"kind":"admin#reports#activity","id":{"time":"2026-11-02T09:00:00Z","uniqueQualifier":1,"applicationName":"login","customerId":"1"},"actor":{"callerType":"USER","email":"foo@example.com","profileId":1},"ipAddress":"67.43.156.13","events":{"type":"login","name":"login_success","parameters":[{"name":"login_type","value":"google_password"}]}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::Login, Outcome::Success)
        );
        assert_eq!(ev.principal.id.as_deref(), Some("1"));
    }

    #[test]
    fn token_authorize_records_the_oauth_client() {
        let raw = r#"{"kind":"admin#reports#activity","id":{"time":"2026-11-02T09:00:00Z","uniqueQualifier":"7","applicationName":"token","customerId":"1"},"actor":{"callerType":"USER","email":"foo@example.com"},"events":[{"name":"authorize","parameters":[{"name":"client_id","value":"9234.apps.googleusercontent.com"},{"name":"app_name","value":"Gmail Add-on"},{"name":"num_response_bytes","value":1223}]}]}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::TokenIssued);
        assert_eq!(
            ev.session.client_id.as_deref(),
            Some("9234.apps.googleusercontent.com")
        );
        assert_eq!(ev.resource.bytes, Some(1223));
    }

    /// Issue 13's dropped facts: the login type, the challenge method, a second factor and OAuth scopes.
    #[test]
    fn logins_keep_their_type_method_and_second_factor_and_tokens_their_scopes() {
        let login = r#"{"kind":"admin#reports#activity","id":{"time":"2026-11-02T09:00:00Z","uniqueQualifier":"9","applicationName":"login","customerId":"1"},"actor":{"callerType":"USER","email":"foo@example.com"},"ipAddress":"198.51.100.7","events":[{"type":"login","name":"login_verification","parameters":[{"name":"login_type","value":"google_password"},{"multiValue":["security_key"],"name":"login_challenge_method"},{"name":"login_challenge_status","value":"passed"},{"boolValue":true,"name":"is_second_factor"}]}]}"#;
        let ev = &normalize_one(login)[0];
        let a = ev.auth.as_deref().expect("auth facts");
        assert_eq!(a.login_type.as_deref(), Some("google_password"));
        assert_eq!(a.method.as_deref(), Some("security_key"));
        assert_eq!(a.mfa, Some(true));
        let token = r#"{"kind":"admin#reports#activity","id":{"time":"2026-11-02T09:00:00Z","uniqueQualifier":"10","applicationName":"token","customerId":"1"},"actor":{"callerType":"USER","email":"foo@example.com"},"events":[{"type":"auth","name":"authorize","parameters":[{"name":"client_id","value":"923.apps.googleusercontent.com"},{"name":"scope","multiValue":["https://www.googleapis.com/auth/drive","openid"]}]}]}"#;
        let ev = &normalize_one(token)[0];
        let scopes: Vec<&str> = ev
            .auth
            .as_deref()
            .unwrap()
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(scopes, ["https://www.googleapis.com/auth/drive", "openid"]);
    }

    fn warning(name: &str, actor: &str, affected: &str) -> String {
        format!(
            r#"{{"kind":"admin#reports#activity","id":{{"time":"2026-11-02T09:00:00Z","uniqueQualifier":"11","applicationName":"login","customerId":"1"}},"actor":{{"callerType":"USER","email":"{actor}","profileId":"77"}},"ipAddress":"198.51.100.7","events":[{{"type":"account_warning","name":"{name}","parameters":[{{"name":"affected_email_address","value":"{affected}"}},{{"name":"login_timestamp","intValue":"1793610000000000"}}]}}]}}"#
        )
    }

    /// Issue 13: Google's suspicious-session-cookie sign-out is its verdict that a session cookie was stolen.
    #[test]
    fn a_suspicious_session_cookie_sign_out_is_googles_high_verdict() {
        let raw = warning(
            "user_signed_out_due_to_suspicious_session_cookie",
            "foo@example.com",
            "foo@example.com",
        );
        let ev = &normalize_one(&raw)[0];
        // Google ended only the suspicious session: no revocation of Quench's is confirmed by it
        assert_eq!(ev.category, Category::Other);
        assert!(ev.ended().is_none());
        let risk = ev.risk.as_ref().expect("a verdict");
        assert_eq!(risk.level, RiskLevel::High);
        assert_eq!(
            risk.kind.as_str(),
            "user_signed_out_due_to_suspicious_session_cookie"
        );
        assert_eq!(ev.principal.email.as_deref(), Some("foo@example.com"));
        assert_eq!(ev.principal.id.as_deref(), Some("77"));
    }

    #[test]
    fn account_warnings_carry_their_levels() {
        let level = |name: &str| {
            normalize_one(&warning(name, "foo@example.com", "foo@example.com"))[0]
                .risk
                .as_ref()
                .map(|r| r.level)
        };
        assert_eq!(
            level("account_disabled_hijacked"),
            Some(RiskLevel::Compromised)
        );
        assert_eq!(
            level("account_disabled_password_leak"),
            Some(RiskLevel::High)
        );
        // found by the outside review: what an outsider can cause to anyone's account is no verdict, and (the
        // second review) not vouched either
        for name in [
            "suspicious_login",
            "suspicious_programmatic_login",
            "gov_attack_warning",
        ] {
            assert_eq!(level(name), None, "{name}");
            let raw = warning(name, "foo@example.com", "foo@example.com");
            let ev = &normalize_one(&raw)[0];
            assert!(ev.principal.vouched_by.is_none(), "{name}");
        }
        // a spam suspension says nothing about a session
        assert_eq!(level("account_disabled_spamming"), None);
        assert_eq!(level("login_success"), None);
    }

    /// The verdict is about the account the warning names; rating the actor that reported it would aim a
    /// response at the wrong person.
    #[test]
    fn an_account_warning_rates_the_affected_account_not_the_actor_it_was_logged_under() {
        let raw = warning(
            "account_disabled_hijacked",
            "reporter@example.com",
            "victim@example.com",
        );
        let ev = &normalize_one(&raw)[0];
        assert_eq!(ev.principal.email.as_deref(), Some("victim@example.com"));
        assert_eq!(ev.principal.id.as_deref(), Some("victim@example.com"));
        // without a verdict the address is only a parameter
        let raw = warning(
            "account_disabled_generic",
            "reporter@example.com",
            "victim@example.com",
        );
        let ev = &normalize_one(&raw)[0];
        assert_eq!(ev.principal.email.as_deref(), Some("reporter@example.com"));
    }

    /// Found by the outside review: a sign-in attempt Google blocked is someone trying the account, which anyone
    /// can do; read as a failed sign-in, its account is a claim and no verdict is attached.
    #[test]
    fn a_blocked_suspicious_login_is_a_failed_sign_in_of_the_affected_account() {
        let raw = warning("suspicious_login", "it@example.com", "ceo@example.com");
        let ev = &normalize_one(&raw)[0];
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::Login, Outcome::Failure)
        );
        assert!(ev.risk.is_none());
        assert_eq!(ev.principal.email.as_deref(), Some("ceo@example.com"));
        assert!(ev.principal.vouched_by.is_none());
    }

    /// Found by the outside review: the new verdict arm shadowed the blocked action's failure.
    #[test]
    fn a_blocked_risky_action_stays_a_failure_with_its_verdict() {
        let raw = warning(
            "risky_sensitive_action_blocked",
            "foo@example.com",
            "foo@example.com",
        );
        let ev = &normalize_one(&raw)[0];
        assert_eq!(ev.outcome, Outcome::Failure);
        assert_eq!(ev.risk.as_ref().map(|r| r.level), Some(RiskLevel::Medium));
    }

    /// Found by the second outside review: a parameter must not turn a blocked attempt into a success (which would
    /// vouch for its account), nor move the principal of an event that is no account warning.
    #[test]
    fn parameters_do_not_decide_what_the_event_name_decides() {
        let raw = r#"{"kind":"admin#reports#activity","id":{"time":"2026-11-02T09:00:00Z","uniqueQualifier":"12","applicationName":"login","customerId":"1"},"actor":{"callerType":"USER","email":"it@example.com"},"ipAddress":"198.51.100.7","events":[{"type":"account_warning","name":"suspicious_login","parameters":[{"name":"login_challenge_status","value":"Challenge Passed"},{"name":"affected_email_address","value":"ceo@example.com"}]}]}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.outcome, Outcome::Failure);
        assert!(ev.principal.vouched_by.is_none());
        let raw = r#"{"kind":"admin#reports#activity","id":{"time":"2026-11-02T09:00:00Z","uniqueQualifier":"13","applicationName":"login","customerId":"1"},"actor":{"callerType":"USER","email":"it@example.com"},"ipAddress":"198.51.100.7","events":[{"type":"login","name":"login_success","parameters":[{"name":"is_suspicious","boolValue":true},{"name":"affected_email_address","value":"ceo@example.com"}]}]}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.principal.email.as_deref(), Some("it@example.com"));
    }
}
