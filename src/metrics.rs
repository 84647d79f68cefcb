//! Metrics: a running engine's counters in the Prometheus text format, at `GET /metrics` on `[metrics] listen`.
//!
//! In: snapshots of the pipeline's counts (the Kafka loop publishes one at every offset commit), the respond
//! stage's counters and the outbox's progress; connections. Out: HTTP/1.1 responses. State: the connections being
//! served, at most [`MAX_CONNECTIONS`].
//!
//! The endpoint is reachable by whoever can reach the port, so it bounds what a client can hold: a connection
//! must send its request head (at most [`MAX_HEAD`] bytes, else 431) and take its answer within [`CONN_TIMEOUT`],
//! else it is closed; a new connection beyond [`MAX_CONNECTIONS`] closes the oldest still open, so that idle
//! connections can neither pile up nor keep a scraper out; and an accept error (say, out of file descriptors) is
//! logged and retried after [`ACCEPT_BACKOFF`], never the end of the endpoint.

use crate::pipeline::Stats;
use crate::respond::outbox::Progress;
use crate::respond::Dispatcher;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Time a connection has to send its request head and take the answer.
pub const CONN_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; a new one beyond this closes the oldest.
pub const MAX_CONNECTIONS: usize = 64;
/// Bytes of a request head read at most.
pub const MAX_HEAD: usize = 8 * 1024;
/// Wait after an accept error before accepting again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Why a connection got no metrics.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("no request head and answer within {} s", CONN_TIMEOUT.as_secs())]
    Timeout,
    #[error("request head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("closed before the end of the request head")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where the numbers come from.
#[derive(Clone)]
pub struct Sources {
    pub stats: watch::Receiver<Stats>,
    pub dispatcher: Dispatcher,
    pub outbox: watch::Receiver<Progress>,
}

