//! HTTP for the tests: one local server that records every request and answers as the test scripts it, and the
//! one strict server, the vendors' published spec served by a validating mock (`../shared/tools/spec-mock`,
//! Stoplight Prism) behind a recording pass-through.
//!
//! In: a test's answer function, or a spec file. Out: the bound address and the log of requests. State: the server
//! tasks, the requests received, and the connections a script holds open unanswered.

#![allow(clippy::unwrap_used, dead_code, unused_imports)]

use quench::lab::stub::{read_request, Received};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every request a [`serve`] server read, in the order it read them.
pub type Log = Arc<Mutex<Vec<Received>>>;

/// What a [`serve`] server answers one request with.
pub enum Reply {
    /// A status line's code and reason (`"202 Accepted"`), a content type if any, and a body.
    Answer {
        status: String,
        content_type: Option<&'static str>,
        body: Vec<u8>,
    },
    /// No answer: the connection stays open (a target that hangs).
    Hold,
}

impl Reply {
    /// `status` (e.g. `"204 No Content"`) and an empty body.
    pub fn status(status: impl Into<String>) -> Reply {
        Reply::Answer {
            status: status.into(),
            content_type: None,
            body: Vec::new(),
        }
    }

    /// `status` with a JSON body.
    pub fn json(status: impl Into<String>, body: impl Into<String>) -> Reply {
        Reply::Answer {
            status: status.into(),
            content_type: Some("application/json"),
            body: body.into().into_bytes(),
        }
    }

    /// `status` with a plain body.
    pub fn text(status: impl Into<String>, body: impl Into<String>) -> Reply {
        Reply::Answer {
            status: status.into(),
            content_type: None,
            body: body.into().into_bytes(),
        }
    }
}

/// A request's head rebuilt from what was read (request line, headers with their names lower-cased, blank line):
/// what servers that echo a request send back, before its body.
pub fn head_of(r: &Received) -> String {
    let mut s = format!("{} {} HTTP/1.1\r\n", r.method, r.target);
    for (k, v) in &r.headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// A running [`serve`] server.
pub struct Server {
    pub addr: std::net::SocketAddr,
    /// Every request read.
    pub log: Log,
    /// The connections [`Reply::Hold`] keeps open (clearing it closes them).
    pub held: Arc<Mutex<Vec<tokio::net::TcpStream>>>,
}

/// A local HTTP/1.1 server. Each request is read whole, logged, and answered by `answer`, given the request and
/// how many requests came before it (connections are served concurrently; the count is the order they were
/// read in). Every answer closes its connection. A connection that sends bytes that are no HTTP request is
/// logged and answered too, as a request with the method `UNREADABLE`, so a test that expects no request sees
/// it; one closed before sending anything is not a request.
pub async fn serve<F>(answer: F) -> Server
where
    F: Fn(&Received, usize) -> Reply + Send + Sync + 'static,
{
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let (lg, answer) = (log.clone(), Arc::new(answer));
    let held = Arc::new(Mutex::new(Vec::new()));
    let server = Server {
        addr,
        log: log.clone(),
        held: held.clone(),
    };
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            let (lg, answer, held) = (lg.clone(), answer.clone(), held.clone());
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if sock.peek(&mut first).await.unwrap_or(0) == 0 {
                    return;
                }
                let r = read_request(&mut sock).await.unwrap_or_else(|| Received {
                    method: "UNREADABLE".into(),
                    target: String::new(),
                    headers: Vec::new(),
                    body: Vec::new(),
                    status: 0,
                });
                // the log's lock is not held while `answer` runs: a failed check in one answer (a panic) does not
                // take the requests after it down too
                let n = {
                    let mut log = lg.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    log.push(r.clone());
                    log.len() - 1
                };
                let reply = answer(&r, n);
                match reply {
                    Reply::Answer {
                        status,
                        content_type,
                        body,
                    } => {
                        let ct = content_type
                            .map(|c| format!("content-type: {c}\r\n"))
                            .unwrap_or_default();
                        let head = format!(
                            "HTTP/1.1 {status}\r\n{ct}content-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = sock.write_all(head.as_bytes()).await;
                        let _ = sock.write_all(&body).await;
                    }
                    Reply::Hold => held.lock().unwrap().push(sock),
                }
            });
        }
    });
    server
}

/// A local HTTP server that reads each request and answers with `status` (e.g. `"204 No Content"`).
pub async fn accept_all(status: &'static str) -> std::net::SocketAddr {
    serve(move |_, _| Reply::status(status)).await.addr
}

pub struct SpecMock {
    child: Child,
    pub url: String,
    /// The same mock behind a recording pass-through: what the targets are pointed at.
    pub via: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl SpecMock {
    /// The request lines (`METHOD /path?query`) the targets sent since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// A pass-through in front of `upstream` (`http://host:port[/prefix]`) that records each request's method and
/// path: the spec check says a request is *a* valid call; this says it is *the* call (a valid `DELETE
/// /api/v1/users/{id}` deletes the user).
fn recording_proxy(upstream: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let rest = upstream.trim_start_matches("http://");
    let (hostport, prefix) = match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), String::new()),
    };
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let l = tokio::net::TcpListener::from_std(std_listener).unwrap();
        while let Ok((mut client, _)) = l.accept().await {
            let (log, hostport) = (log.clone(), hostport.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let n = client.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = client.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let mut lines = head.split("\r\n");
                let first = lines.next().unwrap_or_default().to_string();
                log.lock().unwrap().push(
                    first
                        .rsplit_once(' ')
                        .map_or(first.clone(), |(a, _)| a.to_string()),
                );
                let mut out = format!("{first}\r\n");
                for l in lines.filter(|l| !l.is_empty()) {
                    if !l.to_ascii_lowercase().starts_with("connection:") {
                        out.push_str(l);
                        out.push_str("\r\n");
                    }
                }
                out.push_str("Connection: close\r\n\r\n");
                let mut up = tokio::net::TcpStream::connect(&hostport).await.unwrap();
                up.write_all(out.as_bytes()).await.unwrap();
                up.write_all(&buf[head_end..]).await.unwrap();
                let mut resp = Vec::new();
                let _ = up.read_to_end(&mut resp).await;
                let _ = client.write_all(&resp).await;
                let _ = client.shutdown().await;
            });
        }
    });
    (format!("http://{addr}{prefix}"), seen)
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

pub fn shared() -> Option<PathBuf> {
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

pub fn spec_mock(shared: &Path, spec: &str, prefixes: &[&str]) -> SpecMock {
    spec_mock_file(shared, &shared.join("data/apis").join(spec), prefixes)
}

pub fn spec_mock_file(shared: &Path, spec: &Path, prefixes: &[&str]) -> SpecMock {
    use std::os::unix::process::CommandExt;
    let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let mut child = Command::new("bash")
        .arg(shared.join("tools/spec-mock"))
        .arg(spec)
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
        .unwrap_or_else(|_| panic!("spec-mock for {} did not start", spec.display()));
    let (via, seen) = recording_proxy(&url);
    SpecMock {
        child,
        url,
        via,
        seen,
    }
}
