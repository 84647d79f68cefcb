//! Identity namespaces: every principal, key and session renamed by who vouches for it before detection.
//!
//! In: a correlated event. Out: the same event, its unvouched identities `claimed:…` and its non-person ones
//! prefixed by kind or vendor. State: none.

use super::*;

/// Prefix for identities and keys that no source vouches for.
pub const CLAIMED: &str = "claimed:";

/// Give each identity space its own names before detection, so that state and decisions about one can never be
/// fed by another (a detector's state, decide's subject and a decision's `principal` all use the principal's key):
/// - a principal or key no source vouches for becomes `claimed:…` (an anonymous request's `remote_user`, an
///   `x-token-id` header): it can still raise alerts about the claim, but it can neither add to a real person's or
///   token's baseline nor share their subject;
/// - a person's key is an e-mail or an IdP's own id; a SaaS app's user known only by its own id (a GitHub login, a
///   Slack id) becomes `{vendor}:{id}` in the key, so that a self-chosen login such as `00uceo` is not Okta's user;
/// - an agent or service whose name has the shape of an e-mail (an agent calling itself `cfo@…`) becomes
///   `{kind}:{name}` in the key, so that it never shares a person's state;
/// - a session vouched for by an agent or a gateway becomes `agent:…` / `gateway:…` (an MCP session is not an
///   IdP session, whatever its id).
///
/// The ids a target addresses (`principal.id`, and e-mails vouched for by an IdP) are left as they were, so
/// addressing still checks the vouching vendor.
pub(super) fn namespace_identities(ev: &mut SessionEvent<'_>) {
    fn prefixed<'a>(p: &str, t: &Text<'_>) -> Text<'a> {
        Text::Owned(format!("{p}{}", t.as_str()).into_boxed_str())
    }
    let keys = ev.session.vouched;
    for (k, slot) in [
        (Keys::TOKEN, &mut ev.session.token_id),
        (Keys::SESSION, &mut ev.session.session_id),
        (Keys::JOB, &mut ev.session.job_id),
        (Keys::CLIENT, &mut ev.session.client_id),
    ] {
        if let Some(v) = slot.as_ref().filter(|_| !keys.has(k)) {
            *slot = Some(prefixed(CLAIMED, v));
        }
    }
    // A session id means something only to its issuer. IdP and SaaS sessions share the people's name space (Entra
    // and M365 name the same sessions); an agent's or a gateway's session (an MCP session) is qualified with the
    // family, so that an agent naming a person's Okta session id neither becomes that session's first fingerprint
    // nor fills the fingerprints session_hijack keeps for it.
    if keys.has(Keys::SESSION) {
        let family = match ev.source.family {
            crate::event::Family::Agent => Some("agent:"),
            crate::event::Family::Gateway => Some("gateway:"),
            _ => None,
        };
        if let (Some(f), Some(v)) = (family, ev.session.session_id.as_ref()) {
            ev.session.session_id = Some(prefixed(f, v));
        }
    }
    let p = &mut ev.principal;
    match &p.vouched_by {
        None => {
            p.id = p.id.as_ref().map(|v| prefixed(CLAIMED, v));
            p.email = p.email.as_ref().map(|v| prefixed(CLAIMED, v));
        }
        Some(v) => {
            let person = p.kind == PrincipalKind::Human;
            let key_is_email = p.key().is_some_and(|k| k.contains('@'));
            if person && p.email.is_none() && v.family != crate::event::Family::Idp {
                // the key (email, else id) becomes vendor-qualified; the id itself stays for addressing
                if let Some(id) = p.id.as_ref() {
                    p.email = Some(prefixed(&format!("{}:", v.vendor.as_str()), id));
                }
            } else if !person && key_is_email {
                let kind = match p.kind {
                    PrincipalKind::Agent => "agent:",
                    PrincipalKind::Service => "service:",
                    _ => "unknown:",
                };
                if let Some(k) = p.key().map(|k| prefixed(kind, &Text::Borrowed(k))) {
                    p.email = Some(k);
                }
            }
        }
    }
}
