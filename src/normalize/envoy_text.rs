//! Envoy's default text access log (the format an `access_log` without `log_format` writes), as a bare line or
//! inside a shipper's envelope (`{"message": "..."}`, `{"log": "..."}`, Kubernetes container logs), optionally
//! prefixed `ACCESS ` as Ambassador/Emissary write it.
//!
//! In: one line:
//! `[START_TIME] "METHOD PATH PROTOCOL" CODE FLAGS [CODE_DETAILS TERMINATION "FAILURE_REASON"] BYTES_RECEIVED
//! BYTES_SENT DURATION UPSTREAM_TIME "X-FORWARDED-FOR" "USER-AGENT" "X-REQUEST-ID" "AUTHORITY" "UPSTREAM_HOST" …`
//! (the older format without the middle fields is read too). Out: one event: data read for GET/HEAD/OPTIONS,
//! data write for other methods, `other` for TCP proxy lines (`"- - -"`, failed when they carry response
//! flags); failure from status 400 up; the path,
//! authority and upstream host as the resource. State: none.
//!
//! Trust: the default format names nobody (no principal, token or session), so its events only count towards
//! what the gateway saw. The address is the last `X-Forwarded-For` entry (the one the nearest proxy appended;
//! earlier entries are whatever the client sent); the request id is the client's to choose, so it is no event id
//! (the event id comes from where the line was read).

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "envoy_text";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &[];

/// `[normalize.formats.envoy_text]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EnvoyTextConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: EnvoyTextConfig = parse_config(NAME, t)?;
    Ok(Box::new(EnvoyText))
}

pub struct EnvoyText;

/// The line without an `ACCESS ` prefix, when it starts like Envoy's: `[2019-04-08T16:50:12.533Z] "`.
fn body(raw: &str) -> Option<&str> {
    let s = raw.trim();
    let s = s.strip_prefix("ACCESS ").unwrap_or(s);
    let b = s.as_bytes();
    let looks = b.len() > 14
        && b[0] == b'['
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[5] == b'-'
        && s.contains("] \"");
    looks.then_some(s)
}

/// One field of the line: a quoted string (without quotes) or a bare word.
#[derive(Debug, PartialEq)]
enum Tok<'a> {
    Quoted(&'a str),
    Bare(&'a str),
}

fn tokens(s: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return out;
        }
        if let Some(r) = rest.strip_prefix('"') {
            // Envoy writes header values as they came; a value with a quote in it ends at the next `" `
            let end = r.find("\" ").or_else(|| r.strip_suffix('"').map(str::len));
            match end {
                Some(e) => {
                    out.push(Tok::Quoted(&r[..e]));
                    rest = &r[(e + 1).min(r.len())..];
                }
                None => {
                    out.push(Tok::Quoted(r));
                    return out;
                }
            }
        } else {
            let e = rest.find(' ').unwrap_or(rest.len());
            out.push(Tok::Bare(&rest[..e]));
            rest = &rest[e..];
        }
    }
}

fn dash(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty() && s != "-").then_some(s)
}

impl Normalizer for EnvoyText {
    fn hint(&self, raw: &str) -> bool {
        body(raw).is_some()
    }

