//! Credentials never leave in what Quench reports: a target that answers 401 and echoes the request's headers in
//! its error body (as some gateways do) must not put the API token or webhook secret into delivery reports or logs.

#![allow(clippy::unwrap_used)]

use quench::decide::{Action, Decision};
use quench::event::{PrincipalKind, Ts};
use quench::respond::{build_targets, Dispatcher, RespondConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers every request with 401 and the request head as the body.
async fn echo_server() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let body = String::from_utf8_lossy(&buf[..n]).to_string();
            let reply = format!("HTTP/1.1 401 Unauthorized\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    addr
}

#[tokio::test]
async fn a_target_echoing_credentials_in_its_error_does_not_leak_them() {
    let addr = echo_server().await;
    std::env::set_var("QUENCH_TEST_LEAK_OKTA", "00SuperSecretOktaApiToken");
    std::env::set_var("QUENCH_TEST_LEAK_HOOK", "hook-secret-0123456789abcdef");
    let toml = format!(
        "max_attempts = 1\n[[targets]]\ntype = \"okta\"\nbase_url = \"http://{addr}\"\napi_token_env = \"QUENCH_TEST_LEAK_OKTA\"\nactions = [\"revoke_token\"]\n\
         [[targets]]\ntype = \"webhook\"\nurl = \"http://{addr}/hook\"\nsecret_env = \"QUENCH_TEST_LEAK_HOOK\"\nactions = [\"revoke_token\"]\n"
    );
    let cfg: RespondConfig = toml::from_str(&toml).unwrap();
    let targets = build_targets(&cfg).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let disp = Dispatcher::new(cfg, targets, Some(tx)).unwrap();
    let d = Decision {
        decision_id: "f".repeat(32),
        decided_at: Ts(0),
        event_time: Ts(0),
        action: Action::RevokeToken,
        principal: Some("alice@example.com".into()),
        principal_id: Some("00ualice".into()),
        principal_kind: PrincipalKind::Human,
        token_id: None,
        session_id: None,
        job_id: None,
        score: 0.9,
        findings: vec![],
        evidence: vec![],
        guardrail: None,
        shadow: false,
    };
    disp.dispatch(std::sync::Arc::new(d));
    disp.drain().await;
    drop(disp);
    let mut reports = Vec::new();
    while let Some(r) = rx.recv().await {
        reports.push(r);
    }
    assert_eq!(reports.len(), 2);
    for r in &reports {
        let e = r.result.clone().unwrap_err();
        assert!(e.contains("401"), "{e}");
        assert!(
            !e.contains("00SuperSecretOktaApiToken") && !e.contains("hook-secret-0123456789abcdef"),
            "leaked: {e}"
        );
    }
    // the echo really carried the credential, so the redaction is what kept it out
    assert!(
        reports
            .iter()
            .any(|r| r.result.clone().unwrap_err().contains("[redacted]")),
        "{reports:?}"
    );
}
