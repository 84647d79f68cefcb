//! An S3-compatible server for the tests: moto's `moto_server` (PyPI `moto[server]`) in its own process, or a skip
//! (a failure unless `QUENCH_ALLOW_SKIP=1`) when it is not installed. `.ci/run` installs it.
//!
//! In: nothing. Out: a running server on a free local port, and buckets made on it. State: the server's process
//! (killed when dropped).

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub struct Moto {
    child: std::process::Child,
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `moto_server` (`QUENCH_MOTO_SERVER`, else from PATH), or `None` after [`super::skip`].
pub fn start() -> Option<Moto> {
    let bin = std::env::var("QUENCH_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = match std::process::Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            super::skip(&format!(
                "moto_server is not installed ({e}): python3 -m venv V && V/bin/pip install 'moto[server]', \
                 then put V/bin on PATH (or set QUENCH_MOTO_SERVER)"
            ));
            return None;
        }
        Err(e) => panic!("{bin}: {e}"),
    };
    let m = Moto { child, port };
    // readiness: the server answers HTTP (a Python process takes a second or two to start)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(reply) = m.request("GET", "/", "") {
            if reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200") {
                return Some(m);
            }
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Moto {
    /// One plain HTTP request (moto takes unsigned ones); the whole reply.
    pub fn request(&self, method: &str, path: &str, body: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    pub fn create_bucket(&self, name: &str) {
        let reply = self.request("PUT", &format!("/{name}"), "").unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    /// The keys under `prefix` in `bucket` (ListObjectsV2, up to 1,000).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let reply = self
            .request("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"), "")
            .unwrap();
        reply
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next().map(String::from))
            .collect()
    }

    /// The environment a `quench` process reads its S3 endpoint and credentials from.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "quench-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "quench-test-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}
