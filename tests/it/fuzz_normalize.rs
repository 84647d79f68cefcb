//! Fuzzing the normalize stage: arbitrary bytes and mutated real shapes (every fixture of every format) must
//! never panic; every message either normalizes or gets a reason. Deeply nested and oversized messages are
//! rejected with a reason. Deterministic (a fixed-seed xorshift generator), so a failure reproduces; raise
//! QUENCH_FUZZ_ITERATIONS for a longer run.

#![allow(clippy::unwrap_used)]

use quench::event::{Provenance, Ts};
use quench::normalize::{Context, Normalize, NormalizeConfig, NormalizeError};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "null",
    "true",
    "-1",
    "1e999",
    "18446744073709551616",
    "\"\\u0000\"",
    "\"records\":",
    "\"resourceSpans\":",
    "\"eventType\":",
    "\"properties\":",
    "\"attributes\":{",
    "\n",
    "\u{1F600}",
];

fn mutate(rng: &mut Rng, seed: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(m.len() + 1);
        match rng.below(7) {
            0 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
            1 => m.truncate(at),
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                m.splice(at.min(m.len())..at.min(m.len()), t.iter().copied());
            }
            3 if !m.is_empty() => {
                let end = (at + rng.below(32)).min(m.len());
                m.drain(at.min(end)..end);
            }
            4 => {
                // splice in a slice of another fixture
                let other = &corpus[rng.below(corpus.len())];
                let a = rng.below(other.len());
                let b = (a + rng.below(200)).min(other.len());
                m.splice(
                    at.min(m.len())..at.min(m.len()),
                    other[a..b].iter().copied(),
                );
            }
            5 => {
                let v = rng.next().to_le_bytes();
                m.splice(at.min(m.len())..at.min(m.len()), v);
            }
            _ => {
                // replace a quoted value's type: "x" -> 7 or {} or []
                if let Some(q) = m.iter().skip(at).position(|&c| c == b':') {
                    let p = at + q + 1;
                    let rep: &[u8] = [&b"7"[..], b"{}", b"[]", b"null", b"\"\""][rng.below(5)];
                    let end = m
                        .iter()
                        .skip(p)
                        .position(|&c| c == b',' || c == b'}')
                        .map_or(m.len(), |e| p + e);
                    m.splice(p..end, rep.iter().copied());
                }
            }
        }
    }
    m
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/formats");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        out.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.as_bytes().to_vec()),
        );
    }
    out.sort();
    out
}

#[test]
fn mutated_real_shapes_and_random_bytes_never_panic() {
    let n = Normalize::new(&NormalizeConfig::default()).unwrap();
    let corpus = corpus();
    assert!(corpus.len() >= 20);
    let iterations: usize = std::env::var("QUENCH_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut rejected, mut pinned_ok) = (0usize, 0usize, 0usize);
    let mut formats = quench::normalize::format_names();
    formats.extend(["aws_apigateway", "envoy_json", "nginx_json"]);
    for f in &formats {
        n.check_format("fuzz", f).unwrap();
    }
    for i in 0..iterations {
        let mut seed_format = None;
        let input = if i % 10 == 0 {
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        } else {
            let seed = &corpus[rng.below(corpus.len())];
            seed_format = n
                .normalize(
                    seed,
                    None,
                    &Context::new(Provenance::None, Ts(0)),
                    &mut Vec::new(),
                )
                .ok();
            mutate(&mut rng, seed, &corpus)
        };
        // every fourth input goes to a format pinned by a topic (its seed's own format, now and then another), so
        // a panic reachable only there is tried too
        let pinned = (i % 4 == 1).then(|| match seed_format {
            Some(f) if rng.below(4) != 0 => f,
            _ => formats[rng.below(formats.len())],
        });
        let ctx = Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            n.normalize(&input, pinned, &ctx, &mut out)
                .map(|_| out.len())
        }));
        match r {
            Ok(Ok(events)) => {
                assert!(events > 0);
                ok += 1;
                if pinned.is_some() {
                    pinned_ok += 1;
                }
            }
            Ok(Err(e)) => {
                // a reason of its own, not only the variant's fixed prefix
                let has_reason = match &e {
                    NormalizeError::NotJson(m) | NormalizeError::UnknownFormat(m) => {
                        !m.trim().is_empty()
                    }
                    NormalizeError::Invalid { reason, .. } => !reason.trim().is_empty(),
                    NormalizeError::TooLarge { size, limit } => size > limit,
                    NormalizeError::FromTheFuture { event_time, .. } => !event_time.is_empty(),
                };
                assert!(
                    has_reason,
                    "no reason for {e:?} on {:?}",
                    String::from_utf8_lossy(&input)
                );
                rejected += 1;
            }
            Err(_) => panic!(
                "normalize pinned to {pinned:?} panicked on iteration {i}: {:?}",
                String::from_utf8_lossy(&input)
            ),
        }
    }
    assert!(pinned_ok > 0, "no pinned input ever normalized");
    // the mutations must exercise both paths, or the fuzzer tests nothing
    assert!(
        ok > iterations / 20 && rejected > iterations / 20,
        "ok {ok}, rejected {rejected}"
    );
}

#[test]
fn deeply_nested_and_oversized_messages_are_rejected_with_a_reason() {
    let n = Normalize::new(&NormalizeConfig::default()).unwrap();
    let ctx = Context::new(Provenance::None, Ts(0));
    for depth in [200usize, 100_000] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let e = n
            .normalize(deep.as_bytes(), None, &ctx, &mut Vec::new())
            .unwrap_err();
        assert!(
            matches!(
                e,
                NormalizeError::NotJson(_) | NormalizeError::Invalid { .. }
            ),
            "{e}"
        );
        let deep_obj = format!(
            "{{\"eventType\":\"x\",\"published\":\"2026-01-01T00:00:00Z\",\"actor\":{}1{}}}",
            "{\"a\":".repeat(depth),
            "}".repeat(depth)
        );
        // Deep nesting in a field no stage reads is skipped without recursion: the record is an Okta event (since
        // issue 13, `uuid` is optional: this record used to be refused only for lacking it). Nesting where a typed
        // field is expected is refused with a reason.
        let mut evs = Vec::new();
        let f = n
            .normalize(deep_obj.as_bytes(), None, &ctx, &mut evs)
            .unwrap();
        assert_eq!((f, evs.len()), ("okta", 1));
        let deep_typed = format!(
            "{{\"uuid\":\"u\",\"eventType\":\"x\",\"published\":\"2026-01-01T00:00:00Z\",\"actor\":{{\"id\":\"a\"}},\"target\":{}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let e = n
            .normalize(deep_typed.as_bytes(), None, &ctx, &mut Vec::new())
            .unwrap_err();
        assert!(
            matches!(
                e,
                NormalizeError::NotJson(_) | NormalizeError::Invalid { .. }
            ),
            "{e}"
        );
    }
    let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(2 << 20));
    let e = n
        .normalize(huge.as_bytes(), None, &ctx, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(e, NormalizeError::TooLarge { .. }), "{e}");
}
