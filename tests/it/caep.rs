//! CAEP Security Event Tokens: pushed per RFC 8935 and verifiable with the keys `quench jwks` publishes.
//!
//! A local receiver takes the pushes. Each SET is verified as a receiver would verify it: the key is found by `kid`
//! in the JWK Set printed by the `quench jwks` command, and the signature is checked with OpenSSL from the JWK's
//! public numbers alone. RS256 and ES256 are both covered, and a tampered token must fail.

#![allow(clippy::unwrap_used)]

use crate::support as common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::sign::Verifier;
use quench::decide::{Action, Decision, FindingRecord};
use quench::event::{PrincipalKind, Ts};
use quench::respond::{build_targets, command_id, Dispatcher, RespondConfig};
use serde_json::Value;

/// The receiver of the pushes: records each and accepts it (202).
async fn receiver() -> (std::net::SocketAddr, common::Log) {
    let s = common::serve(|_, _| common::Reply::status("202 Accepted")).await;
    (s.addr, s.log)
}

fn b64d(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// Verify a compact JWS with a public JWK, as a receiver would.
fn verify(jwt: &str, jwk: &Value) -> bool {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let input = format!("{}.{}", parts[0], parts[1]);
    let mut sig = b64d(parts[2]);
    let num = |k: &str| BigNum::from_slice(&b64d(jwk[k].as_str().unwrap())).unwrap();
    let key = match jwk["kty"].as_str().unwrap() {
        "RSA" => PKey::from_rsa(Rsa::from_public_components(num("n"), num("e")).unwrap()).unwrap(),
        "EC" => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
            let k =
                EcKey::from_public_key_affine_coordinates(&group, &num("x"), &num("y")).unwrap();
            assert_eq!(sig.len(), 64, "ES256 signatures are r || s, 32 bytes each");
            let s = EcdsaSig::from_private_components(
                BigNum::from_slice(&sig[..32]).unwrap(),
                BigNum::from_slice(&sig[32..]).unwrap(),
            )
            .unwrap();
            sig = s.to_der().unwrap();
            PKey::from_ec_key(k).unwrap()
        }
        other => panic!("kty {other}"),
    };
    let mut v = Verifier::new(MessageDigest::sha256(), &key).unwrap();
    v.update(input.as_bytes()).unwrap();
    v.verify(&sig).unwrap_or(false)
}

