//! The revocation adapters' requests checked against the vendors' published API specs, served by a validating
//! mock (`../shared/tools/spec-mock`, Stoplight Prism): a request that breaks the spec gets a 4xx, so a passing
//! dispatch means method, path, query, headers, security and body matched. Each test also sends one request that
//! breaks the spec, to show the server really rejects such requests.
//! Runs when `../shared/tools/spec-mock` exists beside the checkout (as in CI); says so on stderr otherwise.

#![allow(clippy::unwrap_used)]

use quench::decide::{Action, Decision, FindingRecord};
use quench::event::{PrincipalKind, Ts};
use quench::respond::{build_targets, Dispatcher, RespondConfig};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct SpecMock {
    child: Child,
    url: String,
}

impl Drop for SpecMock {
    fn drop(&mut self) {
        // spec-mock runs in its own process group with Prism under it: end them all
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    p.join("tools/spec-mock").exists().then_some(p)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One start at a time: the first start on a machine installs Prism from npm into a shared folder.
static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn spec_mock(shared: &Path, spec: &str, prefixes: &[&str]) -> SpecMock {
    use std::os::unix::process::CommandExt;
    let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let mut child = Command::new("bash")
        .arg(shared.join("tools/spec-mock"))
        .arg(shared.join("data/apis").join(spec))
        .arg(port.to_string())
        .args(prefixes)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("ready ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    // the first run on a machine installs Prism from npm
    let url = rx
        .recv_timeout(Duration::from_secs(600))
        .unwrap_or_else(|_| panic!("spec-mock for {spec} did not start"));
    SpecMock { child, url }
}

fn decision(action: Action, principal: &str, principal_id: &str) -> Decision {
    Decision {
        decision_id: "0123456789abcdef0123456789abcdef".into(),
        decided_at: Ts::now(),
        event_time: Ts(1_793_577_600_000),
        action,
        principal: Some(principal.into()),
        principal_id: Some(principal_id.into()),
        principal_kind: PrincipalKind::Human,
        token_id: None,
        session_id: Some("102aliceS3ss".into()),
        job_id: None,
        score: 0.95,
        findings: vec![FindingRecord {
            detector: "session_hijack".into(),
            score: 0.95,
            reason: "test".into(),
            source: None,
        }],
        evidence: vec!["e1".into()],
        guardrail: None,
        shadow: false,
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
        eprintln!("skipped: ../shared/tools/spec-mock is not beside this checkout");
        return;
    };
    let mock = spec_mock(&shared, "okta/okta-management-minimal.yaml", &[]);
    std::env::set_var("QUENCH_TEST_OKTA_TOKEN", "00abcdefghijklmnopqrstuvwxyz");
    let toml = format!("[[targets]]\ntype = \"okta\"\nbase_url = \"{}\"\napi_token_env = \"QUENCH_TEST_OKTA_TOKEN\"\n", mock.url);
    let got = dispatch_one(
        &toml,
        decision(Action::TerminateSession, "alice@example.com", "00ualice"),
    )
    .await;
    assert_eq!(got, Ok(204));

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
        eprintln!("skipped: ../shared/tools/spec-mock is not beside this checkout");
        return;
    };
    let mock = spec_mock(
        &shared,
        "microsoft_graph/v1.0-Users.Actions.yml",
        &["/users/{user-id}/microsoft.graph.revokeSignInSessions"],
    );
    std::env::set_var("QUENCH_TEST_GRAPH_TOKEN", "eyJ0eXAiOiJKV1QifQ.test.token");
    let toml = format!(
        "[[targets]]\ntype = \"graph\"\nbase_url = \"{}\"\nqualified_action_name = true\naccess_token_env = \"QUENCH_TEST_GRAPH_TOKEN\"\n",
        mock.url
    );
    let got = dispatch_one(
        &toml,
        decision(Action::RevokeToken, "alice@example.com", "00ualice"),
    )
    .await;
    assert_eq!(got, Ok(200));

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
