//! Credentials never leave in what Quench reports: a target that answers 401 and echoes the request's headers in
//! its error body (as some gateways do) must not put any credential into delivery reports or logs. Every target
//! type that holds a credential is covered, including the access token Graph fetches with its client secret.

#![allow(clippy::unwrap_used)]

use crate::support as common;

use quench::decide::{Action, Decision};
use quench::event::PrincipalKind;
use quench::respond::{build_targets, Dispatcher, RespondConfig};

const FETCHED: &str = "eyJ0eXAiOiJKV1QiLCJmZXRjaGVkIjoic2VjcmV0In0.fetched.token";

/// Issues [`FETCHED`] at `POST /token`; answers every other request with 401 and a body of `pad(head)` dots, the
/// request head and its body.
async fn echo_server(pad: fn(&str) -> usize) -> std::net::SocketAddr {
    common::serve(move |r, _| {
        if r.method == "POST" && r.target == "/token" {
            common::Reply::json(
                "200 OK",
                format!(
                    r#"{{"access_token":"{FETCHED}","token_type":"Bearer","expires_in":3600}}"#
                ),
            )
        } else {
            let head = common::head_of(r);
            let body = String::from_utf8_lossy(&r.body);
            common::Reply::text(
                "401 Unauthorized",
                format!("{}{head}{body}", ".".repeat(pad(&head))),
            )
        }
    })
    .await
    .addr
}

#[tokio::test]
async fn a_target_echoing_credentials_in_its_error_does_not_leak_them() {
    let addr = echo_server(|_| 0).await;
    // every registered target type, from its registry entry's sample: a type added later is covered without
    // touching this test
    let base = format!("http://{addr}");
    let registry = quench::respond::registry();
    let mut toml = String::from("enforce = true\nmax_attempts = 1\n");
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut travels = std::collections::HashMap::new();
    for r in &registry {
        let sample = (r.sample)(&base, "QUENCH_TEST_LEAK");
        toml.push_str("[[targets]]\n");
        toml.push_str(&sample.table);
        travels.insert(r.name, sample.credential_travels);
        secrets.extend(sample.env);
    }
    for (k, v) in &secrets {
        assert!(v.len() >= 8, "{k}: a sample credential too short to check");
        std::env::set_var(k, v);
    }
    let cfg: RespondConfig = toml::from_str(&toml).unwrap();
    let targets = build_targets(&cfg).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let disp = Dispatcher::new(cfg, targets, Some(tx)).unwrap();
    let d = Decision {
        decision_id: "f".repeat(32),
        action: Action::RevokeToken,
        principal: Some("alice@example.com".into()),
        principal_id: Some("00ualice".into()),
        principal_kind: PrincipalKind::Human,
        score: 0.9,
        // the id is GitHub's (so the github target has a login to address) and the e-mail is IdP-verified (so
        // every other target addresses the e-mail): every target sends a request
        trust: common::vouched(Some("github-login")),
        ..Default::default()
    };
    disp.dispatch(std::sync::Arc::new(d));
    disp.drain().await;
    drop(disp);
    let mut reports = Vec::new();
    while let Some(r) = rx.recv().await {
        reports.push(r);
    }
    assert_eq!(reports.len(), registry.len());
    for r in &reports {
        let e = r.result.clone().unwrap_err();
        assert!(e.contains("401"), "{}: {e}", r.target);
        for (_, s) in &secrets {
            assert!(!e.contains(s.as_str()), "{} leaked {s}: {e}", r.target);
        }
        assert!(
            !e.contains(FETCHED),
            "{} leaked the fetched Graph token: {e}",
            r.target
        );
        // the echo really carried the credential, so the redaction is what kept it out (the webhook's secret
        // never travels: it only keys the signature)
        if travels[r.target.as_str()] {
            assert!(e.contains("[redacted]"), "{}: {e}", r.target);
        }
    }
}

/// An Okta API token of 43 characters.
const OKTA_TOKEN: &str = "00Zq7vN3kLp9XwT2bR8sYc4HjM6dF1gA5eU0iO3tQ7x";

