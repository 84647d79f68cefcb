//! Addressing: which of a decision's ids a target may act on.
//!
//! In: a decision and the vendor of the target about to act. Out: the user, session or token id to put in the
//! request, or a refusal that says why (not retryable: the command is dead-lettered with it). State: none.
//!
//! Every id in a decision carries the vendor whose log vouched for it ([`crate::decide::Trust`]). A target uses:
//! - the principal's id only when its own vendor's log vouched for it (a GitHub login such as `00uabc` is not an
//!   Okta user id, and a numeric MCP session id is not a Slack session);
//! - else the e-mail, only when an IdP vouched for it;
//! - else nothing: it refuses.
//!
//! Ids that could change a request's meaning are refused whatever vouched for them: empty, `.` and `..` (path
//! segments that climb), control characters, and ids over 256 bytes.

use super::RespondError;
use crate::decide::Decision;
use crate::event::Vendor;

/// Longest id a target puts in a request.
pub const MAX_ID_BYTES: usize = 256;

/// The user as a vendor's API may address it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User<'a> {
    /// The vendor's own id for the user, from the vendor's own log.
    Id(&'a str),
    /// An e-mail address an IdP vouched for.
    Email(&'a str),
}

impl<'a> User<'a> {
    pub fn as_str(&self) -> &'a str {
        match self {
            User::Id(s) | User::Email(s) => s,
        }
    }
}

fn refused(why: String) -> RespondError {
    RespondError::Target(format!("refused: {why}"))
}

/// `v` if it is safe to put in a request, else a refusal naming `what`.
pub fn safe_id<'a>(what: &str, v: &'a str) -> Result<&'a str, RespondError> {
    if v.is_empty() || v == "." || v == ".." {
        return Err(refused(format!("{what} {v:?} is not an id")));
    }
    if v.chars().any(char::is_control) {
        return Err(refused(format!("{what} contains control characters")));
    }
    if v.len() > MAX_ID_BYTES {
        return Err(refused(format!(
            "{what} is {} bytes, over {MAX_ID_BYTES}",
            v.len()
        )));
    }
    Ok(v)
}

/// The principal's id, when `vendor`'s own log vouched for it.
pub fn vendor_id(d: &Decision, vendor: Vendor) -> Result<Option<&str>, RespondError> {
    match (&d.principal_id, &d.trust.principal_vendor) {
        (Some(id), Some(v)) if v == vendor.as_str() => safe_id("principal id", id).map(Some),
        _ => Ok(None),
    }
}

/// The principal's e-mail, when an IdP vouched for it.
pub fn verified_email(d: &Decision) -> Result<Option<&str>, RespondError> {
    match (&d.principal, &d.trust.email_verified_by) {
        (Some(e), Some(_)) if e.contains('@') => safe_id("e-mail", e).map(Some),
        _ => Ok(None),
    }
}

/// The user a `vendor` target addresses: its own id for the user, else an IdP-verified e-mail, else a refusal.
pub fn user<'a>(d: &'a Decision, vendor: Vendor) -> Result<User<'a>, RespondError> {
    if let Some(id) = vendor_id(d, vendor)? {
        return Ok(User::Id(id));
    }
    if let Some(e) = verified_email(d)? {
        return Ok(User::Email(e));
    }
    Err(refused(format!(
        "the decision names no user that {vendor}'s own log or an IdP vouched for (principal {:?} vouched for by {})",
        d.principal_id.as_deref().or(d.principal.as_deref()).unwrap_or("-"),
        d.trust.principal_vendor.as_deref().unwrap_or("nobody"),
    )))
}

/// The session id, when `vendor`'s own log vouched for it.
pub fn vendor_session(d: &Decision, vendor: Vendor) -> Result<Option<&str>, RespondError> {
    match (&d.session_id, &d.trust.session_vendor) {
        (Some(s), Some(v)) if v == vendor.as_str() => safe_id("session id", s).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{Action, Trust};
    use crate::event::PrincipalKind;

    fn decision(id: &str, email: &str, trust: Trust) -> Decision {
        Decision {
            decision_id: "d".into(),
            action: Action::RevokeToken,
            principal: Some(email.into()),
            principal_id: Some(id.into()),
            principal_kind: PrincipalKind::Human,
            session_id: Some("1234".into()),
            score: 0.9,
            trust,
            ..Default::default()
        }
    }

    #[test]
    fn a_github_login_that_looks_like_an_okta_id_is_not_an_okta_user() {
        let d = decision(
            "00uceo",
            "00uceo",
            Trust {
                principal_vendor: Some("github".into()),
                session_vendor: Some("github".into()),
                evidence: vec!["e".into()],
                ..Default::default()
            },
        );
        assert!(user(&d, Vendor::Okta).is_err());
        assert!(user(&d, Vendor::Slack).is_err());
        assert_eq!(user(&d, Vendor::GitHub).unwrap(), User::Id("00uceo"));
        assert_eq!(vendor_session(&d, Vendor::Slack).unwrap(), None);
    }

    /// Found by a mutation run: the session a vendor's own log vouched for is addressed as it is, a session from
    /// another vendor's log is not; an id of exactly the longest length passes and one byte more is refused; a
    /// "verified" principal that is no e-mail address is not used as one.
    #[test]
    fn sessions_lengths_and_emails_are_addressed_exactly() {
        let d = decision(
            "00ualice",
            "alice@example.com",
            Trust {
                principal_vendor: Some("okta".into()),
                session_vendor: Some("okta".into()),
                email_verified_by: Some("okta".into()),
                ..Default::default()
            },
        );
        assert_eq!(vendor_session(&d, Vendor::Okta).unwrap(), Some("1234"));
        assert_eq!(vendor_session(&d, Vendor::GitHub).unwrap(), None);
        assert_eq!(user(&d, Vendor::Okta).unwrap().as_str(), "00ualice");
        assert_eq!(
            user(&d, Vendor::Slack).unwrap().as_str(),
            "alice@example.com"
        );
        let longest = "u".repeat(MAX_ID_BYTES);
        assert_eq!(safe_id("id", &longest).unwrap(), longest);
        assert!(safe_id("id", &format!("{longest}u")).is_err());
        let not_mail = decision(
            "gh-1",
            "alice",
            Trust {
                principal_vendor: Some("github".into()),
                email_verified_by: Some("okta".into()),
                ..Default::default()
            },
        );
        assert_eq!(verified_email(&not_mail).unwrap(), None);
        assert!(user(&not_mail, Vendor::Slack).is_err());
    }

    #[test]
    fn an_idp_verified_email_addresses_other_vendors() {
        let d = decision(
            "00ualice",
            "alice@example.com",
            Trust {
                principal_vendor: Some("okta".into()),
                email_verified_by: Some("okta".into()),
                ..Default::default()
            },
        );
        assert_eq!(user(&d, Vendor::Okta).unwrap(), User::Id("00ualice"));
        assert_eq!(
            user(&d, Vendor::Slack).unwrap(),
            User::Email("alice@example.com")
        );
    }

    #[test]
    fn dot_segments_empty_ids_and_control_characters_are_refused() {
        for bad in ["", ".", "..", "a\nb", "x\u{1b}[2J"] {
            let d = decision(
                bad,
                "x",
                Trust::vouched_by("okta", crate::event::Family::Idp, "e"),
            );
            assert!(user(&d, Vendor::Okta).is_err(), "{bad:?}");
        }
        let long = "a".repeat(MAX_ID_BYTES + 1);
        assert!(safe_id("id", &long).is_err());
    }
}
