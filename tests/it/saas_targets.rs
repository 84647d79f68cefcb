//! Salesforce and Slack paths that no published spec covers, against local servers that check each request the
//! way the vendor documents it (and answer 4xx otherwise):
//! - Salesforce (no OpenAPI exists; see its documented REST query and sObject delete): the AuthSession query,
//!   its SOQL, and one DELETE per session; a forged login must not widen the query.
//! - Slack: finding the user by e-mail with the token in the Authorization header (never in the URL), and
//!   Slack's HTTP 200 `{"ok": false}` refusals.

#![allow(clippy::unwrap_used)]

use crate::support as common;

use quench::decide::{Action, Decision};
use quench::event::PrincipalKind;
use quench::lab::stub::Received;
use quench::respond::{build_targets, Dispatcher, RespondConfig};
use std::sync::{Arc, Mutex};

type Log = Arc<Mutex<Vec<Received>>>;

/// Serve with `answer(request) -> (status, JSON body)`; the log keeps each request with the status it got.
async fn server(answer: fn(&Received) -> (u16, String)) -> (std::net::SocketAddr, Log) {
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let lg = log.clone();
    let addr = common::serve(move |r, _| {
        let (status, body) = answer(r);
        let mut r = r.clone();
        r.status = status;
        lg.lock().unwrap().push(r);
        common::Reply::json(format!("{status} X"), body)
    })
    .await
    .addr;
    (addr, log)
}

fn query_param(target: &str, name: &str) -> Option<String> {
    let u = reqwest::Url::parse(&format!("http://x{target}")).unwrap();
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.to_string())
}

fn decision(action: Action, principal: &str, principal_id: Option<&str>) -> Decision {
    Decision {
        decision_id: "5".repeat(32),
        decided_at: quench::clock::WallTime::now().as_ts(),
        event_time: quench::clock::WallTime::now().as_ts(),
        action,
        principal: Some(principal.into()),
        principal_id: principal_id.map(String::from),
        principal_kind: PrincipalKind::Human,
        score: 0.95,
        trust: common::vouched(principal_id),
        ..Default::default()
    }
}

async fn deliver(toml_text: &str, name: &str, d: &Decision) -> quench::respond::Delivery {
    let cfg: RespondConfig = toml::from_str(toml_text).unwrap();
    let targets = build_targets(&cfg).unwrap();
    let disp = Dispatcher::new(cfg, targets, None).unwrap();
    disp.deliver(name, d, quench::clock::WallTime::now()).await
}

