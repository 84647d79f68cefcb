//! session_hijack: one session or token id used from a second device or browser on a second network while the
//! original is live: the highest-fidelity signal in IdP logs (a stolen cookie or token replayed elsewhere).
//!
//! In: events with a session id or token id. The first event of a session fixes its fingerprint (device id, user
//! agent, ASN, country, IP). Out: a finding when a later event differs in device or user agent AND in ASN or
//! country (`score`); a network-only change (VPN, mobile carrier hop) gets `network_only_score`, and nothing when
//! the source flags the new network as a proxy. One finding per new fingerprint. `session_end` forgets the session.
//! State per session/token (ids first seen unvouched live in the claimed pool of [`KeyedState`]): the original
//! fingerprint and the fingerprints already reported (at most eight): device id and user agent as 128-bit SHA-256
//! digests, country and IP bounded.

use super::{BuildContext, ConfigError, Detector, Finding};
use crate::event::{Category, Keys, SessionEvent};
use crate::state::{bounded, bounded_box, digest, Bounds, KeyedState};
use serde::Deserialize;

pub const NAME: &str = "session_hijack";
const FILE: &str = "session_hijack.toml";
const BUILTIN: &str = include_str!("../../detectors/session_hijack.toml");

/// `detectors/session_hijack.toml`; defaults in that file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionHijackConfig {
    pub score: f64,
    pub network_only_score: f64,
    pub session_ttl_secs: u64,
    pub max_keys: usize,
}

impl Default for SessionHijackConfig {
    fn default() -> Self {
        SessionHijackConfig {
            score: 0.95,
            network_only_score: 0.2,
            session_ttl_secs: 43_200,
            max_keys: 1_000_000,
        }
    }
}

pub fn build(ctx: &BuildContext) -> Result<Box<dyn Detector>, ConfigError> {
    let (file, cfg): (String, SessionHijackConfig) = ctx.config(FILE, BUILTIN)?;
    super::check_scores(
        &file,
        &[
            ("score", cfg.score),
            ("network_only_score", cfg.network_only_score),
        ],
    )?;
    let bounds = Bounds::from_secs(cfg.session_ttl_secs, cfg.max_keys);
    Ok(Box::new(SessionHijack {
        cfg,
        state: KeyedState::new(bounds),
        key: String::new(),
    }))
}

/// A fingerprint. The device id and the user agent are only compared, so they are kept as digests (a 40 KB user
/// agent costs what a short one does); the country and IP, which reasons show, are kept bounded.
#[derive(Default, Clone, PartialEq)]
struct Print {
    device: Option<[u8; 16]>,
    ua: Option<[u8; 16]>,
    asn: Option<u32>,
    country: Option<Box<str>>,
    ip: Option<Box<str>>,
}

impl Print {
    fn of(ev: &SessionEvent<'_>) -> Print {
        Print {
            device: ev.network.device_id.as_deref().map(digest),
            ua: ev.network.user_agent.as_deref().map(digest),
            asn: ev.network.asn,
            country: ev
                .network
                .geo
                .as_ref()
                .and_then(|g| g.country.as_deref())
                .map(bounded_box),
            ip: ev.network.ip.as_deref().map(bounded_box),
        }
    }
    fn place(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.country {
            s.push_str(c);
        }
        if let Some(a) = self.asn {
            s.push_str(&format!(" AS{a}"));
        }
        if let Some(ip) = &self.ip {
            s.push_str(&format!(" {ip}"));
        }
        s.trim().to_string()
    }
}

/// Both known and different.
fn differs<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if x != y)
}

struct SessionState {
    original: Print,
    first_event: Box<str>,
    reported: Vec<Print>,
}

pub struct SessionHijack {
    cfg: SessionHijackConfig,
    state: KeyedState<SessionState>,
    key: String,
}

impl SessionHijack {
    fn check(
        &mut self,
        what: &str,
        id: &str,
        vouched: bool,
        ev: &SessionEvent<'_>,
        out: &mut Vec<Finding>,
    ) {
        self.key.clear();
        self.key.push_str(what);
        self.key.push(':');
        self.key.push_str(id);
        if ev.category == Category::SessionEnd || ev.category == Category::TokenRevoked {
            self.state.remove(&self.key);
            return;
        }
        let now = ev.event_time;
        let Some(s) = self.state.get_mut_in(&self.key, now, vouched) else {
            let first = SessionState {
                original: Print::of(ev),
                first_event: bounded_box(&ev.event_id),
                reported: Vec::new(),
            };
            self.state.entry_in(&self.key, now, vouched, || first);
            return;
        };
        let o = &s.original;
        let n = &ev.network;
        // compared as kept in state: the country bounded, the device and user agent digested (only when the
        // network changed)
        let country = n
            .geo
            .as_ref()
            .and_then(|g| g.country.as_deref())
            .map(bounded);
        let net_changed =
            differs(&o.asn, &n.asn) || differs(&o.country.as_deref(), &country.as_deref());
        if !net_changed {
            return;
        }
        let print = Print::of(ev);
        let client_changed = differs(&o.device, &print.device) || differs(&o.ua, &print.ua);
        if !client_changed && n.is_proxy == Some(true) {
            return;
        }
        if s.reported.contains(&print) || s.reported.len() >= 8 {
            return;
        }
        let (score, how) = if client_changed {
            (
                self.cfg.score,
                "from a different device/browser and network",
            )
        } else {
            (
                self.cfg.network_only_score,
                "from a different network with the same device and browser",
            )
        };
        let ua = bounded(n.user_agent.as_deref().unwrap_or("unknown user agent"));
        let id = bounded(id);
        let reason = format!(
            "{what} {id} used {how} while live: {} ({ua}), first seen at {}",
            print.place(),
            o.place()
        );
        let evidence = vec![s.first_event.to_string(), ev.event_id.to_string()];
        s.reported.push(print);
        if score > 0.0 {
            out.push(Finding::new(NAME, score, reason, evidence, ev));
        }
    }
}

