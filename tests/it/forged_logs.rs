//! Forged logs against the whole engine: `replay --dispatch` with every human-facing target (Okta, Graph, Google,
//! Slack, Salesforce) and an agent-quarantine webhook pointed at local servers that record every request. Each
//! input is what an outsider, or a compromised agent, can write into the log pipeline. The suite checks that no
//! target receives a request for anyone but an actor a source authoritatively identified, that nothing crashes,
//! and that no line is lost (each is processed or reported with its reason).

#![allow(clippy::unwrap_used)]

use crate::support as common;

use quench::cli::{replay, ReplayReport};
use quench::config::Config;
use quench::decide::Action;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// 2026-11-02T08:00:00Z in epoch milliseconds.
const T0: i64 = 1_793_606_400_000;

fn iso(ms: i64) -> String {
    quench::event::Ts(ms).to_rfc3339()
}

/// A server that records each request line (`POST /path HTTP/1.1`) and answers 200 with a body every target
/// accepts.
async fn recorder() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr = common::serve(move |r, _| {
        log.lock()
            .unwrap()
            .push(format!("{} {} HTTP/1.1", r.method, r.target));
        common::Reply::json(
            "200 OK",
            r#"{"ok":true,"user":{"id":"U0FORGED"},"totalSize":0,"done":true,"records":[]}"#,
        )
    })
    .await
    .addr;
    (addr, seen)
}

struct Targets {
    toml: String,
    seen: Vec<(&'static str, Arc<Mutex<Vec<String>>>)>,
}

impl Targets {
    async fn new(privileged: &[&str]) -> Targets {
        Self::with(privileged, "").await
    }

    /// Targets plus `extra` configuration (tables that come after `[respond]` is complete, e.g. `[normalize.…]`).
    async fn with(privileged: &[&str], extra: &str) -> Targets {
        for (k, v) in [
            ("QUENCH_FORGED_OKTA", "forged-test-okta-token-0123456789"),
            ("QUENCH_FORGED_GRAPH", "forged-test-graph-token-0123456789"),
            (
                "QUENCH_FORGED_GOOGLE",
                "forged-test-google-token-0123456789",
            ),
            ("QUENCH_FORGED_SLACK", "xoxp-forged-test-slack-token-0123"),
            ("QUENCH_FORGED_SF", "forged-test-salesforce-token-0123"),
            ("QUENCH_FORGED_HOOK", "forged-test-webhook-secret-0123456"),
        ] {
            std::env::set_var(k, v);
        }
        let mut seen = Vec::new();
        let mut toml = format!(
            "[decide.guardrails]\nprivileged = {privileged:?}\n[respond]\nenforce = true\nmax_attempts = 1\n"
        );
        for (name, body) in [
            ("okta", "type = \"okta\"\nbase_url = \"http://{a}\"\napi_token_env = \"QUENCH_FORGED_OKTA\"\n"),
            ("graph", "type = \"graph\"\nbase_url = \"http://{a}/v1.0\"\naccess_token_env = \"QUENCH_FORGED_GRAPH\"\n"),
            ("google", "type = \"google\"\nbase_url = \"http://{a}\"\naccess_token_env = \"QUENCH_FORGED_GOOGLE\"\n"),
            ("slack", "type = \"slack\"\nbase_url = \"http://{a}\"\ntoken_env = \"QUENCH_FORGED_SLACK\"\nteam_id = \"T1\"\n"),
            ("salesforce", "type = \"salesforce\"\ninstance_url = \"http://{a}\"\naccess_token_env = \"QUENCH_FORGED_SF\"\n"),
            ("agent-quarantine", "type = \"webhook\"\nname = \"agent-quarantine\"\nurl = \"http://{a}/hook\"\nsecret_env = \"QUENCH_FORGED_HOOK\"\nprincipal_kinds = [\"agent\", \"service\"]\n"),
        ] {
            let (addr, log) = recorder().await;
            toml.push_str("[[respond.targets]]\n");
            toml.push_str(&body.replace("{a}", &addr.to_string()));
            seen.push((name, log));
        }
        toml.push_str(extra);
        Targets { toml, seen }
    }

