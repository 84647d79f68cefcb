//! OpenID CAEP: Security Event Tokens pushed to any Shared Signals receiver (Okta Identity Threat Protection,
//! an SSF-enabled IdP or SaaS, your own).
//!
//! In: decisions whose action the target lists. Out: one signed SET (RFC 8417 JWT, header `typ: secevent+jwt`)
//! per decision, pushed per RFC 8935: `POST {url}` with `Content-Type: application/secevent+jwt` and `Accept:
//! application/json`; success is `202 Accepted`.
//! - `revoke_token` and `terminate_session` send CAEP `session-revoked`;
//! - `step_up` (and `alert`, if listed) sends CAEP `token-claims-change` with the claim `quench_risk`
//!   (`{"action": …, "score": …}`) so the receiver can demand a new authentication.
//!
//! The subject is the SSF `sub_id`: `email` (default), `iss_sub` (the IdP's issuer and user id) or `opaque`; when
//! the decision names a session, a `complex` subject adds it as `{"format": "opaque", "id": …}`. `jti` is the
//! command id, so a receiver can drop a repeated delivery; `txn` is the decision id. The signing key (RSA of at
//! least 2048 bits → RS256, or EC P-256 → ES256) comes from a PEM file or an environment variable; its public
//! half is what `quench jwks` prints for the receiver, with the RFC 7638 thumbprint as `kid`.
//! State: none.

use super::address;
use super::{
    check, parse_base, parse_target, secret_from_env, BoxFuture, BuildError, Registered,
    RespondError, Responder, Sample,
};
use crate::decide::{Action, Decision};
use base64::Engine;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::EcGroup;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

pub const NAME: &str = "caep";

/// The CAEP event type URIs Quench sends.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
pub const TOKEN_CLAIMS_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/token-claims-change";

/// `[[respond.targets]] type = "caep"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaepConfig {
    /// The receiver's push endpoint (RFC 8935). Required.
    pub url: String,
    /// `iss`: this transmitter's identifier, as registered with the receiver. Required.
    pub issuer: String,
    /// `aud`: the receiver's audience value. Required.
    pub audience: String,
    /// File holding the PEM private signing key. Default: none (then `signing_key_env` is read).
    pub signing_key_file: Option<std::path::PathBuf>,
    /// Environment variable holding the PEM private signing key. Default `"QUENCH_CAEP_SIGNING_KEY"`.
    #[serde(default = "default_key_env")]
    pub signing_key_env: String,
    /// `kid` in the JWS header. Default: the key's RFC 7638 JWK thumbprint.
    pub key_id: Option<String>,
    /// Environment variable with a bearer token the receiver requires on pushes. Default: none (no header).
    pub authorization_env: Option<String>,
    /// `sub_id` format: `"email"`, `"iss_sub"` or `"opaque"`. Default `"email"`.
    #[serde(default = "default_format")]
    pub subject_format: String,
    /// For `iss_sub`: the issuer the user ids belong to (e.g. `https://example.okta.com`). Required with
    /// `iss_sub`.
    pub subject_issuer: Option<String>,
}

fn default_key_env() -> String {
    "QUENCH_CAEP_SIGNING_KEY".into()
}
fn default_format() -> String {
    "email".into()
}

#[derive(Clone, Copy)]
enum Alg {
    Rs256,
    Es256,
}

pub struct Caep {
    url: reqwest::Url,
    issuer: String,
    audience: String,
    key: PKey<Private>,
    alg: Alg,
    kid: String,
    jwk: serde_json::Value,
    bearer: Option<String>,
    format: String,
    subject_issuer: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The public JWK of `key` (without `kid`) and its algorithm.
fn public_jwk(key: &PKey<Private>) -> Result<(Alg, serde_json::Value), String> {
    match key.id() {
        Id::RSA => {
            let rsa = key.rsa().map_err(|e| e.to_string())?;
            if rsa.size() < 256 {
                return Err(format!(
                    "the signing key is RSA-{}; allowed: RSA of 2048 bits or more, or EC P-256",
                    rsa.size() * 8
                ));
            }
            Ok((
                Alg::Rs256,
                json!({"kty": "RSA", "e": b64(&rsa.e().to_vec()), "n": b64(&rsa.n().to_vec())}),
            ))
        }
        Id::EC => {
            let ec = key.ec_key().map_err(|e| e.to_string())?;
            if ec.group().curve_name() != Some(Nid::X9_62_PRIME256V1) {
                return Err(
                    "the signing key is EC on another curve; allowed: EC P-256 or RSA of 2048 bits or more".into(),
                );
            }
            let group =
                EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(|e| e.to_string())?;
            let (mut x, mut y) = (
                BigNum::new().map_err(|e| e.to_string())?,
                BigNum::new().map_err(|e| e.to_string())?,
            );
            let mut ctx = BigNumContext::new().map_err(|e| e.to_string())?;
            ec.public_key()
                .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
                .map_err(|e| e.to_string())?;
            let (x, y) = (
                x.to_vec_padded(32).map_err(|e| e.to_string())?,
                y.to_vec_padded(32).map_err(|e| e.to_string())?,
            );
            Ok((
                Alg::Es256,
                json!({"kty": "EC", "crv": "P-256", "x": b64(&x), "y": b64(&y)}),
            ))
        }
        _ => Err(
            "the signing key is neither RSA nor EC; allowed: RSA of 2048 bits or more, or EC P-256"
                .into(),
        ),
    }
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, base64url.
fn thumbprint(jwk: &serde_json::Value) -> String {
    let canonical = if jwk["kty"] == "RSA" {
        format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, jwk["e"], jwk["n"])
    } else {
        format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            jwk["crv"], jwk["x"], jwk["y"]
        )
    };
    b64(&Sha256::digest(canonical.as_bytes()))
}

