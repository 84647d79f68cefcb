//! Metrics: a running engine's counters in the Prometheus text format, at `GET /metrics` on `[metrics] listen`.
//!
//! In: snapshots of the pipeline's counts (the Kafka loop publishes one at every offset commit), the respond
//! stage's counters and the outbox's progress. Out: HTTP/1.1 responses. State: none of its own.

use crate::pipeline::Stats;
use crate::respond::outbox::Progress;
use crate::respond::Dispatcher;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

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

/// Serve `GET /metrics` until the task is dropped.
pub async fn serve(listener: TcpListener, sources: Sources) {
    while let Ok((mut sock, _)) = listener.accept().await {
        let s = sources.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if head.starts_with("GET /metrics ") {
                ("200 OK", render(&s))
            } else {
                ("404 Not Found", "try GET /metrics\n".to_string())
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(reply.as_bytes()).await;
        });
    }
}
