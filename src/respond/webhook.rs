//! Generic signed webhook: the decision record as JSON, for SOAR tools, gateways and agent runtimes that revoke
//! their own tokens.
//!
//! In: decisions whose action the target lists. Out: `POST {url}` with the decision JSON and headers:
//! - `X-Quench-Timestamp`: Unix seconds when sent;
//! - `X-Quench-Signature`: `sha256=` + hex HMAC-SHA256 over `"{timestamp}.{body}"` with the shared secret;
//! - `Idempotency-Key`: the command id, `{decision_id}.{target name}`: the same for every retry and after a
//!   restart, so a receiver can drop a repeated delivery.
//!
//! State: none. A receiver verifies by recomputing the HMAC over the timestamp, a dot and the raw body, comparing
//! in constant time, and rejecting timestamps older than a few minutes. Secret: environment variable `secret_env`
//! (at least 16 bytes).

use super::{
    check, parse_base, secret_from_env, BoxFuture, BuildError, Registered, RespondError, Responder,
    Sample,
};
use crate::decide::Decision;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

pub const NAME: &str = "webhook";

/// `[[respond.targets]] type = "webhook"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Receiver URL. Required.
    pub url: String,
    /// Environment variable with the HMAC secret. Default `"QUENCH_WEBHOOK_SECRET"`.
    #[serde(default = "default_env")]
    pub secret_env: String,
}

fn default_env() -> String {
    "QUENCH_WEBHOOK_SECRET".into()
}

pub fn build(t: toml::Table) -> Result<Box<dyn Responder>, BuildError> {
    let cfg: WebhookConfig = super::parse_target(t)?;
    let url = parse_base("url", &cfg.url)?;
    let secret = secret_from_env("secret_env", &cfg.secret_env)?;
    if secret.len() < 16 {
        return Err(BuildError::new(
            "secret_env",
            cfg.secret_env,
            "the secret must be at least 16 bytes",
        ));
    }
    Ok(Box::new(Webhook {
        url,
        secret: secret.into_bytes(),
    }))
}

pub struct Webhook {
    url: reqwest::Url,
    secret: Vec<u8>,
}

/// `sha256=<hex>` over `"{ts}.{body}"`.
pub fn signature(secret: &[u8], ts: u64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Responder for Webhook {
    fn secrets(&self) -> Vec<String> {
        vec![String::from_utf8_lossy(&self.secret).into_owned()]
    }

    fn send<'a>(
        &'a self,
        http: &'a reqwest::Client,
        d: &'a Decision,
        key: &'a str,
    ) -> BoxFuture<'a, Result<u16, RespondError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(d).map_err(|e| RespondError::Target(e.to_string()))?;
            let ts = (crate::clock::WallTime::now().0 / 1000) as u64;
            let resp = http
                .post(self.url.clone())
                .header("Content-Type", "application/json")
                .header("X-Quench-Timestamp", ts.to_string())
                .header("X-Quench-Signature", signature(&self.secret, ts, &body))
                .header("Idempotency-Key", key)
                .body(body)
                .send()
                .await?;
            check(resp).await
        })
    }
}

/// The registry entry of signed webhooks.
pub const ENTRY: Registered = Registered {
    name: NAME,
    build,
    confirmed_by: None,
    sample: |base, env| Sample {
        table: format!("type = \"{NAME}\"\nurl = \"{base}/hook\"\nsecret_env = \"{env}_HOOK\"\n"),
        env: vec![(format!("{env}_HOOK"), "hook-secret-0123456789abcdef".into())],
        credential_travels: false,
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // python3: hmac.new(b'k', b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"k", 1_700_000_000, br#"{"a":1}"#),
            "sha256=1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3"
        );
    }
}
