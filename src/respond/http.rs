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
        .and_then(|v| {
            let now = chrono::DateTime::from_timestamp_millis(Ts::now().0).unwrap_or_default();
            parse_retry_after(v, now)
        });
    let body = read_start(resp, BODY_READ).await;
    RespondError::Status {
        status,
        body,
        retry_after,
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `now`; capped at one hour.
pub(crate) fn parse_retry_after(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = v.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(d.min(Duration::from_secs(3600)))
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
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