    fn requests(&self, target: &str) -> Vec<String> {
        self.seen
            .iter()
            .filter(|(n, _)| *n == target)
            .flat_map(|(_, l)| l.lock().unwrap().clone())
            .collect()
    }

    fn human_requests(&self) -> Vec<String> {
        ["okta", "graph", "google", "slack", "salesforce"]
            .iter()
            .flat_map(|t| {
                self.requests(t)
                    .into_iter()
                    .map(move |r| format!("{t}: {r}"))
            })
            .collect()
    }
}

async fn run(t: &Targets, tag: &str, lines: &[String]) -> ReplayReport {
    let path =
        std::env::temp_dir().join(format!("quench-forged-{tag}-{}.jsonl", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    let cfg = Config::from_str(&t.toml, "forged.toml").unwrap();
    let r = replay(
        &cfg,
        &[path.display().to_string()],
        true,
        &mut std::io::sink(),
    )
    .await
    .unwrap();
    std::fs::remove_file(path).unwrap();
    r
}

/// The demo's day, one raw event a line.
fn demo_day() -> Vec<String> {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/scenarios/demo_day/events.jsonl"
    ))
    .unwrap()
    .lines()
    .map(String::from)
    .collect()
}

/// What was decided about whom, in a stable order (decision times and ids aside).
type Decided = Vec<(Action, Option<String>, Option<String>, Option<String>)>;

fn decided(r: &ReplayReport) -> Decided {
    let mut v: Decided = r
        .decisions
        .iter()
        .map(|d| {
            (
                d.action,
                d.principal.clone(),
                d.job_id.clone(),
                d.token_id.clone(),
            )
        })
        .collect();
    v.sort();
    v
}

fn nginx(i: i64, user: &str, status: u16, token: &str) -> String {
    format!(
        r#"{{"time_iso8601":"{}","remote_addr":"198.51.100.8","remote_user":"{user}","request_method":"GET","request_uri":"/reports/{i}","status":"{status}","body_bytes_sent":"4096","http_user_agent":"curl/8.5.0","request_id":"ng-{i}","host":"reports.example.com","http_x_token_id":"{token}"}}"#,
        iso(T0 + i * 50)
    )
}

#[tokio::test]
async fn anonymous_nginx_requests_with_the_ceos_basic_user_name_log_nobody_out() {
    let t = Targets::new(&["ceo@example.com"]).await;
    // 1,001 requests answered 401, then 1,001 answered 200 by a gateway that authenticated nobody
    let mut lines: Vec<String> = (0..1001)
        .map(|i| nginx(i, "ceo@example.com", 401, "tok-ceo"))
        .collect();
    lines.extend((1001..2002).map(|i| nginx(i, "ceo@example.com", 200, "tok-ceo")));
    let r = run(&t, "nginx", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(
        r.decisions.iter().any(|d| d.action == Action::Alert),
        "the flood is still seen: {:?}",
        r.decisions
    );
    assert!(
        r.decisions.iter().all(|d| d.action == Action::Alert),
        "{:?}",
        r.decisions
    );
    assert_eq!(t.human_requests(), Vec::<String>::new());
    assert_eq!(t.requests("agent-quarantine"), Vec::<String>::new());
}

#[tokio::test]
async fn envoy_x_user_and_x_token_id_headers_revoke_nothing() {
    let t = Targets::new(&[]).await;
    let lines: Vec<String> = (0..2000)
        .map(|i| {
            format!(
                r#"{{"start_time":"{}","method":"GET","path":"/v1/export","protocol":"HTTP/1.1","response_code":200,"response_flags":"-","bytes_received":512,"bytes_sent":20480,"duration":12,"user_agent":"curl","request_id":"ev-{i}","authority":"exports.internal","upstream_cluster":"exports","downstream_remote_address_without_port":"203.0.113.9","principal":"payroll-svc","token_id":"tok-payroll"}}"#,
                iso(T0 + i * 30)
            )
        })
        .collect();
    let r = run(&t, "envoy", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(!r.decisions.is_empty(), "the flood is still seen");
    assert!(
        r.decisions.iter().all(|d| d.action == Action::Alert),
        "{:?}",
        r.decisions
    );
    assert_eq!(t.human_requests(), Vec::<String>::new());
    assert_eq!(t.requests("agent-quarantine"), Vec::<String>::new());
}

fn okta_refresh(user: &str, email: &str, token: &str, t: i64) -> String {
    format!(
        r#"{{"uuid":"ok-{token}-{t}","published":"{}","eventType":"app.oauth2.as.token.grant.refresh_token","actor":{{"id":"{user}","type":"User","alternateId":"{email}"}},"client":{{"id":"0oaclient","ipAddress":"73.1.1.1"}},"outcome":{{"result":"SUCCESS"}},"target":[{{"id":"{token}","type":"refresh_token"}}]}}"#,
        iso(t)
    )
}

fn kong(i: i64, headers: &str, auth: &str) -> String {
    format!(
        r#"{{"request":{{"method":"GET","uri":"/v1/items/{i}","size":100,"headers":{{"user-agent":"x",{headers}}}}},"upstream_uri":"/v1/items","response":{{"status":200,"size":2048}},"client_ip":"203.0.113.7","started_at":{},"service":{{"name":"items-api","host":"items.internal"}}{auth}}}"#,
        T0 + 60_000 + i * 20
    )
}

#[tokio::test]
async fn an_anonymous_request_carrying_the_ceos_refresh_token_id_terminates_nobody() {
    let t = Targets::new(&[]).await;
    let mut lines = vec![okta_refresh("00uceo", "ceo@example.com", "rt.ceo", T0)];
    lines.extend((0..2000).map(|i| kong(i, r#""x-token-id":"rt.ceo""#, "")));
    let r = run(&t, "kong-token", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(
        r.decisions
            .iter()
            .all(|d| d.principal.as_deref() != Some("00uceo")
                && d.principal.as_deref() != Some("ceo@example.com")),
        "an anonymous request borrowed the CEO's identity: {:?}",
        r.decisions
    );
    assert!(
        r.decisions.iter().all(|d| d.action == Action::Alert),
        "{:?}",
        r.decisions
    );
    assert_eq!(t.human_requests(), Vec::<String>::new());
}

#[tokio::test]
async fn anonymous_requests_naming_an_agents_job_do_not_become_its_activity() {
    let t = Targets::new(&[]).await;
    // the agent's job is known from its own spans
    let span = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"agent-runtime"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"a1","spanId":"b1","name":"execute_tool x","startTimeUnixNano":"{}000000","attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"execute_tool"}}}},{{"key":"gen_ai.agent.id","value":{{"stringValue":"agent-crm"}}}},{{"key":"gen_ai.conversation.id","value":{{"stringValue":"job-crm-1"}}}},{{"key":"quench.token.id","value":{{"stringValue":"tok-crm"}}}}]}}]}}]}}]}}"#,
        T0
    );
    let mut lines = vec![span];
    lines.extend((0..2000).map(|i| kong(i, r#""x-agent-job-id":"job-crm-1""#, "")));
    let r = run(&t, "kong-job", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(
        r.decisions.iter().all(|d| d.action == Action::Alert),
        "{:?}",
        r.decisions
    );
    assert_eq!(t.requests("agent-quarantine"), Vec::<String>::new());
    assert_eq!(t.human_requests(), Vec::<String>::new());
}

fn agent_span(i: i64, agent: &str, job: &str, token: &str, enduser: &str) -> String {
    format!(
        r#"{{"traceId":"t{i}","spanId":"s{i}","name":"execute_tool export","startTimeUnixNano":"{}000000","attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"execute_tool"}}}},{{"key":"gen_ai.agent.id","value":{{"stringValue":"{agent}"}}}},{{"key":"gen_ai.conversation.id","value":{{"stringValue":"{job}"}}}},{{"key":"quench.token.id","value":{{"stringValue":"{token}"}}}},{{"key":"enduser.id","value":{{"stringValue":"{enduser}"}}}},{{"key":"gen_ai.tool.name","value":{{"stringValue":"export_rows"}}}}]}}"#,
        T0 + i * 20
    )
}

#[tokio::test]
async fn an_agent_naming_the_cfo_as_its_end_user_is_quarantined_and_the_cfo_is_left_alone() {
    let t = Targets::new(&[]).await;
    // a compromised agent floods tool calls, each span claiming to act for the CFO or another employee
    let lines: Vec<String> = (0..2000)
        .map(|i| {
            let who = if i % 2 == 0 {
                "cfo@example.com".to_string()
            } else {
                format!("employee{}@example.com", i % 60)
            };
            agent_span(i, "agent-rogue", "job-rogue-1", "tok-rogue", &who)
        })
        .collect();
    let r = run(&t, "agent", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    let revoked: Vec<_> = r
        .decisions
        .iter()
        .filter(|d| d.action >= Action::RevokeToken)
        .collect();
    assert!(
        !revoked.is_empty(),
        "the agent's flood is acted on: {:?}",
        r.decisions
    );
    for d in &r.decisions {
        assert_ne!(
            d.principal_kind,
            quench::event::PrincipalKind::Human,
            "{d:?}"
        );
        assert!(
            !d.principal.as_deref().unwrap_or("").contains("example.com"),
            "{d:?}"
        );
    }
    assert_eq!(t.human_requests(), Vec::<String>::new());
    let quarantined = t.requests("agent-quarantine");
    assert!(!quarantined.is_empty(), "the agent's token is revoked");
}

#[tokio::test]
async fn github_logins_shaped_like_okta_slack_or_salesforce_ids_reach_no_other_vendor() {
    let t = Targets::new(&[]).await;
    let mut lines = Vec::new();
    for (k, login) in ["00uceo", "W0CEO", "005CEO0000"].iter().enumerate() {
        for i in 0..1500i64 {
            let ms = T0 + k as i64 * 100_000 + i * 30;
            lines.push(format!(
                r#"{{"@timestamp":{ms},"_document_id":"gh-{k}-{i}","action":"api.request","actor":"{login}","actor_ip":"198.51.100.4","created_at":{ms},"hashed_token":"h{k}","request_method":"GET","route":"/repos/{{owner}}/{{repo}}"}}"#
            ));
        }
    }
    let r = run(&t, "github", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(t.requests("okta"), Vec::<String>::new());
    assert_eq!(t.requests("slack"), Vec::<String>::new());
    assert_eq!(t.requests("salesforce"), Vec::<String>::new());
    assert_eq!(t.requests("graph"), Vec::<String>::new());
    assert_eq!(t.requests("google"), Vec::<String>::new());
}

#[tokio::test]
async fn native_events_claiming_idp_and_saas_families_do_not_unlock_a_privileged_logout() {
    let t = Targets::new(&["ceo@example.com"]).await;
    // an impossible-travel login "from the IdP", then the CEO's session replayed "as seen by a SaaS app": two
    // families, as the privileged rule wants, both written by whoever can write native events
    let native = |i: i64, family: &str, session: &str, ip: &str, ua: &str| {
        format!(
            r#"{{"event_id":"n-{i}","event_time":"{}","ingest_time":"{}","source":{{"family":"{family}","vendor":"okta","format":"okta"}},"category":"login","outcome":"success","principal":{{"id":"00uceo","email":"ceo@example.com","kind":"human"}},"session":{{"session_id":"{session}"}},"network":{{"ip":"{ip}","user_agent":"{ua}","asn":{},"geo":{{"lat":{},"lon":{}}}}}}}"#,
            iso(T0 + i * 600_000),
            iso(T0 + i * 600_000),
            if i == 0 { 7922 } else { 7713 },
            if i == 0 { 41.88 } else { -6.2 },
            if i == 0 { -87.63 } else { 106.8 },
        )
    };
    let lines = vec![
        native(0, "idp", "sess-ceo", "73.1.1.1", "Chrome"),
        native(1, "idp", "sess-other", "36.80.1.1", "Chrome"),
        native(2, "saas", "sess-ceo", "36.80.1.2", "curl"),
    ];
    let r = run(&t, "native", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(
        r.decisions.iter().all(|d| d.action <= Action::StepUp),
        "{:?}",
        r.decisions
    );
    assert_eq!(t.human_requests(), Vec::<String>::new());
}

/// The demo's day, replayed with one forged span dated 2100 near its start: every decision of the clean day is
/// still made, and the forged line is reported with its reason instead of sweeping the engine's state.
#[tokio::test]
async fn one_span_dated_2100_neither_blinds_the_detectors_nor_is_processed() {
    let t = Targets::new(&[]).await;
    let day = demo_day();
    let clean = run(&t, "clean", &day).await;
    // just before the agent's pivot (06:30) and the scraping (08:10), after the baselines were learned
    let at = day
        .iter()
        .position(|l| l.contains("2026-11-02T06:") || l.contains("\"started_at\":17935986"))
        .unwrap();
    let mut forged = day.clone();
    forged.insert(
        at,
        agent_span(0, "agent-x", "job-x", "tok-x", "")
            .replace(&format!("\"{T0}000000\""), "\"4102444800000000000\""),
    );
    let t2 = Targets::new(&[]).await;
    let r = run(&t2, "2100", &forged).await;
    assert_eq!(decided(&clean), decided(&r));
    assert_eq!(r.failed.len(), clean.failed.len() + 1, "{:?}", r.failed);
    let line = format!(":{}:", at + 1);
    assert!(
        r.failed
            .iter()
            .any(|f| f.contains("2100-01-01") && f.contains(&line)),
        "{:?}",
        r.failed
    );
}

/// The operator's own networks, as `[normalize.enrich.networks]` places them (the README's enrichment feature).
const NETWORKS: &str = "[[normalize.enrich.networks]]\ncidr = \"192.0.2.0/24\"\nlat = 50.11\nlon = 8.68\ncity = \"Frankfurt\"\ncountry = \"DE\"\naccuracy_km = 10.0\nasn = 64502\n\
[[normalize.enrich.networks]]\ncidr = \"203.0.113.0/24\"\nlat = 6.45\nlon = 3.39\ncity = \"Lagos\"\ncountry = \"NG\"\naccuracy_km = 10.0\nasn = 64501\n";

fn okta_sign_in(
    uuid: &str,
    event_type: &str,
    user: &str,
    email: &str,
    session: &str,
    t: i64,
) -> String {
    format!(
        r#"{{"uuid":"{uuid}","published":"{}","eventType":"{event_type}","actor":{{"id":"{user}","type":"User","alternateId":"{email}"}},"client":{{"ipAddress":"73.1.2.3","userAgent":{{"rawUserAgent":"Mozilla/5.0 Chrome"}},"geographicalContext":{{"city":"Chicago","country":"United States","geolocation":{{"lat":41.88,"lon":-87.63}}}}}},"authenticationContext":{{"externalSessionId":"{session}"}},"securityContext":{{"asNumber":7922,"isProxy":false}},"debugContext":{{"debugData":{{"dtHash":"dev-{user}"}}}},"outcome":{{"result":"SUCCESS"}}}}"#,
        iso(t)
    )
}

/// The CEO signing in to Okta from home in Chicago, session `102ceo`.
fn ceo_sign_in(uuid: &str, event_type: &str, t: i64) -> String {
    okta_sign_in(uuid, event_type, "00uceo", "ceo@example.com", "102ceo", t)
}

/// Found by an outside review: two anonymous requests "as" the CEO, from Frankfurt then Lagos, used to set the
/// CEO's last location and a hijack finding; the CEO's own next sign-in from Chicago then added an authoritative
/// impossible-travel finding, and the two together terminated the CEO's sessions at every vendor.
#[tokio::test]
async fn anonymous_requests_cannot_poison_a_persons_state_ahead_of_their_real_sign_in() {
    let t = Targets::with(&[], NETWORKS).await;
    let lines = vec![
        ceo_sign_in("ok-1", "user.session.start", T0),
        format!(
            r#"{{"time_iso8601":"{}","remote_addr":"192.0.2.10","remote_user":"ceo@example.com","request_method":"GET","request_uri":"/","status":"200","body_bytes_sent":"10","http_user_agent":"Mozilla/5.0 Firefox","request_id":"ng-1","host":"www.example.com","http_x_token_id":"evil-tok"}}"#,
            iso(T0 + 300_000)
        ),
        format!(
            r#"{{"time_iso8601":"{}","remote_addr":"203.0.113.5","remote_user":"ceo@example.com","request_method":"GET","request_uri":"/","status":"200","body_bytes_sent":"10","http_user_agent":"curl/8.5.0","request_id":"ng-2","host":"www.example.com","http_x_token_id":"evil-tok"}}"#,
            iso(T0 + 600_000)
        ),
        ceo_sign_in("ok-2", "user.authentication.sso", T0 + 1_200_000),
    ];
    let r = run(&t, "poison", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    for d in &r.decisions {
        let p = d.principal.as_deref().unwrap_or("");
        assert!(d.action == Action::Alert || !p.contains("ceo"), "{d:?}");
        assert!(
            !d.trust.evidence.iter().any(|e| e.starts_with("ng-")),
            "a forged line counted as authoritative: {d:?}"
        );
    }
    assert_eq!(t.human_requests(), Vec::<String>::new());
    assert_eq!(t.requests("agent-quarantine"), Vec::<String>::new());
}

/// Found by an outside review: an agent that names itself after a privileged person (`gen_ai.agent.id` is the
/// agent's own choice) shared the person's subject, so its findings counted as the second source family the
/// privileged rule asks for, and the person was logged out everywhere.
#[tokio::test]
async fn an_agent_named_after_a_privileged_person_is_not_their_second_source_family() {
    let t = Targets::with(&["cfo-admin@example.com"], NETWORKS).await;
    let span = |i: i64, ip: &str, ua: &str| {
        format!(
            r#"{{"traceId":"t1","spanId":"s{i}","name":"execute_tool","startTimeUnixNano":"{}000000","attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"execute_tool"}}}},{{"key":"gen_ai.agent.id","value":{{"stringValue":"cfo-admin@example.com"}}}},{{"key":"mcp.session.id","value":{{"stringValue":"evil-s"}}}},{{"key":"client.address","value":{{"stringValue":"{ip}"}}}},{{"key":"user_agent.original","value":{{"stringValue":"{ua}"}}}}]}}"#,
            T0 + i * 300_000
        )
    };
    let lines = vec![
        okta_sign_in(
            "ok-1",
            "user.session.start",
            "00ucfo",
            "cfo-admin@example.com",
            "102cfo",
            T0,
        ),
        span(1, "192.0.2.10", "agentA"),
        span(2, "203.0.113.5", "agentB"),
        okta_sign_in(
            "ok-2",
            "user.authentication.sso",
            "00ucfo",
            "cfo-admin@example.com",
            "102cfo",
            T0 + 1_200_000,
        ),
    ];
    let r = run(&t, "agent-named-cfo", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    for d in &r.decisions {
        if d.principal_kind == quench::event::PrincipalKind::Human {
            assert!(d.action <= Action::StepUp, "{d:?}");
        }
    }
    assert_eq!(t.human_requests(), Vec::<String>::new());
}

fn job_span(i: i64, dest: &str) -> String {
    format!(
        r#"{{"traceId":"j{i}","spanId":"k{i}","name":"execute_tool upload","startTimeUnixNano":"{}000000","attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"execute_tool"}}}},{{"key":"gen_ai.agent.id","value":{{"stringValue":"agent-sync"}}}},{{"key":"gen_ai.conversation.id","value":{{"stringValue":"job-sync-1"}}}},{{"key":"quench.token.id","value":{{"stringValue":"tok-sync"}}}},{{"key":"gen_ai.tool.name","value":{{"stringValue":"upload_rows"}}}},{{"key":"quench.destination","value":{{"stringValue":"{dest}"}}}}]}}"#,
        T0 + i * 120_000
    )
}

/// A configuration announcement (`admin_change` naming a job and a destination) makes a new destination known
/// without a finding. Anyone able to write native events could otherwise announce their own exfiltration
/// destination: from an input not configured as trusted, the announcement is a claim and changes nothing.
#[tokio::test]
async fn an_unvouched_configuration_announcement_does_not_blind_destination_drift() {
    let mut lines: Vec<String> = (0..20).map(|i| job_span(i, "s3://corp-sync-out")).collect();
    lines.push(format!(
        r#"{{"event_id":"cfg-1","event_time":"{}","ingest_time":"{}","source":{{"family":"agent","vendor":"agent-platform","format":"native"}},"category":"admin_change","action":"agent.config.update","outcome":"success","principal":{{"id":"platform-admin@example.com","kind":"human"}},"session":{{"job_id":"job-sync-1"}},"resource":{{"destination":"s3://attacker-drop"}}}}"#,
        iso(T0 + 21 * 120_000),
        iso(T0 + 21 * 120_000)
    ));
    lines.extend((22..25).map(|i| job_span(i, "s3://attacker-drop")));
    let drift = |r: &ReplayReport| {
        r.decisions
            .iter()
            .any(|d| d.findings.iter().any(|f| f.detector == "destination_drift"))
    };
    let untrusted = Targets::new(&[]).await;
    let r = run(&untrusted, "announce-untrusted", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(drift(&r), "{:?}", r.decisions);
    assert!(
        !untrusted.requests("agent-quarantine").is_empty(),
        "the agent's token is revoked"
    );
    // the same announcement from an input the operator trusts is a legitimate change
    let trusted = Targets::with(
        &[],
        "[normalize.formats.native]\nvendor = \"agent-platform\"\nvouched = true\n",
    )
    .await;
    let r = run(&trusted, "announce-trusted", &lines).await;
    assert!(!drift(&r), "{:?}", r.decisions);
}

fn mcp_span(i: i64, t: i64, session: &str, ip: &str, ua: &str) -> String {
    format!(
        r#"{{"traceId":"m{i}","spanId":"n{i}","name":"execute_tool","startTimeUnixNano":"{t}000000","attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"execute_tool"}}}},{{"key":"gen_ai.agent.id","value":{{"stringValue":"agent-notes"}}}},{{"key":"mcp.session.id","value":{{"stringValue":"{session}"}}}},{{"key":"client.address","value":{{"stringValue":"{ip}"}}}},{{"key":"user_agent.original","value":{{"stringValue":"{ua}"}}}}]}}"#
    )
}

/// Found by the second outside review: an agent's span naming the CEO's Okta session id (the agent vouches for
/// its own MCP sessions) became that session's first fingerprint, so the CEO's own next sign-in looked like a
/// hijack and the CEO was logged out everywhere.
#[tokio::test]
async fn an_agent_naming_a_persons_session_id_does_not_become_that_sessions_fingerprint() {
    let t = Targets::with(&[], NETWORKS).await;
    let lines = vec![
        mcp_span(1, T0, "102ceo", "203.0.113.5", "agentB"),
        ceo_sign_in("ok-1", "user.session.start", T0 + 60_000),
        ceo_sign_in("ok-2", "user.authentication.sso", T0 + 600_000),
    ];
    let r = run(&t, "agent-session", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(
        r.decisions
            .iter()
            .all(|d| d.principal_kind != quench::event::PrincipalKind::Human),
        "{:?}",
        r.decisions
    );
    assert_eq!(t.human_requests(), Vec::<String>::new());
}

/// Found by the second outside review: an agent naming the CEO's session from eight networks filled the
/// fingerprints session_hijack keeps per session, so a real theft of the session that followed went unseen.
#[tokio::test]
async fn an_agent_cannot_fill_a_sessions_fingerprints_to_hide_a_real_theft() {
    let t = Targets::with(&[], NETWORKS).await;
    let mut lines = vec![ceo_sign_in("ok-1", "user.session.start", T0)];
    for i in 0..8 {
        lines.push(mcp_span(
            i,
            T0 + 60_000 + i * 10_000,
            "102ceo",
            &format!("203.0.113.{}", 10 + i),
            "Mozilla/5.0 Chrome",
        ));
    }
    // the thief replays the session cookie from a hosting network with a script
    lines.push(format!(
        r#"{{"uuid":"ok-thief","published":"{}","eventType":"user.authentication.sso","actor":{{"id":"00uceo","type":"User","alternateId":"ceo@example.com"}},"client":{{"ipAddress":"98.0.0.9","userAgent":{{"rawUserAgent":"python-requests/2.31"}},"geographicalContext":{{"city":"Chicago","country":"United States","geolocation":{{"lat":41.88,"lon":-87.63}}}}}},"authenticationContext":{{"externalSessionId":"102ceo"}},"securityContext":{{"asNumber":14061,"isProxy":false}},"debugContext":{{"debugData":{{"dtHash":"evil-dev"}}}},"outcome":{{"result":"SUCCESS"}}}}"#,
        iso(T0 + 300_000)
    ));
    let r = run(&t, "agent-fill", &lines).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(
        r.decisions
            .iter()
            .any(|d| d.principal.as_deref() == Some("ceo@example.com")
                && d.action == Action::TerminateSession),
        "the theft is caught: {:?}",
        r.decisions
    );
}

/// Found by the second outside review: one anonymous line dated three weeks after the recorded day, first in the
/// file (or agreeing with an unvouched span mid-stream), set the replay's clock, and every real event after it was
/// "too old" to be looked at.
#[tokio::test]
async fn anonymous_lines_dated_weeks_ahead_do_not_set_a_replays_clock() {
    let t = Targets::new(&[]).await;
    let day = demo_day();
    let clean = run(&t, "clean-2", &day).await;
    let ahead = r#"{"time_iso8601":"2026-11-20T00:00:00+00:00","remote_addr":"203.0.113.5","remote_user":"-","request_method":"GET","request_uri":"/","status":"404","body_bytes_sent":"0","http_user_agent":"x","request_id":"ng-j","host":"www.example.com"}"#;
    let span = r#"{"traceId":"tj","spanId":"sj","name":"chat","startTimeUnixNano":"1795132800000000000","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}}]}"#;
    let mut first = vec![ahead.to_string()];
    first.extend(day.iter().cloned());
    let mut mid = day.clone();
    mid.insert(100, ahead.to_string());
    mid.insert(101, span.to_string());
    let want = decided(&clean);
    for (tag, lines) in [("first", first), ("mid", mid)] {
        let t = Targets::new(&[]).await;
        let r = run(&t, tag, &lines).await;
        assert_eq!(r.stats.too_old, 0, "{tag}");
        assert_eq!(decided(&r), want, "{tag}");
    }
}

/// Shadow mode through the respond stage: the demo's day with every detector in shadow reaches no target at all,
/// while the same day without shadow mode does (so the receivers would have seen it).
#[tokio::test]
async fn shadow_mode_detectors_reach_no_target_through_respond() {
    let day = demo_day();
    let acting = Targets::new(&[]).await;
    let r = run(&acting, "acting", &day).await;
    assert!(r.decisions.iter().any(|d| d.action >= Action::RevokeToken));
    let sent = acting.human_requests().len() + acting.requests("agent-quarantine").len();
    assert!(
        sent > 0,
        "without shadow mode the day's revocations are sent"
    );
    // every detector in shadow mode (the guardrails table is already open in the targets' config)
    let shadow = Targets::new(&[]).await;
    let all = "\"session_hijack\", \"impossible_travel\", \"rate\", \"token_reuse\", \"data_domain\", \"destination_drift\", \"export_volume\", \"new_client\"";
    let shadow = Targets {
        toml: shadow.toml.replacen(
            "[decide.guardrails]\n",
            &format!("[decide.guardrails]\nshadow = [{all}]\n"),
            1,
        ),
        seen: shadow.seen,
    };
    let r = run(&shadow, "shadow", &day).await;
    assert!(
        !r.decisions.is_empty() && r.decisions.iter().all(|d| d.shadow),
        "{:?}",
        r.decisions
    );
    assert_eq!(shadow.human_requests(), Vec::<String>::new());
    assert_eq!(shadow.requests("agent-quarantine"), Vec::<String>::new());
}