    fn reads_text(&self) -> bool {
        true
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let bad = |why: &str| NormalizeError::invalid(NAME, why);
        let s = body(raw).ok_or_else(|| {
            bad("not an Envoy access log line: no `[START_TIME] \"` at its start")
        })?;
        let close = s.find(']').ok_or_else(|| bad("no `]` after START_TIME"))?;
        let time = Ts::parse(&s[1..close]).ok_or_else(|| {
            NormalizeError::invalid(
                NAME,
                format!("START_TIME {:?} is not a timestamp", &s[1..close]),
            )
        })?;
        let toks = tokens(&s[close + 1..]);
        let Some(Tok::Quoted(request)) = toks.first() else {
            return Err(bad("no quoted request line after START_TIME"));
        };
        let mut req = request.split(' ');
        let method = req.next().and_then(dash);
        let path = req.next().and_then(dash);
        let status: Option<u16> = match toks.get(1) {
            Some(Tok::Bare(c)) => c.parse().ok(),
            _ => None,
        };
        // the run of five quoted fields: X-Forwarded-For, User-Agent, X-Request-Id, :authority, upstream host
        let run = (1..toks.len()).find(|&i| {
            toks.len() >= i + 5 && toks[i..i + 5].iter().all(|t| matches!(t, Tok::Quoted(_)))
        });
        let quoted = |k: usize| match run.and_then(|i| toks.get(i + k)) {
            Some(Tok::Quoted(q)) => dash(q),
            _ => None,
        };
        let bytes_sent: Option<u64> =
            run.and_then(|i| i.checked_sub(3))
                .and_then(|i| match toks.get(i) {
                    Some(Tok::Bare(b)) => b.parse().ok(),
                    _ => None,
                });
        let cat = match method {
            None => Category::Other,
            Some("GET" | "HEAD" | "OPTIONS") => Category::DataRead,
            Some(_) => Category::DataWrite,
        };
        let src = SourceInfo {
            family: Family::Gateway,
            vendor: "envoy".into(),
            format: NAME.into(),
        };
        let mut ev = SessionEvent::new(src, super::fallback_id(ctx, 0), time, cat);
        let flags = match toks.get(2) {
            Some(Tok::Bare(f)) => dash(f),
            _ => None,
        };
        ev.outcome = match status {
            Some(c) if c >= 400 => Outcome::Failure,
            Some(c) if c >= 100 => Outcome::Success,
            // a TCP proxy line has no status: its response flags (`UF`, `URX` …) name what failed
            _ if flags.is_some() => Outcome::Failure,
            _ if method.is_none() => Outcome::Success,
            _ => Outcome::Unknown,
        };
        ev.principal.kind = PrincipalKind::Unknown;
        ev.network.ip = quoted(0)
            .and_then(|x| x.rsplit(',').next())
            .map(str::trim)
            .filter(|x| x.parse::<std::net::IpAddr>().is_ok())
            .map(Text::Borrowed);
        ev.network.user_agent = quoted(1).map(Text::Borrowed);
        ev.resource.destination = quoted(3).map(Text::Borrowed);
        ev.resource.server = quoted(4).map(Text::Borrowed);
        ev.resource.object_id = path.map(Text::Borrowed);
        ev.resource.bytes = bytes_sent;
        ev.action = Some(Text::Borrowed(method.unwrap_or("tcp")));
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::testutil::normalize_one;

    #[test]
    fn the_older_default_line_names_address_agent_path_and_authority() {
        let raw = r#"[2019-04-11T00:51:07.980Z] "GET /elastic/ HTTP/1.1" 301 - 0 0 41 39 "172.17.0.3" "curl/7.59.0" "078d1daa-b786-4d6d-85a5-7e4366adaa19" "www.elastic.co" "192.168.1.10:80""#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.source.format.as_str(), NAME);
        assert_eq!(
            ev.event_time,
            Ts::parse("2019-04-11T00:51:07.980Z").unwrap()
        );
        assert_eq!(ev.category, Category::DataRead);
        assert_eq!(ev.outcome, Outcome::Success);
        assert_eq!(ev.network.ip.as_deref(), Some("172.17.0.3"));
        assert_eq!(ev.network.user_agent.as_deref(), Some("curl/7.59.0"));
        assert_eq!(ev.resource.object_id.as_deref(), Some("/elastic/"));
        assert_eq!(ev.resource.destination.as_deref(), Some("www.elastic.co"));
        assert_eq!(ev.resource.server.as_deref(), Some("192.168.1.10:80"));
        assert!(
            ev.principal.key().is_none(),
            "the default format names nobody"
        );
        assert_ne!(
            ev.event_id.as_str(),
            "078d1daa-b786-4d6d-85a5-7e4366adaa19",
            "the request id is the client's to choose"
        );
    }

    #[test]
    fn the_current_default_line_with_details_and_failure_reason() {
        let raw = r#"[2024-04-25T17:51:55.294Z] "POST /api/v1/export HTTP/2" 503 UF upstream_reset_before_response_started{connection_failure} - "delayed_connect_error:_111" 120 91 3 - "203.0.113.5, 10.0.0.7" "Mozilla/5.0 (X11; Linux x86_64)" "b7ba9b4c-f4b7-47c2-9718-c23aa1465f49" "api.example.com" "10.1.2.3:8080" outbound|8080||api.default.svc.cluster.local - 10.0.0.9:8443 10.0.0.7:51234 - default"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::DataWrite);
        assert_eq!(ev.outcome, Outcome::Failure);
        assert_eq!(
            ev.network.ip.as_deref(),
            Some("10.0.0.7"),
            "the entry the nearest proxy appended, not the client's claim"
        );
        assert_eq!(ev.resource.bytes, Some(91));
        assert_eq!(ev.resource.destination.as_deref(), Some("api.example.com"));
    }

    #[test]
    fn an_ambassador_prefixed_tcp_line_is_other() {
        let raw = r#"ACCESS [2019-04-06T06:20:05.972Z] "- - -" 0 UF,URX 0 0 0 - "-" "-" "-" "-" "127.0.0.1:9200""#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::Other);
        assert_eq!(ev.outcome, Outcome::Failure, "UF,URX: the upstream failed");
        assert_eq!(ev.network.ip, None);
        assert_eq!(ev.action.as_deref(), Some("tcp"));
    }

    #[test]
    fn a_line_inside_a_container_log_envelope_is_read() {
        let raw = r#"{"message":"[2019-04-08T16:16:55.931Z] \"GET /service/1 HTTP/1.1\" 200 - 0 89 5 4 \"-\" \"curl/7.54.0\" \"c219f6da\" \"localhost:8000\" \"172.27.0.3:80\"","stream":"stdout","time":"2019-02-12T18:37:43.139620629Z","kubernetes":{"container":{"name":"ambassador"}}}"#;
        let n = crate::normalize::Normalize::new(&Default::default()).unwrap();
        let ctx = crate::normalize::Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        let mut inner = crate::normalize::Envelopes::default();
        let f = n
            .normalize_enveloped(raw.as_bytes(), None, &ctx, &mut out, &mut inner)
            .unwrap();
        assert_eq!(f, NAME);
        assert_eq!(out[0].network.user_agent.as_deref(), Some("curl/7.54.0"));
        assert_eq!(out[0].resource.bytes, Some(89));
    }

    #[test]
    fn a_line_with_a_bad_time_is_rejected_naming_start_time() {
        let raw = r#"[2019-13-45T99:00:00Z] "GET / HTTP/1.1" 200 - 0 0 1 1 "-" "-" "-" "-" "-""#;
        let n = crate::normalize::Normalize::new(&Default::default()).unwrap();
        let ctx = crate::normalize::Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        let e = n
            .normalize(raw.as_bytes(), None, &ctx, &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("START_TIME"), "{e}");
    }

    /// Found by the outside review: a user agent holding `"eventType" "uuid" "published"` made Okta's byte-level
    /// hint take the line, which was then dead-lettered (with every other line of its message).
    #[test]
    fn a_user_agent_naming_another_formats_keys_stays_an_envoy_line() {
        let raw = r#"[2024-04-25T17:51:55.294Z] "GET / HTTP/1.1" 200 - 0 1 1 1 "198.51.100.4" "x "eventType" "uuid" "published" "class_uid" "metadata"" "rid-2" "a.example.com" "10.0.0.1:80""#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.source.format.as_str(), NAME);
    }

    #[test]
    fn quoted_fields_with_spaces_and_quotes_stay_whole() {
        assert_eq!(
            tokens(r#""a b" x "c "d" e" "#),
            vec![
                Tok::Quoted("a b"),
                Tok::Bare("x"),
                Tok::Quoted("c \"d"),
                Tok::Bare("e\"")
            ]
        );
    }

    /// Found by the outside review: an OAuth callback's code and an access token in a request path were kept
    /// verbatim, so the evidence store held credentials.
    #[test]
    fn credentials_in_a_request_path_are_redacted() {
        let raw = r#"[2024-04-25T17:51:55.294Z] "GET /oauth/callback?code=abc123&state=xyz&access_token=eyJhbGciOi HTTP/1.1" 302 - 0 0 1 1 "198.51.100.4" "curl/8" "r-1" "app.example.com" "10.0.0.1:80""#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            ev.resource.object_id.as_deref(),
            Some("/oauth/callback?code=REDACTED&state=xyz&access_token=REDACTED")
        );
        let plain = raw.replace("code=abc123&state=xyz&access_token=eyJhbGciOi", "page=2");
        assert_eq!(
            normalize_one(&plain)[0].resource.object_id.as_deref(),
            Some("/oauth/callback?page=2")
        );
    }
}