pub fn build(t: toml::Table) -> Result<Box<dyn Responder>, BuildError> {
    let cfg: CaepConfig = parse_target(t)?;
    let url = parse_base("url", &cfg.url)?;
    let pem = match &cfg.signing_key_file {
        Some(p) => std::fs::read(p).map_err(|e| {
            BuildError::new("signing_key_file", p.display().to_string(), e.to_string())
        })?,
        None => secret_from_env("signing_key_env", &cfg.signing_key_env)?.into_bytes(),
    };
    let key_name = match &cfg.signing_key_file {
        Some(_) => "signing_key_file",
        None => "signing_key_env",
    };
    let key_value = match &cfg.signing_key_file {
        Some(p) => p.display().to_string(),
        None => cfg.signing_key_env.clone(),
    };
    let key = PKey::private_key_from_pem(&pem).map_err(|_| {
        BuildError::new(
            key_name,
            &key_value,
            "the signing key is not a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)",
        )
    })?;
    let (alg, mut jwk) =
        public_jwk(&key).map_err(|why| BuildError::new(key_name, &key_value, why))?;
    let kid = cfg.key_id.clone().unwrap_or_else(|| thumbprint(&jwk));
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    jwk["alg"] = json!(match alg {
        Alg::Rs256 => "RS256",
        Alg::Es256 => "ES256",
    });
    match (cfg.subject_format.as_str(), &cfg.subject_issuer) {
        ("email" | "opaque", _) | ("iss_sub", Some(_)) => {}
        ("iss_sub", None) => {
            return Err(BuildError::new(
                "subject_issuer",
                "",
                "subject_format = \"iss_sub\" needs subject_issuer",
            ))
        }
        (other, _) => {
            return Err(BuildError::new(
                "subject_format",
                other,
                "allowed: email, iss_sub, opaque",
            ))
        }
    }
    let bearer = cfg
        .authorization_env
        .as_deref()
        .map(|v| secret_from_env("authorization_env", v))
        .transpose()?;
    Ok(Box::new(Caep {
        url,
        issuer: cfg.issuer,
        audience: cfg.audience,
        key,
        alg,
        kid,
        jwk,
        bearer,
        format: cfg.subject_format,
        subject_issuer: cfg.subject_issuer,
    }))
}

impl Caep {
    /// The SSF subject of the decision's user, in the configured format.
    fn user_subject(&self, d: &Decision) -> Result<serde_json::Value, RespondError> {
        let missing =
            |what: &str| RespondError::Target(format!("CAEP subject: the decision has no {what}"));
        Ok(match self.format.as_str() {
            "email" => {
                let email =
                    address::verified_email(d)?.ok_or_else(|| missing("IdP-verified e-mail"))?;
                json!({"format": "email", "email": email})
            }
            "iss_sub" => {
                let sub = match d.trust.principal_vendor {
                    Some(_) => d
                        .principal_id
                        .as_deref()
                        .map(|s| address::safe_id("principal id", s)),
                    None => None,
                }
                .transpose()?
                .ok_or_else(|| missing("vouched-for principal id"))?;
                json!({"format": "iss_sub", "iss": self.subject_issuer, "sub": sub})
            }
            _ => {
                let vouched_id = match d.trust.principal_vendor {
                    Some(_) => d.principal_id.as_deref(),
                    None => None,
                };
                let id = address::verified_email(d)?
                    .or(vouched_id)
                    .ok_or_else(|| missing("vouched-for principal"))?;
                let id = address::safe_id("principal", id)?;
                json!({"format": "opaque", "id": id})
            }
        })
    }

    /// The SET's claims for decision `d` (`jti` = the command id).
    pub fn claims(
        &self,
        d: &Decision,
        jti: &str,
        iat: i64,
    ) -> Result<serde_json::Value, RespondError> {
        let user = self.user_subject(d)?;
        let session = match d.trust.session_vendor {
            Some(_) => d.session_id.as_deref(),
            None => None,
        };
        let sub_id = match session {
            Some(s) => {
                json!({"format": "complex", "user": user, "session": {"format": "opaque", "id": s}})
            }
            None => user,
        };
        let reasons: Vec<&str> = d.findings.iter().map(|f| f.reason.as_str()).collect();
        let mut event = json!({
            "event_timestamp": d.event_time.0 / 1000,
            "initiating_entity": "policy",
            "reason_admin": {"en": format!("Quench {} (risk {:.2}): {}", d.action.as_str(), d.score, reasons.join("; "))},
        });
        let uri = match d.action {
            Action::RevokeToken | Action::TerminateSession => {
                event["reason_user"] =
                    json!({"en": "Your session was ended to protect your account."});
                SESSION_REVOKED
            }
            Action::StepUp | Action::Alert => {
                event["claims"] =
                    json!({"quench_risk": {"action": d.action.as_str(), "score": d.score}});
                TOKEN_CLAIMS_CHANGE
            }
        };
        Ok(json!({
            "iss": self.issuer,
            "aud": self.audience,
            "jti": jti,
            "iat": iat,
            "txn": d.decision_id,
            "sub_id": sub_id,
            "events": {uri: event},
        }))
    }

