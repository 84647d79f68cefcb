//! Respond's errors, and how an error is shown: whether a retry can help, and the text with the target's
//! credentials redacted, cut to 300 bytes and its control characters escaped ([`error_text`]).
//!
//! In: a failed request's error and the target's credentials. Out: [`RespondError`] and its shown text. State:
//! none.

/// Why a revocation request failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    #[error("HTTP {status}: {body}")]
    Status {
        status: u16,
        body: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<super::http::RetryAfter>,
    },
    #[error("transport: {0}")]
    Transport(String),
    #[error("cannot address the target: {0}")]
    Target(String),
    #[error("credentials: {0}")]
    Credentials(String),
    /// The API answered 2xx but reported an error in its body (Slack's `{"ok": false}`).
    #[error("API error: {error}")]
    Api { error: String, retryable: bool },
}

impl RespondError {
    /// Timeouts, connection errors, 429 and 5xx can succeed later; other 4xx and config problems cannot.
    pub fn retryable(&self) -> bool {
        match self {
            RespondError::Status { status, .. } => {
                *status == 429 || *status >= 500 || *status == 408
            }
            RespondError::Transport(_) => true,
            RespondError::Api { retryable, .. } => *retryable,
            RespondError::Target(_) | RespondError::Credentials(_) => false,
        }
    }
}

impl RespondError {
    /// This error with `secrets` [`redact`]ed from its text: for a target that must redact a credential itself
    /// (one it may have replaced by the time the error is reported).
    pub(crate) fn redacted(self, secrets: &[String]) -> Self {
        use RespondError::*;
        match self {
            Status {
                status,
                body,
                retry_after,
            } => Status {
                status,
                body: redact(&body, secrets),
                retry_after,
            },
            Transport(t) => Transport(redact(&t, secrets)),
            Target(t) => Target(redact(&t, secrets)),
            Credentials(t) => Credentials(redact(&t, secrets)),
            Api { error, retryable } => Api {
                error: redact(&error, secrets),
                retryable,
            },
        }
    }
}

impl From<reqwest::Error> for RespondError {
    fn from(e: reqwest::Error) -> Self {
        RespondError::Transport(e.without_url().to_string())
    }
}

/// What [`redact`] puts in place of a credential.
pub(crate) const REDACTED: &str = "[redacted]";

/// The shortest start of a credential that [`redact`] replaces.
const SECRET_PREFIX: usize = 4;

/// Bytes of an error's text that [`error_text`] keeps (before escaping).
pub(crate) const ERROR_SHOWN: usize = 300;

