//! The revocation adapters' requests checked against the vendors' published API specs, served by a validating
//! mock (`../shared/tools/spec-mock`, Stoplight Prism): a request that breaks the spec gets a 4xx, so a passing
//! dispatch means method, path, query, headers, security and body matched. Each test also sends one request that
//! breaks the spec, to show the server really rejects such requests.
//! Runs when `../shared/tools/spec-mock` exists beside the checkout (as in CI); says so on stderr otherwise.

#![allow(clippy::unwrap_used)]

use crate::support as common;

use common::{shared, spec_mock, spec_mock_file};
use quench::decide::{Action, Decision, FindingRecord};
use quench::event::{PrincipalKind, Ts};
use quench::respond::{build_targets, Dispatcher, RespondConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn decision(action: Action, principal: &str, principal_id: &str) -> Decision {
    Decision {
        decision_id: "0123456789abcdef0123456789abcdef".into(),
        decided_at: quench::clock::WallTime::now().as_ts(),
        event_time: Ts(1_793_577_600_000),
        action,
        principal: Some(principal.into()),
        principal_id: Some(principal_id.into()),
        principal_kind: PrincipalKind::Human,
        session_id: Some("102aliceS3ss".into()),
        score: 0.95,
        findings: vec![FindingRecord {
            detector: "session_hijack".into(),
            score: 0.95,
            reason: "test".into(),
            source: None,
            authoritative: true,
        }],
        evidence: vec!["e1".into()],
        trust: common::vouched(Some(principal_id)),
        ..Default::default()
    }
}

async fn dispatch_one(targets_toml: &str, d: Decision) -> Result<u16, String> {
    let cfg: RespondConfig = toml::from_str(targets_toml).unwrap();
    let cfg = RespondConfig {
        max_attempts: 1,
        ..cfg
    };
    let targets = build_targets(&cfg).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let disp = Dispatcher::new(cfg, targets, Some(tx)).unwrap();
    disp.dispatch(std::sync::Arc::new(d));
    disp.drain().await;
    drop(disp);
    let deliveries: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    deliveries[0].result.clone()
}

#[tokio::test]
async fn okta_session_clear_matches_the_okta_management_spec() {
    let Some(shared) = shared() else {
        return common::skip("../shared/tools/spec-mock is not beside this checkout");
    };
    let mock = spec_mock(&shared, "okta/okta-management-minimal.yaml", &[]);
    std::env::set_var("QUENCH_TEST_OKTA_TOKEN", "00abcdefghijklmnopqrstuvwxyz");
    let toml = format!("enforce = true\n[[targets]]\ntype = \"okta\"\nbase_url = \"{}\"\napi_token_env = \"QUENCH_TEST_OKTA_TOKEN\"\n", mock.via);
    let got = dispatch_one(
        &toml,
        decision(Action::TerminateSession, "alice@example.com", "00ualice"),
    )
    .await;
    assert_eq!(got, Ok(204));
    assert_eq!(
        mock.take(),
        ["DELETE /api/v1/users/00ualice/sessions?oauthTokens=true"]
    );
    // one session only, and one OAuth client's tokens only
    let modes = format!(
        "{toml}revoke_token = \"session\"\nterminate_session = \"client_tokens\"\nclient_id = \"0oaagentplatform\"\n"
    );
    let d = decision(Action::RevokeToken, "alice@example.com", "00ualice");
    assert_eq!(dispatch_one(&modes, d).await, Ok(204));
    assert_eq!(mock.take(), ["DELETE /api/v1/sessions/102aliceS3ss"]);
    let d = decision(Action::TerminateSession, "alice@example.com", "00ualice");
    assert_eq!(dispatch_one(&modes, d).await, Ok(204));
    assert_eq!(
        mock.take(),
        ["DELETE /api/v1/users/00ualice/clients/0oaagentplatform/tokens"]
    );

    // control: the same call without credentials breaks the spec's security requirement
    let r = reqwest::Client::new()
        .delete(format!(
            "{}/api/v1/users/00ualice/sessions?oauthTokens=true",
            mock.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn graph_revoke_sign_in_sessions_matches_the_graph_spec() {
    let Some(shared) = shared() else {
        return common::skip("../shared/tools/spec-mock is not beside this checkout");
    };
    let mock = spec_mock(
        &shared,
        "microsoft_graph/v1.0-Users.Actions.yml",
        &["/users/{user-id}/microsoft.graph.revokeSignInSessions"],
    );
    std::env::set_var("QUENCH_TEST_GRAPH_TOKEN", "eyJ0eXAiOiJKV1QifQ.test.token");
    let toml = format!(
        "enforce = true\n[[targets]]\ntype = \"graph\"\nbase_url = \"{}\"\nqualified_action_name = true\naccess_token_env = \"QUENCH_TEST_GRAPH_TOKEN\"\n",
        mock.via
    );
    let got = dispatch_one(
        &toml,
        decision(Action::RevokeToken, "alice@example.com", "00ualice"),
    )
    .await;
    assert_eq!(got, Ok(200));
    // the user by the IdP-verified UPN (the object id would come only from Entra's own log)
    assert_eq!(
        mock.take(),
        ["POST /users/alice@example.com/microsoft.graph.revokeSignInSessions"]
    );

    // control: a JSON body the action does not take is refused
    let r = reqwest::Client::new()
        .post(format!(
            "{}/users/alice%40example.com/microsoft.graph.revokeSignInSessions",
            mock.url
        ))
        .bearer_auth("x")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
}

/// A server that checks requests against a Google API discovery document (the form Google publishes its Admin
/// SDK in, which Prism does not read): method and path template must match a method of the document, a bearer
/// token must be present, and a body only where the method takes one. Answers 204, or 4xx with the reason.
async fn discovery_server(
    doc: serde_json::Value,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<(u16, String)>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    fn methods(v: &serde_json::Value, out: &mut Vec<(String, String, bool)>) {
        if let Some(ms) = v.get("methods").and_then(|m| m.as_object()) {
            for m in ms.values() {
                out.push((
                    m["httpMethod"].as_str().unwrap_or("").to_string(),
                    m["path"].as_str().unwrap_or("").to_string(),
                    m.get("request").is_some(),
                ));
            }
        }
        if let Some(rs) = v.get("resources").and_then(|r| r.as_object()) {
            rs.values().for_each(|r| methods(r, out));
        }
    }
    let mut all = Vec::new();
    methods(&doc, &mut all);
    let prefix = doc["servicePath"].as_str().unwrap_or("").to_string();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = vec![0u8; 16384];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let (head, body) = req.split_once("\r\n\r\n").unwrap_or((&req, ""));
            let mut first = head.lines().next().unwrap_or("").split(' ');
            let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
            let path = target
                .split('?')
                .next()
                .unwrap_or("")
                .trim_start_matches('/');
            let path = path.strip_prefix(&prefix).unwrap_or(path);
            let segs: Vec<&str> = path.split('/').collect();
            let found = all.iter().find(|(m, p, _)| {
                let t: Vec<&str> = p.split('/').collect();
                m == method
                    && t.len() == segs.len()
                    && t.iter()
                        .zip(&segs)
                        .all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b)
            });
            let bearer = head
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("authorization: bearer "));
            let (status, why) = match found {
                None => (
                    404,
                    format!("{method} {path} is not a method of the discovery document"),
                ),
                Some(_) if !bearer => (401, "no bearer token".to_string()),
                Some((_, _, false)) if !body.is_empty() => {
                    (400, "this method takes no request body".to_string())
                }
                Some((_, p, _)) => (204, p.clone()),
            };
            log.lock().unwrap().push((status, why.clone()));
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                if status == 204 { 0 } else { why.len() },
                if status == 204 { "" } else { &why }
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn google_sign_out_matches_the_admin_directory_discovery_document() {
    let Some(shared) = shared() else {
        return common::skip("../shared is not beside this checkout");
    };
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            shared.join("data/apis/google_admin/admin-directory_v1.discovery.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (addr, seen) = discovery_server(doc).await;
    std::env::set_var("QUENCH_TEST_GOOGLE_TOKEN", "ya29.test-access-token");
    let toml = format!("enforce = true\n[[targets]]\ntype = \"google\"\nbase_url = \"http://{addr}\"\naccess_token_env = \"QUENCH_TEST_GOOGLE_TOKEN\"\n");
    let got = dispatch_one(
        &toml,
        decision(Action::TerminateSession, "alice@example.com", "00ualice"),
    )
    .await;
    assert_eq!(got, Ok(204), "{:?}", seen.lock().unwrap());
    assert_eq!(
        seen.lock().unwrap()[0].1,
        "admin/directory/v1/users/{userKey}/signOut"
    );
    // revoke_token as one OAuth client's tokens: users.tokens.delete
    let tokens = format!("{toml}revoke_token = \"client_tokens\"\nclient_id = \"agent-platform.apps.googleusercontent.com\"\n");
    let got = dispatch_one(
        &tokens,
        decision(Action::RevokeToken, "alice@example.com", "00ualice"),
    )
    .await;
    assert_eq!(got, Ok(204), "{:?}", seen.lock().unwrap());
    assert_eq!(
        seen.lock().unwrap()[1].1,
        "admin/directory/v1/users/{userKey}/tokens/{clientId}"
    );

    // control: a path the document does not have is refused
    let r = reqwest::Client::new()
        .post(format!(
            "http://{addr}/admin/directory/v1/users/alice/logout"
        ))
        .bearer_auth("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn slack_session_reset_and_invalidate_match_the_slack_web_api_spec() {
    let Some(shared) = shared() else {
        return common::skip("../shared/tools/spec-mock is not beside this checkout");
    };
    let mock = spec_mock(
        &shared,
        "slack/slack_web_openapi_v2.json",
        &["/admin.users.session"],
    );
    std::env::set_var("QUENCH_TEST_SLACK_TOKEN", "xoxp-test-admin-token-0123");
    let toml = format!(
        "enforce = true\n[[targets]]\ntype = \"slack\"\nbase_url = \"{}\"\ntoken_env = \"QUENCH_TEST_SLACK_TOKEN\"\nteam_id = \"T012AB3C4\"\n",
        mock.via
    );
    // terminate_session of a user known by Slack id: admin.users.session.reset
    let mut d = decision(Action::TerminateSession, "alice@example.com", "W012A3CDE");
    assert_eq!(dispatch_one(&toml, d.clone()).await, Ok(200));
    assert_eq!(mock.take(), ["POST /admin.users.session.reset"]);
    // revoke_token naming a Slack session: admin.users.session.invalidate (session_id is an integer)
    d.action = Action::RevokeToken;
    d.session_id = Some("913888259765".into());
    d.trust.session_vendor = Some("slack".into());
    assert_eq!(dispatch_one(&toml, d.clone()).await, Ok(200));
    assert_eq!(mock.take(), ["POST /admin.users.session.invalidate"]);
    // the same number from another vendor's log (an MCP session id) is not a Slack session: the user is reset
    d.trust.session_vendor = Some("opentelemetry".into());
    assert_eq!(dispatch_one(&toml, d).await, Ok(200));
    assert_eq!(mock.take(), ["POST /admin.users.session.reset"]);

    // control: without the `token` header the spec declares, the mock refuses (422)
    let r = reqwest::Client::new()
        .post(format!("{}/admin.users.session.reset", mock.url))
        .bearer_auth("xoxp-test-admin-token-0123")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("user_id=W012A3CDE")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    // control: a non-integer session id breaks the invalidate method's schema
    let r = reqwest::Client::new()
        .post(format!("{}/admin.users.session.invalidate", mock.url))
        .bearer_auth("x")
        .header("token", "x")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("team_id=T1&session_id=abc")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
}

#[tokio::test]
async fn okta_universal_logout_matches_the_okta_oauth_spec() {
    let Some(shared) = shared() else {
        return common::skip("../shared/tools/spec-mock is not beside this checkout");
    };
    let mock = spec_mock(&shared, "okta/okta-oauth-minimal.yaml", &[]);
    std::env::set_var("QUENCH_TEST_OKTA_UL_TOKEN", "00abcdefghijklmnopqrstuvwxyz");
    let toml = format!("enforce = true\n[[targets]]\ntype = \"okta\"\nbase_url = \"{}\"\napi_token_env = \"QUENCH_TEST_OKTA_UL_TOKEN\"\nterminate_session = \"universal_logout\"\n", mock.via);
    let got = dispatch_one(
        &toml,
        decision(Action::TerminateSession, "alice@example.com", "00ualice"),
    )
    .await;
    assert_eq!(got, Ok(204));
    assert_eq!(mock.take(), ["POST /oauth2/v1/global-token-revocation"]);

    // control: a subject format the spec does not know is refused
    let r = reqwest::Client::new()
        .post(format!("{}/oauth2/v1/global-token-revocation", mock.url))
        .header("Authorization", "SSWS 00abcdefghijklmnopqrstuvwxyz")
        .header("Content-Type", "application/json")
        .body(r#"{"sub_id":{"format":"phone","phone":"+15550100"}}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
}

/// GitHub's published OpenAPI description of Enterprise Cloud (`@octokit/openapi` on npm, `generated/ghec.json`),
/// fetched once into the target directory. Prepared for the mock: `x-webhooks` (which Prism cannot load) is
/// dropped, and in the *response* schema of a credential authorization the login is pinned to `octo`, so that the
/// mock's generated answer names the user asked about. Requests are still checked against GitHub's own schema.
fn github_spec() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("specs");
    let prepared = dir.join("ghec-for-mock.json");
    if prepared.exists() {
        return Some(prepared);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let tgz = dir.join("octokit-openapi-23.0.2.tgz");
    if !tgz.exists() {
        let ok = Command::new("npm")
            .args([
                "pack",
                "--silent",
                "@octokit/openapi@23.0.2",
                "--pack-destination",
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
    }
    let ok = Command::new("tar")
        .args(["xzf"])
        .arg(&tgz)
        .arg("-C")
        .arg(&dir)
        .arg("package/generated/ghec.json")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cannot unpack {}", tgz.display());
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("package/generated/ghec.json")).unwrap())
            .unwrap();
    spec.as_object_mut().unwrap().remove("x-webhooks");
    spec["components"]["schemas"]["credential-authorization"]["properties"]["login"] =
        serde_json::json!({"type": "string", "enum": ["octo"]});
    let tmp = dir.join("ghec-for-mock.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&spec).unwrap()).unwrap();
    std::fs::rename(&tmp, &prepared).unwrap();
    Some(prepared)
}

#[tokio::test]
async fn github_sso_authorization_removal_matches_githubs_openapi_description() {
    let Some(shared) = shared() else {
        return common::skip("../shared/tools/spec-mock is not beside this checkout");
    };
    let Some(spec) = github_spec() else {
        return common::skip("npm cannot fetch @octokit/openapi");
    };
    let mock = spec_mock_file(&shared, &spec, &["/orgs/{org}/credential-authorizations"]);
    std::env::set_var(
        "QUENCH_TEST_GITHUB_TOKEN",
        "ghp_testOrgOwnerToken0123456789",
    );
    let toml = format!(
        "enforce = true\n[[targets]]\ntype = \"github\"\nbase_url = \"{}\"\norg = \"acme\"\ntoken_env = \"QUENCH_TEST_GITHUB_TOKEN\"\n",
        mock.via
    );
    // the list (GET with login, per_page and page) and the removal (DELETE with an integer credential id)
    let got = dispatch_one(&toml, decision(Action::RevokeToken, "octo", "octo")).await;
    assert_eq!(got, Ok(204));
    let seen = mock.take();
    assert!(
        seen.len() >= 2
            && seen[0] == "GET /orgs/acme/credential-authorizations?login=octo&per_page=100&page=1"
            && seen[1..]
                .iter()
                .all(|r| r.starts_with("DELETE /orgs/acme/credential-authorizations/")),
        "{seen:?}"
    );

    // control: a page size that is not an integer breaks the description
    let r = reqwest::Client::new()
        .get(format!(
            "{}/orgs/acme/credential-authorizations?login=octo&per_page=all",
            mock.url
        ))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
}