    /// The compact JWS of `claims`.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, RespondError> {
        let alg = match self.alg {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        };
        let header = json!({"alg": alg, "typ": "secevent+jwt", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let err =
            |e: openssl::error::ErrorStack| RespondError::Credentials(format!("signing: {e}"));
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key).map_err(err)?;
        signer.update(input.as_bytes()).map_err(err)?;
        let der = signer.sign_to_vec().map_err(err)?;
        let sig = match self.alg {
            Alg::Rs256 => der,
            Alg::Es256 => {
                // JWS wants the raw 32-byte r and s, not DER
                let s = EcdsaSig::from_der(&der).map_err(err)?;
                let mut raw = s.r().to_vec_padded(32).map_err(err)?;
                raw.extend(s.s().to_vec_padded(32).map_err(err)?);
                raw
            }
        };
        Ok(format!("{input}.{}", b64(&sig)))
    }
}

impl Responder for Caep {
    fn secrets(&self) -> Vec<String> {
        self.bearer.iter().cloned().collect()
    }

    fn public_key(&self) -> Option<serde_json::Value> {
        Some(self.jwk.clone())
    }

    fn send<'a>(
        &'a self,
        http: &'a reqwest::Client,
        d: &'a Decision,
        key: &'a str,
    ) -> BoxFuture<'a, Result<u16, RespondError>> {
        Box::pin(async move {
            let claims = self.claims(d, key, crate::clock::WallTime::now().0 / 1000)?;
            let set = self.sign(&claims)?;
            let mut req = http
                .post(self.url.clone())
                .header("Content-Type", "application/secevent+jwt")
                .header("Accept", "application/json")
                .body(set);
            if let Some(b) = &self.bearer {
                req = req.bearer_auth(b);
            }
            check(req.send().await?).await
        })
    }
}

/// The registry entry of OpenID CAEP/SSF transmission.
pub const ENTRY: Registered = Registered {
    name: NAME,
    build,
    confirmed_by: None,
    sample: |base, env| Sample {
        table: format!(
            "type = \"{NAME}\"\nurl = \"{base}/ssf\"\nissuer = \"https://q\"\naudience = \"r\"\n\
             signing_key_env = \"{env}_CAEP_KEY\"\nauthorization_env = \"{env}_CAEP\"\n"
        ),
        env: vec![
            (format!("{env}_CAEP_KEY"), sample_key()),
            (
                format!("{env}_CAEP"),
                "caep-receiver-push-bearer-secret".into(),
            ),
        ],
        credential_travels: true,
    },
};

/// A fresh EC P-256 private key as PKCS#8 PEM, for [`ENTRY`]'s sample (empty if OpenSSL cannot make one; the
/// sample's build then fails and says so).
fn sample_key() -> String {
    EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
        .and_then(|g| openssl::ec::EcKey::generate(&g))
        .and_then(PKey::from_ec_key)
        .and_then(|k| k.private_key_to_pem_pkcs8())
        .ok()
        .and_then(|pem| String::from_utf8(pem).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_is_rfc_7638s_example() {
        // RFC 7638 §3.1: the example RSA key's thumbprint
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
        });
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn config_errors_name_what_is_allowed() {
        let k = openssl::ec::EcKey::generate(&EcGroup::from_curve_name(Nid::SECP384R1).unwrap())
            .unwrap();
        let pem = String::from_utf8(
            PKey::from_ec_key(k)
                .unwrap()
                .private_key_to_pem_pkcs8()
                .unwrap(),
        )
        .unwrap();
        std::env::set_var("QUENCH_TEST_CAEP_P384", pem);
        let t: toml::Table = toml::from_str(
            "url = \"https://r.example/push\"\nissuer = \"https://quench.example\"\naudience = \"r\"\nsigning_key_env = \"QUENCH_TEST_CAEP_P384\"\n",
        )
        .unwrap();
        let e = build(t).err().unwrap().to_string();
        assert!(e.contains("EC P-256"), "{e}");
        std::env::set_var("QUENCH_TEST_CAEP_JUNK", "not a key");
        let t: toml::Table = toml::from_str(
            "url = \"https://r.example/push\"\nissuer = \"i\"\naudience = \"r\"\nsigning_key_env = \"QUENCH_TEST_CAEP_JUNK\"\n",
        )
        .unwrap();
        assert!(build(t)
            .err()
            .unwrap()
            .to_string()
            .contains("not a PEM private key"));
    }
}