impl Detector for SessionHijack {
    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        if let Some(s) = &ev.session.session_id {
            self.check("session", s, ev.vouches(Keys::SESSION), ev, out);
        }
        if let Some(t) = &ev.session.token_id {
            self.check("token", t, ev.vouches(Keys::TOKEN), ev, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::at;
    use crate::event::*;

    fn hit(
        secs: i64,
        asn: u32,
        country: &'static str,
        ua: &'static str,
        device: Option<&'static str>,
    ) -> SessionEvent<'static> {
        let mut e = at(secs, &format!("h{secs}"), Family::Idp, Category::Sso);
        e.principal.email = Some("alice@example.com".into());
        e.session.session_id = Some("102abc".into());
        e.network.asn = Some(asn);
        e.network.user_agent = Some(ua.into());
        e.network.device_id = device.map(Text::from);
        e.network.geo = Some(Geo {
            lat: 0.0,
            lon: 0.0,
            city: None,
            country: Some(country.into()),
            accuracy_radius_km: None,
        });
        e
    }

    fn run(evs: &[SessionEvent<'static>]) -> Vec<Finding> {
        let mut d = build(&BuildContext { dir: None }).unwrap();
        let mut out = Vec::new();
        for e in evs {
            d.observe(e, &mut out);
        }
        out
    }

    #[test]
    fn stolen_session_replayed_from_another_continent_is_flagged_once() {
        let out = run(&[
            hit(0, 7922, "United States", "Chrome/Mac", Some("dev-1")),
            hit(600, 7713, "Indonesia", "python-requests/2.31", None),
            hit(660, 7713, "Indonesia", "python-requests/2.31", None),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.95);
        assert!(
            out[0].reason.contains("Indonesia AS7713") && out[0].reason.contains("python-requests"),
            "{}",
            out[0].reason
        );
        assert_eq!(out[0].evidence, vec!["h0".to_string(), "h600".to_string()]);
    }

    #[test]
    fn a_mobile_hop_with_the_same_browser_is_at_most_a_weak_signal() {
        let out = run(&[
            hit(0, 7922, "United States", "Chrome/Mac", Some("dev-1")),
            hit(600, 21928, "United States", "Chrome/Mac", Some("dev-1")),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.2);
    }

    #[test]
    fn a_proxy_flagged_vpn_switch_with_the_same_browser_is_nothing() {
        let mut vpn = hit(600, 9009, "Germany", "Chrome/Mac", Some("dev-1"));
        vpn.network.is_proxy = Some(true);
        assert!(run(&[
            hit(0, 7922, "United States", "Chrome/Mac", Some("dev-1")),
            vpn
        ])
        .is_empty());
    }

    #[test]
    fn forty_kilobyte_user_agents_are_kept_bounded_and_still_compared_whole() {
        let mut d = SessionHijack {
            cfg: SessionHijackConfig::default(),
            state: KeyedState::new(Bounds::default()),
            key: String::new(),
        };
        let ua = "Mozilla/5.0 ".repeat(3400);
        let mut first = hit(0, 7922, "United States", "x", None);
        first.network.user_agent = Some(Text::from(ua.clone()));
        let mut out = Vec::new();
        d.observe(&first, &mut out);
        let kept = d.state.peek("session:102abc").unwrap();
        assert_eq!(kept.original.ua, Some(digest(&ua)), "16 bytes, not 40 KB");
        // differs only in the last byte, from another network: a different browser
        let mut other = hit(600, 7713, "Indonesia", "x", None);
        other.network.user_agent = Some(Text::from(format!("{}!", &ua[..ua.len() - 1])));
        d.observe(&other, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.95);
        assert!(out[0].reason.len() < 600, "{}", out[0].reason);
    }

    #[test]
    fn a_session_ended_by_the_idp_starts_afresh() {
        let mut end = hit(300, 7922, "United States", "Chrome/Mac", Some("dev-1"));
        end.category = Category::SessionEnd;
        let out = run(&[
            hit(0, 7922, "United States", "Chrome/Mac", Some("dev-1")),
            end,
            hit(600, 7713, "Indonesia", "Firefox", None),
        ]);
        assert!(out.is_empty());
    }
}
