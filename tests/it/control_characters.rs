//! Input-derived text is printed with its control characters escaped: a record whose error text quotes a terminal
//! escape sequence and an embedded newline (serde names an unknown variant as written) cannot clear the terminal
//! of whoever runs `quench normalize` or `quench replay`, nor forge a `file:line:` line of its own on stderr.

#![allow(clippy::unwrap_used)]

use std::process::Command;

/// A native event whose `category` is an unknown variant carrying ESC [2J (clear screen) and a forged line.
const FORGED: &str = r#"{"event_id":"n-1","event_time":"2026-11-02T08:00:00Z","source":{"family":"agent","vendor":"acme","format":"native"},"category":"\u001b[2J\nfake.jsonl:1: forged","principal":{"id":"agent-1","kind":"agent"}}"#;

/// stderr of `quench {cmd} FILE` on a file holding [`FORGED`].
fn stderr_of(cmd: &str) -> String {
    let dir = std::env::temp_dir().join(format!("quench-ctl-{cmd}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("input.jsonl");
    std::fs::write(&f, format!("{FORGED}\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quench"))
        .arg(cmd)
        .arg(&f)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    String::from_utf8(out.stderr).unwrap()
}

fn assert_one_escaped_line(cmd: &str, err: &str) {
    let hits: Vec<&str> = err.lines().filter(|l| l.contains("forged")).collect();
    assert_eq!(hits.len(), 1, "{cmd}: one line mentions the record:\n{err}");
    assert!(
        hits[0].contains("input.jsonl:1: ")
            && hits[0].contains("\\u{1b}[2J\\nfake.jsonl:1: forged"),
        "{cmd}: the escapes are visible: {}",
        hits[0]
    );
    assert!(
        !err.lines().any(|l| l.starts_with("fake.jsonl")),
        "{cmd}: a forged line:\n{err}"
    );
    assert!(
        !err.chars().any(|c| c.is_control() && c != '\n'),
        "{cmd}: a control character reached stderr: {err:?}"
    );
}

#[test]
fn a_record_forging_a_terminal_escape_and_a_log_line_is_rejected_on_one_escaped_line() {
    assert_one_escaped_line("normalize", &stderr_of("normalize"));
    assert_one_escaped_line("replay", &stderr_of("replay"));
}