/// `text` with every run of [`SECRET_PREFIX`] (4) or more bytes that is the start of one of `secrets` replaced by
/// `[redacted]`, wherever it stands. That covers a whole secret and also one cut short, by the server or by a read
/// or display limit, at the end of the text or before more text: at most 3 bytes of a credential's start can
/// show. Text that merely begins like a credential (`ghp_`, `xoxb-`) is redacted too; that is the price.
/// Credentials are at least [`MIN_SECRET`] bytes (checked at start-up); an empty one is ignored.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let run = secrets
            .iter()
            .map(|s| common_start(rest, s))
            .max()
            .unwrap_or(0);
        if run >= SECRET_PREFIX {
            out.push_str(REDACTED);
            rest = &rest[run..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// How many bytes `text` and `secret` begin with in common (ending on a character boundary of `text`).
fn common_start(text: &str, secret: &str) -> usize {
    let n = text
        .bytes()
        .zip(secret.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    (0..=n)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

/// An error as reports and logs carry it: `secrets` [`redact`]ed from the whole text first, then cut to
/// [`ERROR_SHOWN`] (300) bytes (not inside a `[redacted]`, marked `…`), then its control characters escaped
/// ([`crate::text::escape_control`]). Redacting before cutting is what keeps a cut from leaving part of a
/// credential unrecognised.
pub(crate) fn error_text(e: &RespondError, secrets: &[String]) -> String {
    let mut t = redact(&e.to_string(), secrets);
    if t.len() > ERROR_SHOWN {
        let mut cut = (0..=ERROR_SHOWN)
            .rev()
            .find(|i| t.is_char_boundary(*i))
            .unwrap_or(0);
        // a marker cut in two would read as text; cut before it
        let from = cut.saturating_sub(REDACTED.len() - 1);
        if let Some(m) = (from..cut).find(|m| t.get(*m..).is_some_and(|r| r.starts_with(REDACTED)))
        {
            cut = m;
        }
        t.truncate(cut);
        t.push('…');
    }
    crate::text::escape_control(&t).into_owned()
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn retry_hints_follow_the_status() {
        assert!(RespondError::Status {
            status: 429,
            body: String::new(),
            retry_after: None
        }
        .retryable());
        assert!(RespondError::Status {
            status: 503,
            body: String::new(),
            retry_after: None
        }
        .retryable());
        assert!(!RespondError::Status {
            status: 404,
            body: String::new(),
            retry_after: None
        }
        .retryable());
        assert!(!RespondError::Credentials("x".into()).retryable());
    }

    /// Found by a mutation run: the cut of a long error must keep a marker that ends exactly at the cut, and drop
    /// one the cut would split.
    #[test]
    fn a_long_error_is_cut_before_a_split_marker_and_keeps_a_whole_one() {
        let secrets = vec!["sk-0123456789abcdef".to_string()];
        let error = |pad: usize| RespondError::Status {
            status: 401,
            body: format!(
                "{}sk-0123456789abcdef and more text after it",
                "x".repeat(pad)
            ),
            retry_after: None,
        };
        // "HTTP 401: " is 10 bytes: the marker ends exactly at byte ERROR_SHOWN
        let whole = error_text(&error(ERROR_SHOWN - 10 - REDACTED.len()), &secrets);
        assert!(whole.ends_with("[redacted]…"), "{whole}");
        // an error of exactly ERROR_SHOWN bytes is whole: nothing cut, no ellipsis
        let exact = error_text(
            &RespondError::Status {
                status: 401,
                body: "y".repeat(ERROR_SHOWN - 10),
                retry_after: None,
            },
            &secrets,
        );
        assert_eq!(exact.len(), ERROR_SHOWN);
        assert!(!exact.ends_with('…'), "{exact}");
        // one byte later the cut would split it: it goes entirely
        let split = error_text(&error(ERROR_SHOWN - 10 - REDACTED.len() + 1), &secrets);
        assert!(split.ends_with("x…") && !split.contains("[red"), "{split}");
    }

    const TOKEN: &str = "00Zq7vN3kLp9XwT2bR8sYc4HjM6dF1gA5eU0iO3tQ7x";

    fn okta_secrets() -> Vec<String> {
        vec![format!("SSWS {TOKEN}"), TOKEN.to_string()]
    }

    #[test]
    fn a_token_the_server_cut_short_is_redacted_wherever_it_stands() {
        let text = format!("a {TOKEN} b {}... c SSWS {}", &TOKEN[..12], &TOKEN[..5]);
        assert_eq!(
            redact(&text, &okta_secrets()),
            "a [redacted] b [redacted]... c [redacted]"
        );
        // three bytes are too few to be told from text; an empty secret redacts nothing
        assert_eq!(redact("x 00Z", &okta_secrets()), "x 00Z");
        assert_eq!(redact("x 00Z", &[String::new()]), "x 00Z");
    }

    #[test]
    fn an_error_body_ending_inside_a_token_or_cut_beside_one_shows_none_of_it() {
        let status = |body: String| RespondError::Status {
            status: 401,
            body,
            retry_after: None,
        };
        // the body itself ends in the token's first 30 bytes (a server's own cut, or the read limit)
        let e = status(format!("authorization: SSWS {}", &TOKEN[..30]));
        assert_eq!(
            error_text(&e, &okta_secrets()),
            "HTTP 401: authorization: [redacted]"
        );
        // the 300-byte cut would fall inside the token: it falls before the marker instead
        let e = status(format!("{}{TOKEN} and more\n\x1b[2J", ".".repeat(285)));
        let t = error_text(&e, &okta_secrets());
        assert_eq!(t, format!("HTTP 401: {}…", ".".repeat(285)));
        // a short body keeps all of itself, control characters escaped
        let t = error_text(
            &status(format!("{TOKEN} and more\n\x1b[2J")),
            &okta_secrets(),
        );
        assert_eq!(t, "HTTP 401: [redacted] and more\\n\\u{1b}[2J");
    }
}
