//! A local HTTP endpoint standing in for the IdP revocation APIs in `quench demo` and the tests.
//!
//! In: HTTP/1.1 requests on 127.0.0.1. Out: the vendor's success status for a well-formed request (Okta
//! `DELETE /api/v1/users/{id}/sessions?oauthTokens=true` with the expected SSWS token → 204; a webhook `POST
//! /hooks/quench` whose HMAC signature verifies → 202), 401/404 otherwise. State: every request received.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The running stub.
pub struct Stub {
    pub addr: std::net::SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

/// Start the stub; it checks the Okta token and the webhook secret it is given.
pub async fn start(okta_token: String, webhook_secret: String) -> std::io::Result<Stub> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let received = Arc::new(Mutex::new(Vec::new()));
    let rec = received.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let rec = rec.clone();
            let (okta_token, secret) = (okta_token.clone(), webhook_secret.clone());
            tokio::spawn(async move {
                let Some(mut r) = read_request(&mut sock).await else {
                    return;
                };
                r.status = judge(&r, &okta_token, &secret);
                let reply = format!(
                    "HTTP/1.1 {} Stub\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    r.status
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                if let Ok(mut v) = rec.lock() {
                    v.push(r);
                }
            });
        }
    });
    Ok(Stub { addr, received })
}

fn judge(r: &Received, okta_token: &str, secret: &str) -> u16 {
    let path = r.target.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (r.method.as_str(), segs.as_slice()) {
        ("DELETE", ["api", "v1", "users", _, "sessions"]) => {
            if r.header("authorization") != Some(&format!("SSWS {okta_token}")) {
                401
            } else if !r.target.ends_with("?oauthTokens=true") {
                400
            } else {
                204
            }
        }
        ("POST", ["hooks", "quench"]) => {
            let ts: u64 = r
                .header("x-quench-timestamp")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let sig = crate::respond::webhook_signature(secret.as_bytes(), ts, &r.body);
            if r.header("x-quench-signature") == Some(sig.as_str())
                && r.header("idempotency-key").is_some()
            {
                202
            } else {
                401
            }
        }
        _ => 404,
    }
}

/// Read one HTTP/1.1 request (head and `Content-Length` body).
pub async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        method,
        target,
        headers,
        body,
        status: 0,
    })
}