fn counter(out: &mut String, name: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

fn gauge(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

/// The current numbers in the Prometheus text exposition format.
pub fn render(s: &Sources) -> String {
    let st = s.stats.borrow().clone();
    let o = *s.outbox.borrow();
    let r = s.dispatcher.stats();
    let mut out = String::new();
    counter(
        &mut out,
        "quench_records_total",
        "Input records processed.",
        &[("", st.messages)],
    );
    counter(
        &mut out,
        "quench_events_total",
        "Unified events normalized from them.",
        &[("", st.events)],
    );
    let rejected: u64 = st.rejected.values().sum();
    counter(
        &mut out,
        "quench_dead_letters_total",
        "Input records sent to the dead-letter topic.",
        &[("", rejected)],
    );
    counter(
        &mut out,
        "quench_findings_total",
        "Detector findings.",
        &[("", st.findings)],
    );
    counter(
        &mut out,
        "quench_events_too_old_total",
        "Events older than the state horizon (normalize.max_age_secs), kept out of state.",
        &[("", st.too_old)],
    );
    counter(
        &mut out,
        "quench_late_events_total",
        "Events that arrived behind the watermark (normalize.allowed_lateness_secs): processed all the same.",
        &[("", st.late)],
    );
    counter(
        &mut out,
        "quench_reorder_overflow_total",
        "Events the reorder hold (normalize.reorder_secs) released before their time because it was full.",
        &[("", st.reorder_overflow)],
    );
    gauge(
        &mut out,
        "quench_reorder_held_events",
        "Events in the reorder hold now, waiting for their event-time turn.",
        st.reorder_held,
    );
    counter(
        &mut out,
        "quench_evidence_rows_total",
        "Rows the evidence store wrote (events, findings, decisions, commands).",
        &[("", st.evidence_rows)],
    );
    counter(
        &mut out,
        "quench_evidence_uploaded_files_total",
        "Evidence files put into object storage ([evidence] object_store).",
        &[("", st.evidence_uploaded_files)],
    );
    counter(
        &mut out,
        "quench_evidence_uploaded_bytes_total",
        "Bytes of evidence files put into object storage.",
        &[("", st.evidence_uploaded_bytes)],
    );
    counter(
        &mut out,
        "quench_evidence_upload_failures_total",
        "Upload passes to object storage that failed (their files stay on local disk and are tried again).",
        &[("", st.evidence_upload_failures)],
    );
    counter(
        &mut out,
        "quench_evidence_command_rows_dropped_total",
        "Command rows (outcomes, confirmations) the evidence store dropped: 100,000 were already waiting for \
         its writer, which the respond stage never waits for.",
        &[("", st.evidence_commands_dropped)],
    );
    counter(
        &mut out,
        "quench_evidence_events_unmade_total",
        "Events the evidence store's writer, normalizing their message again, made differently from the \
         pipeline (another event time, or none), so did not store. Never expected: each is logged as an error.",
        &[("", st.evidence_unmade)],
    );
    counter(
        &mut out,
        "quench_duplicate_events_total",
        "Events dropped as duplicates of one seen within normalize.dedup_window_secs.",
        &[("", st.duplicates)],
    );
    counter(
        &mut out,
        "quench_link_conflicts_total",
        "Correlation links a weaker or equal source tried to re-point (kept as they were).",
        &[("", st.link_conflicts)],
    );
    let labels: Vec<(String, u64)> = crate::decide::Action::ALL
        .iter()
        .map(|a| {
            (
                format!("{{action=\"{}\"}}", a.as_str()),
                st.decisions.get(a).copied().unwrap_or(0),
            )
        })
        .collect();
    let samples: Vec<(&str, u64)> = labels.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    counter(
        &mut out,
        "quench_decisions_total",
        "Decisions, by action.",
        &samples,
    );
    counter(
        &mut out,
        "quench_guardrail_capped_total",
        "Decisions a guardrail weakened (protected or privileged principal, spent budget).",
        &[("", st.guardrail_capped)],
    );
    counter(
        &mut out,
        "quench_revocation_budget_exhausted_total",
        "Times the global revocation budget ran out and Quench went alert-only.",
        &[("", st.budget_notices)],
    );
    counter(
        &mut out,
        "quench_revocations_total",
        "Revocation requests, by result.",
        &[
            ("{result=\"sent\"}", r.sent.load(Ordering::Relaxed)),
            ("{result=\"failed\"}", r.failed.load(Ordering::Relaxed)),
            (
                "{result=\"over_budget\"}",
                r.over_budget.load(Ordering::Relaxed),
            ),
            ("{result=\"dry_run\"}", r.dry_run.load(Ordering::Relaxed)),
        ],
    );
    counter(
        &mut out,
        "quench_revocation_retries_total",
        "Retried revocation attempts.",
        &[("", r.retries.load(Ordering::Relaxed))],
    );
    counter(
        &mut out,
        "quench_outbox_commands_total",
        "Command records of the commands topic, by what became of them.",
        &[
            ("{state=\"settled\"}", o.settled),
            ("{state=\"resumed\"}", o.resumed),
            ("{state=\"duplicate\"}", o.duplicates),
        ],
    );
    gauge(
        &mut out,
        "quench_outbox_in_flight",
        "Commands being delivered now.",
        o.in_flight,
    );
    counter(
        &mut out,
        "quench_confirmations_total",
        "Delivered revocations checked against the vendor's own log, by result.",
        &[
            ("{result=\"confirmed\"}", o.confirmed),
            ("{result=\"unconfirmed\"}", o.unconfirmed),
        ],
    );
    gauge(
        &mut out,
        "quench_confirmations_awaited",
        "Delivered revocations still awaiting their vendor's confirmation.",
        o.awaiting_confirmation,
    );
    out
}

/// Serve `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, sources: Sources) {
    let l = &listener;
    serve_from(
        move || async move { l.accept().await.map(|(s, _)| s) },
        sources,
    )
    .await
}

/// Serve `GET /metrics` on the connections `next` accepts, until the task is dropped (see the module doc for the
/// limits). An error from `next` is logged and retried after [`ACCEPT_BACKOFF`].
pub async fn serve_from<S, F, Fut>(mut next: F, sources: Sources)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<S>>,
{
    let mut open: VecDeque<AbortHandle> = VecDeque::new();
    loop {
        let conn = match next().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed; retrying");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        open.retain(|h| !h.is_finished());
        if open.len() >= MAX_CONNECTIONS {
            if let Some(oldest) = open.pop_front() {
                oldest.abort();
            }
        }
        let s = sources.clone();
        open.push_back(
            tokio::spawn(async move {
                if let Err(e) = answer(conn, &s).await {
                    tracing::debug!(error = %e, "metrics: connection closed unanswered");
                }
            })
            .abort_handle(),
        );
    }
}

/// Read one request head from `conn` and answer it, all within [`CONN_TIMEOUT`].
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: S,
    sources: &Sources,
) -> Result<(), ConnError> {
    tokio::time::timeout(CONN_TIMEOUT, async {
        let (status, body) = match read_head(&mut conn).await {
            Ok(head) if head.starts_with(b"GET /metrics ") => ("200 OK", render(sources)),
            Ok(_) => ("404 Not Found", "try GET /metrics\n".to_string()),
            Err(ConnError::HeadTooLarge) => (
                "431 Request Header Fields Too Large",
                format!("request head over {MAX_HEAD} bytes\n"),
            ),
            Err(e) => return Err(e),
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(reply.as_bytes()).await?;
        conn.shutdown().await?;
        Ok(())
    })
    .await
    .map_err(|_| ConnError::Timeout)?
}

/// The request head: bytes up to the first empty line, at most [`MAX_HEAD`].
async fn read_head<S: AsyncRead + Unpin>(conn: &mut S) -> Result<Vec<u8>, ConnError> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let ends =
            |h: &[u8]| h.windows(4).any(|w| w == b"\r\n\r\n") || h.windows(2).any(|w| w == b"\n\n");
        if ends(&head) {
            return Ok(head);
        }
        if head.len() >= MAX_HEAD {
            return Err(ConnError::HeadTooLarge);
        }
        let room = chunk.len().min(MAX_HEAD - head.len());
        let n = conn.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(ConnError::Closed);
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::DuplexStream;
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    type Incoming = mpsc::UnboundedSender<std::io::Result<DuplexStream>>;

    /// A metrics server (with nothing counted yet) on the connections, or accept errors, sent on the channel.
    fn server() -> (Incoming, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let sources = Sources {
            stats: watch::channel(Stats::default()).1,
            dispatcher: Dispatcher::new(Default::default(), vec![], None).unwrap(),
            outbox: watch::channel(Progress::default()).1,
        };
        let next = move || {
            let rx = rx.clone();
            async move {
                rx.lock()
                    .await
                    .recv()
                    .await
                    .unwrap_or_else(|| Err(std::io::Error::other("no more connections")))
            }
        };
        (tx, tokio::spawn(serve_from(next, sources)))
    }

    /// A new connection: the client's end.
    fn connect(incoming: &Incoming) -> DuplexStream {
        let (client, server) = tokio::io::duplex(64 * 1024);
        incoming.send(Ok(server)).unwrap();
        client
    }

    async fn scrape(c: &mut DuplexStream) -> String {
        c.write_all(b"GET /metrics HTTP/1.1\r\nhost: quench\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    /// Wait (at most a minute) until the server closes `c`.
    async fn until_closed(c: &mut DuplexStream) {
        let n = tokio::time::timeout(Duration::from_secs(60), c.read(&mut [0u8; 16]))
            .await
            .expect("the connection is never closed")
            .unwrap();
        assert_eq!(n, 0, "an idle connection got an answer");
    }

    /// Whether the server has closed `c` (checked within 1 ms).
    async fn closed(c: &mut DuplexStream) -> bool {
        match tokio::time::timeout(Duration::from_millis(1), c.read(&mut [0u8; 16])).await {
            Ok(Ok(0)) => true,
            Err(_) => false,
            other => panic!("an idle connection got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_neither_holds_up_a_scrape_nor_stays_connected() {
        let (incoming, task) = server();
        let t0 = Instant::now();
        let mut silent = connect(&incoming);
        let mut scraper = connect(&incoming);
        let got = scrape(&mut scraper).await;
        assert!(
            got.starts_with("HTTP/1.1 200 OK") && got.contains("\nquench_records_total 0\n"),
            "{got}"
        );
        assert_eq!(t0.elapsed(), Duration::ZERO);
        // the silent one is closed when its time is up, unanswered
        until_closed(&mut silent).await;
        let waited = t0.elapsed();
        assert!(
            waited >= CONN_TIMEOUT && waited < CONN_TIMEOUT + Duration::from_secs(1),
            "{waited:?}"
        );
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn two_hundred_idle_connections_neither_pile_up_nor_keep_a_scraper_out() {
        let (incoming, task) = server();
        let t0 = Instant::now();
        let mut idle: Vec<DuplexStream> = (0..200).map(|_| connect(&incoming)).collect();
        let mut scraper = connect(&incoming);
        let got = scrape(&mut scraper).await;
        assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
        assert_eq!(t0.elapsed(), Duration::ZERO);
        // the oldest were closed to make room: only the newest 63 (and the scraper) were kept
        let mut open = Vec::new();
        for (i, c) in idle.iter_mut().enumerate() {
            if !closed(c).await {
                open.push(i);
            }
        }
        assert_eq!(open, (200 - (MAX_CONNECTIONS - 1)..200).collect::<Vec<_>>());
        // and those are closed when their time is up
        for c in &mut idle {
            until_closed(c).await;
        }
        assert!(t0.elapsed() < CONN_TIMEOUT + Duration::from_secs(1));
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn an_accept_error_is_retried_not_the_end_of_the_endpoint() {
        let (incoming, task) = server();
        let t0 = Instant::now();
        // EMFILE: out of file descriptors, as a flood of connections can cause
        incoming
            .send(Err(std::io::Error::from_raw_os_error(24)))
            .unwrap();
        let mut scraper = connect(&incoming);
        let got = tokio::time::timeout(Duration::from_secs(60), scrape(&mut scraper))
            .await
            .expect("no answer after an accept error");
        assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
        let waited = t0.elapsed();
        assert!(
            waited >= ACCEPT_BACKOFF && waited < Duration::from_secs(1),
            "{waited:?}"
        );
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_head_without_end_is_refused_at_the_cap() {
        let (incoming, task) = server();
        let mut c = connect(&incoming);
        let junk = vec![b'a'; MAX_HEAD + 100];
        // the server stops reading at the cap: write what it takes, then read its answer
        let _ = tokio::time::timeout(Duration::from_millis(1), c.write_all(&junk)).await;
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        assert!(
            got.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
            "{got}"
        );
        task.abort();
    }
}