fn decision(action: Action, session: Option<&str>) -> Decision {
    Decision {
        decision_id: format!("{:0>32}", action.as_str().len()),
        decided_at: quench::clock::WallTime::now().as_ts(),
        event_time: Ts(1_763_800_000_000),
        action,
        principal: Some("alice@example.com".into()),
        principal_id: Some("00ualice".into()),
        principal_kind: PrincipalKind::Human,
        session_id: session.map(String::from),
        score: 0.95,
        findings: vec![FindingRecord {
            detector: "session_hijack".into(),
            score: 0.95,
            reason: "session used from a different device and network while live".into(),
            source: None,
            authoritative: true,
        }],
        trust: common::vouched(Some("00ualice")),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caep_sets_are_pushed_per_rfc_8935_and_verify_with_the_published_keys() {
    let (addr, got) = receiver().await;
    let dir = std::env::temp_dir().join(format!("quench-caep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // RS256 from a key file; ES256 from an environment variable
    let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let rsa_file = dir.join("caep-rsa.pem");
    std::fs::write(&rsa_file, rsa.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let ec = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let ec_pem = String::from_utf8(ec.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::env::set_var("QUENCH_TEST_CAEP_EC_KEY", &ec_pem);
    std::env::set_var("QUENCH_TEST_CAEP_BEARER", "receiver-issued-push-token-42");
    let config = format!(
        "[respond]\nenforce = true\n\
         [[respond.targets]]\ntype = \"caep\"\nname = \"itp\"\nurl = \"http://{addr}/ssf/push\"\nissuer = \"https://quench.example.com\"\naudience = \"https://example.okta.com\"\nsigning_key_file = \"{}\"\nauthorization_env = \"QUENCH_TEST_CAEP_BEARER\"\nactions = [\"step_up\", \"terminate_session\"]\n\
         [[respond.targets]]\ntype = \"caep\"\nname = \"saas\"\nurl = \"http://{addr}/events\"\nissuer = \"https://quench.example.com\"\naudience = \"saas-receiver\"\nsigning_key_env = \"QUENCH_TEST_CAEP_EC_KEY\"\nsubject_format = \"iss_sub\"\nsubject_issuer = \"https://example.okta.com\"\nactions = [\"terminate_session\"]\n",
        rsa_file.display()
    );
    let cfg_path = dir.join("quench.toml");
    std::fs::write(&cfg_path, &config).unwrap();

    // The published keys, from the command an operator runs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["jwks", "--config"])
        .arg(&cfg_path)
        .env("QUENCH_TEST_CAEP_EC_KEY", &ec_pem)
        .env("QUENCH_TEST_CAEP_BEARER", "receiver-issued-push-token-42")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jwks: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter().all(|k| k.get("d").is_none()),
        "private parts published: {jwks}"
    );

    let respond: RespondConfig = toml::from_str::<toml::Table>(&config).unwrap()["respond"]
        .clone()
        .try_into()
        .unwrap();
    let targets = build_targets(&respond).unwrap();
    let disp = Dispatcher::new(respond, targets, None).unwrap();
    let end = decision(Action::TerminateSession, Some("102aliceS3ss"));
    let step = decision(Action::StepUp, None);
    for (target, d) in [("itp", &end), ("saas", &end), ("itp", &step)] {
        let r = disp
            .deliver(target, d, quench::clock::WallTime::now())
            .await;
        assert_eq!(r.result, Ok(202), "{target}: {r:?}");
    }

    let got = got.lock().unwrap();
    assert_eq!(got.len(), 3);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("content-type"), Some("application/secevent+jwt"));
        assert_eq!(r.header("accept"), Some("application/json"));
        let jwt = std::str::from_utf8(&r.body).unwrap();
        let header: Value = serde_json::from_slice(&b64d(jwt.split('.').next().unwrap())).unwrap();
        assert_eq!(header["typ"], "secevent+jwt");
        let jwk = keys.iter().find(|k| k["kid"] == header["kid"]).unwrap();
        assert_eq!(jwk["alg"], header["alg"]);
        assert!(
            verify(jwt, jwk),
            "request {i}: the signature does not verify"
        );
        // a receiver must reject a token whose claims were altered
        let mut parts: Vec<String> = jwt.split('.').map(String::from).collect();
        let mut claims: Value = serde_json::from_slice(&b64d(&parts[1])).unwrap();
        claims["sub_id"] = serde_json::json!({"format": "email", "email": "bob@example.com"});
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert!(!verify(&parts.join("."), jwk), "a tampered SET verified");
    }
    let claims = |i: usize| -> Value {
        let jwt = std::str::from_utf8(&got[i].body).unwrap();
        serde_json::from_slice(&b64d(jwt.split('.').nth(1).unwrap())).unwrap()
    };

    // 1: session-revoked to the ITP receiver, RS256, with its bearer token and a complex subject
    let c = claims(0);
    assert_eq!(got[0].target, "/ssf/push");
    assert_eq!(
        got[0].header("authorization"),
        Some("Bearer receiver-issued-push-token-42")
    );
    assert_eq!(c["iss"], "https://quench.example.com");
    assert_eq!(c["aud"], "https://example.okta.com");
    assert_eq!(c["jti"], command_id(&end.decision_id, "itp"));
    assert_eq!(c["txn"], end.decision_id.as_str());
    assert!(c["iat"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        c["sub_id"],
        serde_json::json!({"format": "complex", "user": {"format": "email", "email": "alice@example.com"},
                           "session": {"format": "opaque", "id": "102aliceS3ss"}})
    );
    let ev = &c["events"]["https://schemas.openid.net/secevent/caep/event-type/session-revoked"];
    assert_eq!(ev["event_timestamp"], 1_763_800_000);
    assert_eq!(ev["initiating_entity"], "policy");
    assert!(ev["reason_admin"]["en"]
        .as_str()
        .unwrap()
        .contains("different device"));
    assert_eq!(c["events"].as_object().unwrap().len(), 1);

    // 2: the same decision to the SaaS receiver, ES256, iss_sub subject, no Authorization header
    let c = claims(1);
    assert_eq!(got[1].header("authorization"), None);
    assert_eq!(
        got[1].header("content-type"),
        Some("application/secevent+jwt")
    );
    assert_eq!(c["jti"], command_id(&end.decision_id, "saas"));
    assert_eq!(
        c["sub_id"]["user"],
        serde_json::json!({"format": "iss_sub", "iss": "https://example.okta.com", "sub": "00ualice"})
    );

    // 3: a step-up is a token-claims-change carrying the risk claim
    let c = claims(2);
    let ev =
        &c["events"]["https://schemas.openid.net/secevent/caep/event-type/token-claims-change"];
    assert_eq!(ev["claims"]["quench_risk"]["action"], "step_up");
    assert_eq!(
        c["sub_id"],
        serde_json::json!({"format": "email", "email": "alice@example.com"})
    );
    let _ = std::fs::remove_dir_all(&dir);
}
