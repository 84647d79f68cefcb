//! HTTP helpers of the targets: a response's status checked (a failure's body read up to 16 KiB, `Retry-After`
//! read), URLs built from checked parts, base URLs and the CA bundle read at start-up.
//!
//! In: responses, URL parts, config values. Out: statuses or [`RespondError`]s, URLs, certificates. State: none.

use super::*;

/// Turn a response into Ok or a [`RespondError::Status`].
pub(crate) async fn check(resp: reqwest::Response) -> Result<u16, RespondError> {
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return Ok(status);
    }
    Err(status_error(resp).await)
}

/// Bytes of an error body read at most. The body is kept whole up to here, so that redaction sees every credential
/// it echoes before [`error_text`] cuts it for reports.
const BODY_READ: usize = 16 * 1024;

/// The first `max` bytes of a response body (a character cut at the end becomes U+FFFD).
async fn read_start(mut resp: reqwest::Response, max: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < max {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c[..c.len().min(max - buf.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The [`RespondError::Status`] of a non-2xx response: status, the first [`BODY_READ`] bytes of the body (not yet
/// redacted: report it only through [`error_text`]), `Retry-After`.
pub(crate) async fn status_error(resp: reqwest::Response) -> RespondError {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = read_start(resp, BODY_READ).await;
    RespondError::Status {
        status,
        body,
        retry_after,
    }
}

/// A server's `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP date that only the dispatcher's clock
/// can turn into a wait ([`RetryAfter::wait`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    After(Duration),
    /// Epoch milliseconds.
    At(i64),
}

impl RetryAfter {
    /// How long to wait from `now` (the dispatcher's clock), capped at one hour.
    pub fn wait(self, now: WallTime) -> Duration {
        let d = match self {
            RetryAfter::After(d) => d,
            RetryAfter::At(at) => Duration::from_millis(at.saturating_sub(now.0).max(0) as u64),
        };
        d.min(Duration::from_secs(3600))
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<RetryAfter> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(RetryAfter::After(Duration::from_secs(secs)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(RetryAfter::At(at.timestamp_millis()))
}

/// Read the PEM certificates of `path` (for `ca_bundle`).
pub(crate) fn load_ca_bundle(
    path: &std::path::Path,
) -> Result<Vec<reqwest::Certificate>, RespondError> {
    let pem = std::fs::read(path).map_err(|e| {
        RespondError::Target(format!("respond.ca_bundle = {:?}: {e}", path.display()))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        RespondError::Target(format!("respond.ca_bundle = {:?}: {e}", path.display()))
    })?;
    if certs.is_empty() {
        return Err(RespondError::Target(format!(
            "respond.ca_bundle = {:?}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// `base` with path segments appended (each percent-encoded).
pub(crate) fn url_with(
    base: &reqwest::Url,
    segments: &[&str],
) -> Result<reqwest::Url, RespondError> {
    let mut u = base.clone();
    u.path_segments_mut()
        .map_err(|_| RespondError::Target(format!("{base} cannot be a base URL")))?
        .pop_if_empty()
        .extend(segments);
    Ok(u)
}

/// Parse a target's base URL at start-up.
pub(crate) fn parse_base(key: &'static str, s: &str) -> Result<reqwest::Url, BuildError> {
    let u = reqwest::Url::parse(s).map_err(|e| BuildError::new(key, s, e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(BuildError::new(key, s, "allowed: an http or https URL"));
    }
    Ok(u)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date_and_waited_on_the_dispatchers_clock() {
        // 1_700_000_000 s is Tue, 14 Nov 2023 22:13:20 GMT: the injected clock, not the machine's
        let now = WallTime(1_700_000_000_000);
        let wait = |v: &str| parse_retry_after(v).map(|r| r.wait(now));
        assert_eq!(wait("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            wait("Tue, 14 Nov 2023 22:13:50 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(wait("Tue, 14 Nov 2023 22:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(wait("999999"), Some(Duration::from_secs(3600)));
        assert_eq!(wait("soon"), None);
        // the same date read an hour later by the clock waits nothing
        let later = WallTime(now.0 + 3_600_000);
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT").map(|r| r.wait(later)),
            Some(Duration::ZERO)
        );
    }
}
