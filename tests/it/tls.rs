//! TLS to revocation targets is verified: a receiver whose certificate comes from a private CA is refused until
//! that CA is given in `respond.ca_bundle`, and then accepted. The CA and the server certificate are made here with
//! OpenSSL; the server is a real TLS endpoint on 127.0.0.1.

#![allow(clippy::unwrap_used)]

use crate::support as common;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use quench::respond::{build_targets, Dispatcher, RespondConfig};
use std::io::{Read, Write};

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn cert(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>, ca: bool) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(
        &BigNum::from_u32(if ca { 1 } else { 2 })
            .unwrap()
            .to_asn1_integer()
            .unwrap(),
    )
    .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map(|(c, _)| c.subject_name()).unwrap_or(&name))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(KeyUsage::new().key_cert_sign().crl_sign().build().unwrap())
            .unwrap();
    } else {
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    b.sign(
        issuer.map(|(_, k)| k).unwrap_or(key),
        MessageDigest::sha256(),
    )
    .unwrap();
    b.build()
}

/// A TLS server answering every request with 202; returns its port.
fn tls_server(cert: X509, key: PKey<Private>) -> u16 {
    let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    a.set_certificate(&cert).unwrap();
    a.set_private_key(&key).unwrap();
    let acceptor = a.build();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            // a client that refuses the certificate ends the handshake: just go on
            if let Ok(mut tls) = acceptor.accept(s) {
                let mut buf = [0u8; 8192];
                let _ = tls.read(&mut buf);
                let _ = tls.write_all(
                    b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                let _ = tls.shutdown();
            }
        }
    });
    port
}

#[tokio::test]
async fn a_private_ca_is_refused_until_it_is_in_the_ca_bundle() {
    let ca_key = key();
    let ca = cert("Quench Test Root CA", &ca_key, None, true);
    let leaf_key = key();
    let leaf = cert("localhost", &leaf_key, Some((&ca, &ca_key)), false);
    let port = tls_server(leaf, leaf_key);
    let dir = std::env::temp_dir().join(format!("quench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("ca.pem");
    std::fs::write(&bundle, ca.to_pem().unwrap()).unwrap();
    std::env::set_var("QUENCH_TEST_TLS_SECRET", "tls-webhook-secret-0123456789");
    let target = format!(
        "enforce = true\n[[targets]]\ntype = \"webhook\"\nurl = \"https://localhost:{port}/hook\"\nsecret_env = \"QUENCH_TEST_TLS_SECRET\"\n"
    );

    // the system roots do not know the private CA: refused, nothing delivered
    let cfg: RespondConfig = toml::from_str(&format!("max_attempts = 1\n{target}")).unwrap();
    let disp = Dispatcher::new(cfg.clone(), build_targets(&cfg).unwrap(), None).unwrap();
    let r = disp
        .deliver(
            "webhook",
            &common::agent_revocation("7"),
            quench::clock::WallTime::now(),
        )
        .await;
    let e = r.result.unwrap_err();
    assert!(e.starts_with("transport"), "{e}");

    // with the CA in ca_bundle the same receiver is verified and accepted
    let cfg: RespondConfig = toml::from_str(&format!(
        "max_attempts = 1\nca_bundle = \"{}\"\n{target}",
        bundle.display()
    ))
    .unwrap();
    let disp = Dispatcher::new(cfg.clone(), build_targets(&cfg).unwrap(), None).unwrap();
    let r = disp
        .deliver(
            "webhook",
            &common::agent_revocation("7"),
            quench::clock::WallTime::now(),
        )
        .await;
    assert_eq!(r.result, Ok(202));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A certificate the CA signed for another name is refused even with the CA trusted: here the receiver's
/// certificate names `localhost` and the target is configured by address.
#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused_even_from_a_trusted_ca() {
    let ca_key = key();
    let ca = cert("Quench Test Root CA", &ca_key, None, true);
    let leaf_key = key();
    let leaf = cert("localhost", &leaf_key, Some((&ca, &ca_key)), false);
    let port = tls_server(leaf, leaf_key);
    let dir = std::env::temp_dir().join(format!("quench-tls-name-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("ca.pem");
    std::fs::write(&bundle, ca.to_pem().unwrap()).unwrap();
    std::env::set_var(
        "QUENCH_TEST_TLS_NAME_SECRET",
        "tls-webhook-secret-0123456789",
    );
    let cfg = |host: &str| -> RespondConfig {
        toml::from_str(&format!(
            "max_attempts = 1\nca_bundle = \"{}\"\nenforce = true\n[[targets]]\ntype = \"webhook\"\nurl = \"https://{host}:{port}/hook\"\nsecret_env = \"QUENCH_TEST_TLS_NAME_SECRET\"\n",
            bundle.display()
        ))
        .unwrap()
    };
    let deliver = |cfg: RespondConfig| async move {
        let disp = Dispatcher::new(cfg.clone(), build_targets(&cfg).unwrap(), None).unwrap();
        disp.deliver(
            "webhook",
            &common::agent_revocation("8"),
            quench::clock::WallTime::now(),
        )
        .await
        .result
    };
    let e = deliver(cfg("127.0.0.1")).await.unwrap_err();
    assert!(e.starts_with("transport"), "{e}");
    // the same receiver by the name on its certificate is accepted
    assert_eq!(deliver(cfg("localhost")).await, Ok(202));
    let _ = std::fs::remove_dir_all(&dir);
}