/// Salesforce REST as documented: a bearer token on every call; `GET /services/data/vXX.X/query?q=SOQL`;
/// `DELETE /services/data/vXX.X/sobjects/AuthSession/{Id}` → 204.
fn salesforce(r: &Received) -> (u16, String) {
    if r.header("authorization") != Some("Bearer 00Dxx0000001gPL!AR8AQJXg") {
        return (401, r#"[{"errorCode":"INVALID_SESSION_ID"}]"#.into());
    }
    let path = r.target.split('?').next().unwrap();
    match (r.method.as_str(), path) {
        ("GET", "/services/data/v60.0/query") => {
            let q = query_param(&r.target, "q").unwrap_or_default();
            if q == "SELECT Id FROM AuthSession WHERE Users.Username = 'alice@example.com'" {
                (200, r#"{"totalSize":2,"done":true,"records":[{"attributes":{"type":"AuthSession"},"Id":"0Ak000000000001"},{"attributes":{"type":"AuthSession"},"Id":"0Ak000000000002"}]}"#.into())
            } else if q == "SELECT Id FROM AuthSession WHERE Users.Username = 'x\\' OR Username != \\'@example.com'" {
                // the forged login, escaped: one string literal that matches no user
                (200, r#"{"totalSize":0,"done":true,"records":[]}"#.into())
            } else {
                (400, format!(r#"[{{"errorCode":"MALFORMED_QUERY","message":{q:?}}}]"#))
            }
        }
        ("DELETE", p) if p.starts_with("/services/data/v60.0/sobjects/AuthSession/0Ak") => {
            (204, String::new())
        }
        _ => (404, r#"[{"errorCode":"NOT_FOUND"}]"#.into()),
    }
}

#[tokio::test]
async fn salesforce_deletes_each_of_the_users_auth_sessions() {
    let (addr, log) = server(salesforce).await;
    std::env::set_var("QUENCH_TEST_SF_TOKEN", "00Dxx0000001gPL!AR8AQJXg");
    let toml = format!("enforce = true\n[[targets]]\ntype = \"salesforce\"\ninstance_url = \"http://{addr}\"\naccess_token_env = \"QUENCH_TEST_SF_TOKEN\"\n");
    let r = deliver(
        &toml,
        "salesforce",
        &decision(
            Action::TerminateSession,
            "alice@example.com",
            Some("00ualice"),
        ),
    )
    .await;
    assert_eq!(r.result, Ok(204), "{r:?}");
    let log = log.lock().unwrap();
    let calls: Vec<(String, u16)> = log
        .iter()
        .map(|r| {
            (
                format!("{} {}", r.method, r.target.split('?').next().unwrap()),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            ("GET /services/data/v60.0/query".to_string(), 200),
            (
                "DELETE /services/data/v60.0/sobjects/AuthSession/0Ak000000000001".to_string(),
                204
            ),
            (
                "DELETE /services/data/v60.0/sobjects/AuthSession/0Ak000000000002".to_string(),
                204
            ),
        ]
    );
}

#[tokio::test]
async fn a_forged_salesforce_login_cannot_widen_the_session_query() {
    let (addr, log) = server(salesforce).await;
    std::env::set_var("QUENCH_TEST_SF_TOKEN", "00Dxx0000001gPL!AR8AQJXg");
    let toml = format!("enforce = true\n[[targets]]\ntype = \"salesforce\"\ninstance_url = \"http://{addr}\"\naccess_token_env = \"QUENCH_TEST_SF_TOKEN\"\n");
    let forged = "x' OR Username != '@example.com";
    let r = deliver(
        &toml,
        "salesforce",
        &decision(Action::TerminateSession, forged, None),
    )
    .await;
    assert_eq!(r.result, Ok(200), "{r:?}");
    // one query that matched nobody, and no session deleted
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, 200);
}

/// Slack as documented: `Authorization: Bearer`; users.lookupByEmail by GET; HTTP 200 with `ok` in the body.
fn slack(r: &Received) -> (u16, String) {
    if r.header("authorization") != Some("Bearer xoxp-test-0123456789") {
        return (200, r#"{"ok":false,"error":"not_authed"}"#.into());
    }
    if r.target.contains("xoxp-") {
        return (400, r#"{"ok":false,"error":"token in URL"}"#.into());
    }
    let path = r.target.split('?').next().unwrap();
    let body = String::from_utf8_lossy(&r.body).to_string();
    match (r.method.as_str(), path) {
        ("GET", "/users.lookupByEmail") => match query_param(&r.target, "email").as_deref() {
            Some("alice@example.com") => (
                200,
                r#"{"ok":true,"user":{"id":"W0ALICE01","name":"alice"}}"#.into(),
            ),
            _ => (200, r#"{"ok":false,"error":"users_not_found"}"#.into()),
        },
        ("POST", "/admin.users.session.reset") if body == "user_id=W0ALICE01" => {
            (200, r#"{"ok":true}"#.into())
        }
        ("POST", "/admin.users.session.reset") => {
            (200, r#"{"ok":false,"error":"user_not_found"}"#.into())
        }
        _ => (404, r#"{"ok":false,"error":"unknown_method"}"#.into()),
    }
}

#[tokio::test]
async fn slack_finds_the_user_by_email_and_resets_their_sessions() {
    let (addr, log) = server(slack).await;
    std::env::set_var("QUENCH_TEST_SLACK_TOKEN2", "xoxp-test-0123456789");
    let toml = format!("enforce = true\n[[targets]]\ntype = \"slack\"\nbase_url = \"http://{addr}\"\ntoken_env = \"QUENCH_TEST_SLACK_TOKEN2\"\n");
    // an Okta user id is not a Slack id: the user is looked up by e-mail
    let r = deliver(
        &toml,
        "slack",
        &decision(
            Action::TerminateSession,
            "alice@example.com",
            Some("00ualice"),
        ),
    )
    .await;
    assert_eq!(r.result, Ok(200), "{r:?}");
    assert_eq!(log.lock().unwrap().len(), 2);

    // Slack refuses with HTTP 200 and ok=false: a failure no retry fixes, and it is not retried
    let r = deliver(
        &toml,
        "slack",
        &decision(Action::TerminateSession, "mallory@example.com", None),
    )
    .await;
    let e = r.result.clone().unwrap_err();
    assert!(e.contains("users_not_found"), "{e}");
    assert!(!r.retryable);
    assert_eq!(r.attempts, 1);
}

/// GitHub as documented: the org's credential authorizations, filtered by `login`; DELETE by credential id.
/// This server ignores the `login` filter, as a misbehaving proxy might.
fn github(r: &Received) -> (u16, String) {
    if r.header("authorization") != Some("Bearer ghp_testOwner0123456789") {
        return (401, r#"{"message":"Bad credentials"}"#.into());
    }
    let path = r.target.split('?').next().unwrap();
    match (r.method.as_str(), path) {
        ("GET", "/orgs/acme/credential-authorizations") => (
            200,
            r#"[{"login":"octo","credential_id":1,"credential_type":"personal access token"},
                {"login":"mallory","credential_id":2,"credential_type":"personal access token"},
                {"login":"Octo","credential_id":3,"credential_type":"OAuth app token"},
                {"login":"octo","credential_id":4,"credential_type":"SSH key"}]"#
                .into(),
        ),
        ("DELETE", p) if p.starts_with("/orgs/acme/credential-authorizations/") => {
            (204, String::new())
        }
        _ => (404, r#"{"message":"Not Found"}"#.into()),
    }
}

#[tokio::test]
async fn github_removes_only_the_users_own_token_authorizations() {
    let (addr, log) = server(github).await;
    std::env::set_var("QUENCH_TEST_GH_OWNER", "ghp_testOwner0123456789");
    let toml = format!("enforce = true\n[[targets]]\ntype = \"github\"\nbase_url = \"http://{addr}\"\norg = \"acme\"\ntoken_env = \"QUENCH_TEST_GH_OWNER\"\n");
    let r = deliver(
        &toml,
        "github",
        &decision(Action::RevokeToken, "octo", Some("octo")),
    )
    .await;
    assert_eq!(r.result, Ok(204), "{r:?}");
    let log = log.lock().unwrap();
    assert_eq!(
        query_param(&log[0].target, "login").as_deref(),
        Some("octo")
    );
    let deleted: Vec<&str> = log
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.target.as_str())
        .collect();
    // octo's token and OAuth app token; not mallory's, not the SSH key
    assert_eq!(
        deleted,
        [
            "/orgs/acme/credential-authorizations/1",
            "/orgs/acme/credential-authorizations/3"
        ]
    );
}