/// A gateway's 401 echoes the request head after a long preamble, so that the 300-byte cut of the error text falls
/// inside the echoed token. Redacting after that cut would no longer recognise the token and leave its first part
/// in the delivery report (and so in the logs, the outcome record's `error` and the dead-letter header).
#[tokio::test]
async fn an_echoed_token_cut_by_the_error_length_limit_leaks_no_part_of_it() {
    // the token starts 20 bytes before the body's 300th byte
    let addr =
        echo_server(|req| 280usize.saturating_sub(req.find("SSWS ").map_or(0, |i| i + 5))).await;
    std::env::set_var("QUENCH_TEST_CUT_OKTA", OKTA_TOKEN);
    let cfg: RespondConfig = toml::from_str(&format!(
        "enforce = true\nmax_attempts = 1\n[[targets]]\ntype = \"okta\"\nbase_url = \"http://{addr}\"\napi_token_env = \"QUENCH_TEST_CUT_OKTA\"\n"
    ))
    .unwrap();
    let targets = build_targets(&cfg).unwrap();
    let disp = Dispatcher::new(cfg, targets, None).unwrap();
    // a decision whose Okta user id came from Okta's own log
    let mut d = common::agent_revocation("c");
    d.principal_id = Some("00ualice".into());
    d.trust = common::vouched(Some("00ualice"));
    let r = disp
        .deliver("okta", &d, quench::clock::WallTime::now())
        .await;
    let e = r.result.unwrap_err();
    assert!(e.contains("401") && e.contains(&".".repeat(100)), "{e}");
    for part in OKTA_TOKEN.as_bytes().windows(6) {
        let part = std::str::from_utf8(part).unwrap();
        assert!(!e.contains(part), "leaked {part:?} of the token: {e}");
    }
}

/// A writer that keeps every log line for the test to read.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Answers the first request with a retryable 503 and every later one with 401, each echoing the request (head and
/// body).
async fn echo_503_then_401() -> std::net::SocketAddr {
    common::serve(|r, n| {
        let status = if n == 0 {
            "503 Service Unavailable"
        } else {
            "401 Unauthorized"
        };
        common::Reply::text(
            status,
            format!("{}{}", common::head_of(r), String::from_utf8_lossy(&r.body)),
        )
    })
    .await
    .addr
}

/// The retry path logs its own warning ("revocation failed, retrying") with the error text. A server that echoes
/// the request head in a retryable 503 must not put the credential into that log line, nor into the final error
/// line: both are read from the log output itself, with the retry really taken.
#[tokio::test]
async fn a_credential_echoed_in_a_retryable_error_stays_out_of_the_logs() {
    let addr = echo_503_then_401().await;
    std::env::set_var("QUENCH_TEST_RETRY_OKTA", OKTA_TOKEN);
    let cfg: RespondConfig = toml::from_str(&format!(
        "enforce = true\nmax_attempts = 3\nbackoff_ms = 1\nmax_backoff_ms = 1\n[[targets]]\ntype = \"okta\"\nbase_url = \"http://{addr}\"\napi_token_env = \"QUENCH_TEST_RETRY_OKTA\"\n"
    ))
    .unwrap();
    let targets = build_targets(&cfg).unwrap();
    let disp = Dispatcher::new(cfg, targets, None).unwrap();
    let mut d = common::agent_revocation("r");
    d.principal_id = Some("00ualice".into());
    d.trust = common::vouched(Some("00ualice"));

    // a global subscriber: with a thread-local one, another test of this binary that reached a log call site first
    // could leave it cached as unwanted. Every test's lines land here, so the leak check covers them all.
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let r = disp
        .deliver("okta", &d, quench::clock::WallTime::now())
        .await;
    assert_eq!(r.attempts, 2, "{r:?}");
    assert!(r.result.as_ref().unwrap_err().contains("401"), "{r:?}");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let ours = |l: &&str| l.contains(&d.decision_id);
    let retry = text
        .lines()
        .filter(ours)
        .find(|l| l.contains("revocation failed, retrying"))
        .unwrap_or_else(|| panic!("no retry warning logged:\n{text}"));
    // the echo reached the log line, redacted
    assert!(
        retry.contains("503") && retry.contains("[redacted]"),
        "{retry}"
    );
    assert!(
        text.lines()
            .filter(ours)
            .any(|l| l.contains("revocation failed") && l.contains("401")),
        "{text}"
    );
    for part in OKTA_TOKEN.as_bytes().windows(6) {
        let part = std::str::from_utf8(part).unwrap();
        assert!(
            !text.contains(part),
            "the logs leaked {part:?} of the token:\n{text}"
        );
    }
}
