//! session_hijack: one session or token id used from a second client on a second network while the original is
//! live: the highest-fidelity signal in IdP logs (a stolen cookie or token replayed elsewhere).
//!
//! In: events with a session id or token id (each id is tracked on its own). Out: findings scored by what a new
//! event says about its client and network, against those the id was seen with (the rules below); one finding per
//! new (client, network) pair, at most eight per id, none with a score of 0. `session_end` and `token_revoked`
//! forget the id. State: per session and per token id, in a [`KeyedState`] bounded by an event-time TTL
//! (`session_ttl_secs`) and a key cap (`max_keys`; ids first seen unvouched live in its smaller claimed pool): the
//! first event's id and place, and at most eight each of devices, client families, networks, countries, sources
//! with and without a device, and reported (client, network) pairs, as 128-bit digests; and up to two events judged
//! before their source described the session (below), with their time, event id and place.
//!
//! A session is known by the clients and networks it has been seen on: devices (the IdP's device id), client
//! families (browser or app and OS from the user agent; versions and the vendors' own desktop apps differ
//! legitimately: one Entra session covers the browser, Outlook and Teams on a device), which sources named a
//! device, networks (the ISP by its organisation, so IPv4 and IPv6 on sibling ASNs are one network) and countries.
//! For a new event:
//! - a known device is the same client whatever its user agent says. Device evidence of a new client: another
//!   device; no device from a source that named the session's device on every earlier event (the cookie travelled
//!   without the device); a client family the source never showed, without the device the session always had. A
//!   new family in a session where no source ever named a device is weak evidence (an unmanaged laptop's second
//!   app); so is a client no source of the session showed yet (M365 records arrive after the sign-ins);
//! - relays, carriers and in-flight links (`network.kind` egress, mobile, satellite) say nothing about where the
//!   client is, so they are never a new network; the source's proxy flag on a network not listed as egress is an
//!   anonymizer (Tor, open proxies); any other ISP or country the session never used is a new network;
//! - device evidence on a new network, a relay or an anonymizer: `score`; weak evidence on a hosting network:
//!   `hosting_score`; in another country or through an anonymizer: `unproven_score`; the same client moving onto
//!   a hosting network it never used (an adversary-in-the-middle kit replaying the victim's cookie with the
//!   victim's user agent): `hosting_score`; onto an anonymizer (Tor, but also personal VPNs the IdP flags) without
//!   the session's device: `unproven_score`; the same client on another ISP, or through an anonymizer on its own
//!   device: `network_only_score`.
//!
//! Sources deliver out of order (M365 30-90 min after the sign-ins). An event on a new network from a client its
//! source had not described yet in the session is held (its family is not learned as the session's, nor that of
//! more events of the same client): when that source's own records of the session arrive, earlier in event time,
//! with another client family and on another network, the held event is judged again as event-time order would
//! have judged it (a different client on a new network: `score`), at its own time; a record from before it on its
//! network explains it (the network was the session's by then).

use super::{ua_family, BuildContext, ConfigError, Detector, Finding};
use crate::event::{Category, Keys, NetKind, SessionEvent};
use crate::state::{bounded, bounded_box, digest, DigestMemo, KeyedState};
use serde::Deserialize;

pub const NAME: &str = "session_hijack";
const FILE: &str = "session_hijack.toml";
const BUILTIN: &str = include_str!("../../detectors/session_hijack.toml");

/// Most values of each kind remembered per session.
const SET_CAP: usize = 8;

/// `detectors/session_hijack.toml`; defaults in that file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionHijackConfig {
    pub score: f64,
    pub hosting_score: f64,
    pub unproven_score: f64,
    pub network_only_score: f64,
    pub session_ttl_secs: u64,
    pub max_keys: usize,
}

impl Default for SessionHijackConfig {
    fn default() -> Self {
        SessionHijackConfig {
            score: 0.95,
            hosting_score: 0.75,
            unproven_score: 0.6,
            network_only_score: 0.1,
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
            ("hosting_score", cfg.hosting_score),
            ("unproven_score", cfg.unproven_score),
            ("network_only_score", cfg.network_only_score),
        ],
    )?;
    let bounds = ctx.bounds(cfg.session_ttl_secs, cfg.max_keys);
    Ok(Box::new(SessionHijack {
        cfg,
        state: KeyedState::new(bounds),
        key: String::new(),
        memo: PrintMemo::default(),
    }))
}

type Digest = [u8; 16];

/// A small set of digests (at most [`SET_CAP`]; when full, new values are not remembered).
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
struct Seen(Vec<Digest>);

impl Seen {
    fn has(&self, d: &Digest) -> bool {
        self.0.contains(d)
    }
    fn add(&mut self, d: Digest) {
        if !self.has(&d) && self.0.len() < SET_CAP {
            self.0.push(d);
        }
    }
}

/// What one event says about its client and network.
#[derive(Clone, Copy)]
struct Print {
    device: Option<Digest>,
    /// (source format, client family).
    family: Option<(Digest, Digest)>,
    /// The ISP, by its organisation and by its ASN: sibling ASNs of one ISP are one network, and a source that
    /// gives only the ASN still matches.
    network: [Option<Digest>; 2],
    country: Option<Digest>,
    /// A relay, carrier or in-flight link: its place and ISP say nothing about the client's.
    relay: bool,
    anonymizer: bool,
    hosting: bool,
    /// Where client families and device reporting are comparable (see [`namespace`]).
    namespace: Digest,
}

/// Digests [`Print::of`] derives from strings that repeat from event to event: user agents' client families,
/// source namespaces, ISPs and countries (bounded; see [`DigestMemo`]).
#[derive(Default)]
struct PrintMemo {
    families: DigestMemo,
    namespaces: DigestMemo,
    orgs: DigestMemo,
    places: DigestMemo,
}

impl Print {
    fn of(ev: &SessionEvent<'_>, memo: &mut PrintMemo) -> Print {
        let n = &ev.network;
        let namespace = memo.namespaces.get(&namespace(ev), digest);
        let network = [
            n.as_org
                .as_deref()
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| memo.orgs.get(o, |o| digest(&o.to_lowercase()))),
            n.asn.map(|a| memo.places.get(&format!("AS{a}"), digest)),
        ];
        Print {
            device: n.device_id.as_deref().filter(|d| !d.is_empty()).map(digest),
            family: n.user_agent.as_deref().map(|ua| {
                (
                    namespace,
                    memo.families.get(ua, |ua| digest(&ua_family(ua))),
                )
            }),
            network,
            country: n
                .geo
                .as_ref()
                .and_then(|g| g.country.as_deref())
                .map(|c| memo.places.get(c, digest)),
            relay: matches!(
                n.kind,
                Some(NetKind::Egress | NetKind::Mobile | NetKind::Satellite)
            ),
            // the source's own proxy flag on a network the operator did not list as egress: an anonymizer (Tor,
            // an open proxy), where a signed-in employee's session has no business
            anonymizer: n.is_proxy == Some(true) && n.kind != Some(NetKind::Egress),
            hosting: n.kind == Some(NetKind::Hosting),
            namespace,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SessionState {
    first_event: Box<str>,
    first_place: Box<str>,
    devices: Seen,
    /// (source format, client family) pairs, at most [`SET_CAP`].
    families: Vec<(Digest, Digest)>,
    networks: Seen,
    countries: Seen,
    /// Sources (namespaces) whose events in this session named a device, and those that once did not.
    with_device: Seen,
    without_device: Seen,
    /// (client, network) pairs already reported.
    reported: Seen,
    /// Events judged before their source described the session (at most [`UNPROVEN_KEPT`]), judged again when an
    /// earlier record of that source arrives.
    #[serde(default)]
    unproven: Vec<Unproven>,
}

/// Most [`Unproven`] events kept per session.
const UNPROVEN_KEPT: usize = 2;

/// An event on a new network from a client that the session's records from its source had not described when it
/// was judged, because that source delivers late (M365 30-90 min after the sign-ins): in event-time order those
/// records come first, and a client family other than theirs, without the session's device, is a different client.
/// Kept so that the judgement is the one event-time order gives once the earlier records arrive.
#[derive(serde::Serialize, serde::Deserialize)]
struct Unproven {
    at: crate::event::Ts,
    /// (source namespace, client family) of the event.
    family: (Digest, Digest),
    /// Its network and country ([`Print`]): a record from before it on the same network explains it.
    #[serde(default)]
    network: [Option<Digest>; 2],
    #[serde(default)]
    country: Option<Digest>,
    event: Box<str>,
    /// Its place and user agent, for the reason.
    seen: Box<str>,
}

impl SessionState {
    fn learn(&mut self, p: &Print) {
        if let Some(d) = p.device {
            self.devices.add(d);
            self.with_device.add(p.namespace);
        } else {
            self.without_device.add(p.namespace);
        }
        if let Some(f) = p.family {
            if !self.families.contains(&f) && self.families.len() < SET_CAP {
                self.families.push(f);
            }
        }
        if !p.relay {
            for n in p.network.into_iter().flatten() {
                self.networks.add(n);
            }
            if let Some(c) = p.country {
                self.countries.add(c);
            }
        }
    }
}

/// Where client families are comparable: one source's events, and in the M365 unified audit log one workload's
/// (Exchange names its client by a client-info string, SharePoint by the browser's user agent).
fn namespace<'e>(ev: &'e SessionEvent<'_>) -> std::borrow::Cow<'e, str> {
    if ev.source.format.as_str() == crate::event::M365_AUDIT {
        format!(
            "{}|{}",
            ev.source.format,
            ev.resource.app.as_deref().unwrap_or("")
        )
        .into()
    } else {
        ev.source.format.as_str().into()
    }
}

fn place(ev: &SessionEvent<'_>) -> String {
    let n = &ev.network;
    let mut s = String::new();
    if let Some(c) = n.geo.as_ref().and_then(|g| g.country.as_deref()) {
        s.push_str(&bounded(c));
    }
    if let Some(a) = n.asn {
        s.push_str(&format!(" AS{a}"));
    }
    if let Some(o) = &n.as_org {
        s.push_str(&format!(" ({})", bounded(o)));
    }
    if let Some(k) = n.kind {
        s.push_str(&format!(" [{}]", k.as_str()));
    }
    if let Some(ip) = &n.ip {
        s.push_str(&format!(" {}", bounded(ip)));
    }
    s.trim().to_string()
}

pub struct SessionHijack {
    cfg: SessionHijackConfig,
    state: KeyedState<SessionState>,
    key: String,
    memo: PrintMemo,
}

impl SessionHijack {
    fn check(
        &mut self,
        what: &str,
        id: &str,
        vouched: bool,
        ev: &SessionEvent<'_>,
        p: &Print,
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
            let mut first = SessionState {
                first_event: bounded_box(&ev.event_id),
                first_place: place(ev).into(),
                devices: Seen::default(),
                families: Vec::new(),
                networks: Seen::default(),
                countries: Seen::default(),
                with_device: Seen::default(),
                without_device: Seen::default(),
                reported: Seen::default(),
                unproven: Vec::new(),
            };
            first.learn(p);
            self.state.entry_in(&self.key, now, vouched, || first);
            return;
        };
        // An event from before a held one ([`Unproven`]): of the same client, the client is held from then on; of
        // another, on its network, in event-time order that network was the session's by then, and the held event
        // is no different client on a new network.
        s.unproven.retain_mut(|u| {
            if now >= u.at {
                return true;
            }
            if p.family == Some(u.family) {
                u.at = now;
                u.event = bounded_box(&ev.event_id);
                return true;
            }
            let same_network = if u.network.iter().any(Option::is_some) {
                u.network
                    .iter()
                    .flatten()
                    .any(|n| p.network.contains(&Some(*n)))
            } else {
                u.country.is_some() && u.country == p.country
            };
            !same_network
        });
        let known_device = p.device.is_some_and(|d| s.devices.has(&d));
        let new_device = p.device.is_some_and(|d| !s.devices.has(&d)) && !s.devices.0.is_empty();
        // a source that named the session's device on every earlier event names none now: the cookie travelled
        // without the device
        let dropped_device = p.device.is_none()
            && s.with_device.has(&p.namespace)
            && !s.without_device.has(&p.namespace);
        // client families are compared within one source: Exchange's client info and Entra's user agent name the
        // same client differently
        let new_family = p.family.is_some_and(|(fmt, fam)| {
            s.families.iter().any(|(f, _)| *f == fmt) && !s.families.contains(&(fmt, fam))
        });
        // Device evidence: another device, a device gone missing, or a new client family without the device a
        // session on a known device always had. A new family where no source ever named a device (an unmanaged
        // laptop's second app, a phone's) is weak: apps and browsers share sessions legitimately.
        let strong_client = !known_device
            && (new_device
                || dropped_device
                || (new_family && p.device.is_none() && !s.devices.0.is_empty()));
        let weak_client = !known_device && !strong_client && new_family;
        // A client this source has not described yet in the session (its records arrive late, or not at all), with
        // no device, whose family no source of the session ever showed: unproven.
        let unproven = p.device.is_none()
            && !s.devices.0.is_empty()
            && p.family
                .is_some_and(|(fmt, fam)| !s.families.iter().any(|(f, x)| *f == fmt || *x == fam));
        let new_country = p.country.is_some_and(|c| !s.countries.has(&c));
        // a network the session never used; a session seen so far only through relays or on addresses nobody
        // places (an internal host) has used no network yet, so any real one is new
        let new_network = !p.relay
            && ((p.network.iter().any(Option::is_some)
                && !p.network.iter().flatten().any(|n| s.networks.has(n)))
                || new_country);
        let suspicious_network = p.hosting || p.anonymizer;
        let new_client = strong_client || weak_client;
        let (score, how) = if strong_client && (new_network || p.relay || p.anonymizer) {
            (self.cfg.score, "from a different client and network")
        } else if (weak_client || unproven) && new_network && p.hosting {
            (
                self.cfg.hosting_score,
                "from a client the session never showed, without a device to tell, on a hosting network",
            )
        } else if (weak_client || unproven) && new_network && (new_country || suspicious_network) {
            (
                self.cfg.unproven_score,
                "from a client the session never showed, without a device to tell, in another country or through an anonymizing proxy",
            )
        } else if !new_client && new_network && p.hosting {
            (
                self.cfg.hosting_score,
                "from a hosting network it never used, with the same client (a replayed cookie)",
            )
        } else if !new_client && new_network && p.anonymizer && !known_device {
            // Tor and open proxies, but also personal VPNs the IdP flags: a step-up, not a revocation; on the
            // session's own device it is the person's VPN
            (
                self.cfg.unproven_score,
                "through an anonymizing proxy it never used, with the same client",
            )
        } else if !new_client && new_network {
            (
                self.cfg.network_only_score,
                "from another network with the same client",
            )
        } else {
            // more of a client held for judging again: its family is not the session's yet either
            if unproven
                && p.family
                    .is_some_and(|f| s.unproven.iter().any(|u| u.family == f))
            {
                s.learn(&Print { family: None, ..*p });
            } else {
                s.learn(p);
                if !new_client {
                    judge_again(s, p, what, id, self.cfg.score, ev, out);
                }
            }
            return;
        };
        let pair = {
            let mut k = Vec::with_capacity(48);
            k.extend_from_slice(&p.device.or(p.family.map(|f| f.1)).unwrap_or_default());
            k.extend_from_slice(&p.network[0].or(p.network[1]).unwrap_or_default());
            k.extend_from_slice(&p.country.unwrap_or_default());
            digest(&hex::encode(k))
        };
        let first_report = !s.reported.has(&pair) && s.reported.0.len() < SET_CAP;
        s.reported.add(pair);
        let ua = bounded(
            ev.network
                .user_agent
                .as_deref()
                .unwrap_or("unknown user agent"),
        );
        let seen = format!("{} ({ua})", place(ev));
        if let Some(family) = p.family {
            if unproven
                && !strong_client
                && s.unproven.len() < UNPROVEN_KEPT
                && !s.unproven.iter().any(|u| u.family == family)
            {
                s.unproven.push(Unproven {
                    at: now,
                    family,
                    network: p.network,
                    country: p.country,
                    event: bounded_box(&ev.event_id),
                    seen: seen.as_str().into(),
                });
            }
        }
        // a new client is never learned as the session's own: the next event from it is judged the same way; the
        // family of one its source had not described yet is not learned either, until that source's records of
        // the session say whose it is
        if !new_client {
            if unproven {
                s.learn(&Print { family: None, ..*p });
            } else {
                s.learn(p);
                judge_again(s, p, what, id, self.cfg.score, ev, out);
            }
        }
        if !first_report || score <= 0.0 {
            return;
        }
        let id = bounded(id);
        let reason = format!(
            "{what} {id} used {how} while live: {seen}, first seen at {}",
            s.first_place
        );
        let evidence = vec![s.first_event.to_string(), ev.event_id.to_string()];
        out.push(Finding::new(NAME, score, reason, evidence, ev));
    }
}

/// `ev` (printed `p`), just learned as the session's own client, describes the session for its source earlier in
/// event time than events judged before it arrived ([`Unproven`]; those on its own network are gone already):
/// those of another client family from that source are a different client on a new network, as in event-time
/// order, and are reported again with `score`.
fn judge_again(
    s: &mut SessionState,
    p: &Print,
    what: &str,
    id: &str,
    score: f64,
    ev: &SessionEvent<'_>,
    out: &mut Vec<Finding>,
) {
    let Some((namespace, family)) = p.family else {
        return;
    };
    if score <= 0.0 {
        return;
    }
    s.unproven.retain(|u| {
        let different = u.family.0 == namespace && u.family.1 != family && u.at > ev.event_time;
        if different {
            let reason = format!(
                "{what} {} used from a different client and network while live: {}, first seen at {} (judged again when this source's earlier records of the {what} arrived)",
                bounded(id),
                u.seen,
                s.first_place
            );
            let evidence = vec![s.first_event.to_string(), u.event.to_string()];
            let mut f = Finding::new(NAME, score, reason, evidence, ev);
            f.event_time = u.at;
            out.push(f);
        }
        !different
    });
}

impl Detector for SessionHijack {
    fn expire(&mut self, watermark: crate::event::Ts) {
        self.state.expire(watermark);
    }

    fn save(&self) -> Result<Option<super::Saved>, serde_json::Error> {
        super::save(&self.state)
    }

    fn load(&mut self, saved: &serde_json::value::RawValue) -> Result<(), String> {
        self.state.restore(super::load(saved)?)
    }

    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        if ev.session.session_id.is_none() && ev.session.token_id.is_none() {
            return;
        }
        // one event's fingerprint (several digests) serves its session and its token alike
        let p = Print::of(ev, &mut self.memo);
        if let Some(s) = &ev.session.session_id {
            self.check("session", s, ev.vouches(Keys::SESSION), ev, &p, out);
        }
        if let Some(t) = &ev.session.token_id {
            self.check("token", t, ev.vouches(Keys::TOKEN), ev, &p, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::at;
    use crate::event::*;

    const MAC_CHROME: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

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
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        for e in evs {
            d.observe(e, &mut out);
        }
        out
    }

    /// An Exchange record of the M365 unified audit log in session `102abc`, without a device.
    fn exchange(
        secs: i64,
        asn: u32,
        country: &'static str,
        client: &'static str,
    ) -> SessionEvent<'static> {
        let mut e = hit(secs, asn, country, client, None);
        e.source.format = "m365_audit".into();
        e.resource.app = Some("Exchange".into());
        e
    }

    /// An Entra sign-in of session `102abc` on device `dev-1`, from `ua` in the UK.
    fn entra_signin(ua: &'static str) -> SessionEvent<'static> {
        let mut e = hit(0, 2856, "GB", ua, Some("dev-1"));
        e.source.format = "entra_signin".into();
        e
    }

    #[test]
    fn stolen_session_replayed_from_another_continent_is_flagged_once() {
        let out = run(&[
            hit(0, 7922, "United States", MAC_CHROME, Some("dev-1")),
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
    fn a_mobile_hop_with_the_same_browser_is_nothing() {
        let mut phone = hit(600, 21928, "United States", MAC_CHROME, Some("dev-1"));
        phone.network.kind = Some(NetKind::Mobile);
        assert!(run(&[
            hit(0, 7922, "United States", MAC_CHROME, Some("dev-1")),
            phone
        ])
        .is_empty());
    }

    #[test]
    fn another_isp_with_the_same_device_is_a_weak_signal_only() {
        let out = run(&[
            hit(0, 7922, "United States", MAC_CHROME, Some("dev-1")),
            hit(600, 701, "United States", MAC_CHROME, Some("dev-1")),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.1);
    }

    /// The corporate VPN (listed as egress) is nothing; a network the IdP flags as an anonymizing proxy (a personal
    /// VPN, Tor) is at most a step-up with the same browser.
    #[test]
    fn a_vpn_switch_with_the_same_browser_is_nothing_and_a_flagged_proxy_at_most_a_step_up() {
        let mut vpn = hit(600, 9009, "Germany", MAC_CHROME, Some("dev-1"));
        vpn.network.is_proxy = Some(true);
        vpn.network.kind = Some(NetKind::Egress);
        assert!(run(&[
            hit(0, 7922, "United States", MAC_CHROME, Some("dev-1")),
            vpn
        ])
        .is_empty());
        let mut flagged = hit(600, 9009, "Germany", MAC_CHROME, Some("dev-1"));
        flagged.network.is_proxy = Some(true);
        let out = run(&[
            hit(0, 7922, "United States", MAC_CHROME, Some("dev-1")),
            flagged,
        ]);
        assert!(out.iter().all(|f| f.score <= 0.6), "{out:?}");
    }

    /// Dual stack: the same household's IPv6 comes from a sibling ASN of the same ISP.
    #[test]
    fn ipv4_and_ipv6_of_one_isp_on_sibling_asns_are_one_network() {
        let mut v4 = hit(0, 7922, "US", MAC_CHROME, Some("dev-1"));
        v4.network.as_org = Some("Comcast Cable".into());
        let mut v6 = hit(600, 33657, "US", MAC_CHROME, Some("dev-1"));
        v6.network.as_org = Some("Comcast Cable".into());
        v6.network.ip = Some("2400:1:2a:1::7".into());
        assert!(run(&[v4, v6]).is_empty());
    }

    /// One Entra session covers the browser, Outlook and Teams on one device, each with its own user agent.
    #[test]
    fn desktop_apps_on_the_sessions_own_device_are_the_same_client_from_any_network() {
        let out = run(&[
            hit(0, 7922, "US", MAC_CHROME, Some("dev-1")),
            hit(
                600,
                7922,
                "US",
                "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18129; Pro)",
                Some("dev-1"),
            ),
            hit(900, 701, "US", "Teams/24295.605.3225.8804", Some("dev-1")),
        ]);
        assert!(out.iter().all(|f| f.score <= 0.1), "{out:?}");
    }

    /// Adversary-in-the-middle: the victim's exact user agent and device cookie, the victim's country, a cloud
    /// provider's network.
    #[test]
    fn the_same_client_moving_onto_a_hosting_network_is_a_replayed_cookie() {
        let mut cloud = hit(600, 16509, "US", MAC_CHROME, Some("dev-1"));
        cloud.network.kind = Some(NetKind::Hosting);
        let out = run(&[hit(0, 7922, "US", MAC_CHROME, Some("dev-1")), cloud]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.75);
    }

    #[test]
    fn a_browser_update_on_the_same_device_and_network_is_nothing() {
        assert!(run(&[
            hit(0, 7922, "US", MAC_CHROME, Some("dev-1")),
            hit(
                600,
                7922,
                "US",
                &*Box::leak(MAC_CHROME.replace("131", "132").into_boxed_str()),
                None
            ),
        ])
        .is_empty());
    }

    #[test]
    fn a_new_client_through_a_relay_is_still_a_replay() {
        let mut relay = hit(600, 13335, "NL", "python-requests/2.31", None);
        relay.network.kind = Some(NetKind::Egress);
        let out = run(&[hit(0, 7922, "US", MAC_CHROME, Some("dev-1")), relay]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.95);
    }

    /// A session that has only been seen through a security proxy has no network of its own yet: a new client on
    /// a real network is still a replay.
    #[test]
    fn a_new_client_after_only_relayed_traffic_is_a_replay() {
        let mut z = hit(0, 53813, "US", MAC_CHROME, Some("dev-1"));
        z.network.kind = Some(NetKind::Egress);
        let out = run(&[z, hit(600, 7713, "Indonesia", "python-requests/2.31", None)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.95);
    }

    /// Found on the simulator's traffic: M365 records arrive 30-90 min late, so the attacker's mailbox access can be
    /// the first Exchange record of the session Quench sees. A REST client no source of the session ever showed,
    /// without the session's device, from another country, is still judged.
    #[test]
    fn a_mailbox_client_seen_before_the_sessions_own_exchange_records_is_judged_against_all_sources(
    ) {
        let mut signin = hit(
            0,
            2856,
            "GB",
            "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18129; Pro)",
            Some("dev-1"),
        );
        signin.source.format = "entra_signin".into();
        let mut mail = hit(600, 29465, "NG", "Client=REST;Client=RESTSystem;;", None);
        mail.source.format = "m365_audit".into();
        mail.resource.app = Some("Exchange".into());
        let out = run(&[signin.clone(), mail]);
        assert_eq!(out.len(), 1);
        // a step-up on its own (a border crossing looks the same); with impossible travel it revokes
        assert_eq!(out[0].score, 0.6);
        // the session's own desktop client through Exchange, first seen from the same country: nothing
        let mut own = hit(600, 2856, "GB", "Client=MSExchangeRPC", None);
        own.source.format = "m365_audit".into();
        own.resource.app = Some("Exchange".into());
        assert!(run(&[signin, own]).is_empty());
    }

    /// Found on the simulator's traffic (seed 8, arrival order against event-time order): an attacker read a
    /// victim's mailbox from abroad with a REST client, and the session's own Exchange records, delivered 30-90 min
    /// late, arrived after the attacker's. In event-time order the REST client is a different client (0.95, a
    /// logout); in arrival order it was judged before the session's Exchange client was known (0.6) and never
    /// again.
    #[test]
    fn a_mailbox_client_judged_before_the_sessions_late_exchange_records_is_judged_again_when_they_arrive(
    ) {
        let signin = entra_signin(
            "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18129; Pro)",
        );
        let own = exchange(300, 2856, "GB", "Client=MSExchangeRPC");
        let thief = exchange(600, 29465, "NG", "Client=REST;Client=RESTSystem;;");
        let strongest = |out: &[Finding]| {
            out.iter()
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .map(|f| (f.score, f.event_time, f.evidence.clone()))
        };
        let in_order = run(&[signin.clone(), own.clone(), thief.clone()]);
        assert_eq!(
            strongest(&in_order),
            Some((
                0.95,
                thief.event_time,
                vec!["h0".to_string(), "h600".to_string()]
            ))
        );
        let arrived = run(&[signin.clone(), thief.clone(), own]);
        assert_eq!(
            arrived.first().map(|f| f.score),
            Some(0.6),
            "judged on arrival: {arrived:?}"
        );
        assert_eq!(strongest(&arrived), strongest(&in_order), "{arrived:?}");
        // the session's own client arriving late says nothing about a thief of the same client family
        let same = exchange(300, 2856, "GB", "Client=REST;Client=RESTSystem;;");
        let arrived = run(&[signin, thief, same]);
        assert!(arrived.iter().all(|f| f.score <= 0.6), "{arrived:?}");
    }

    /// Found by an outside review of judging again: a person's two Exchange clients at home (desktop Outlook at
    /// 10:00, the browser at 10:30), the later record delivered first. In event-time order the home network is the
    /// session's by 10:30, and nothing is flagged; judged again, the browser looked like a thief and logged her out.
    #[test]
    fn a_late_record_on_the_held_events_own_network_explains_it() {
        let signin = entra_signin(MAC_CHROME);
        let (rpc, owa) = (
            exchange(3600, 5089, "GB", "Client=MSExchangeRPC"),
            exchange(5400, 5089, "GB", "Client=OWA;Action=ViewAttachment"),
        );
        let top = |out: Vec<Finding>| out.iter().map(|f| f.score).fold(0.0, f64::max);
        let in_order = top(run(&[signin.clone(), rpc.clone(), owa.clone()]));
        assert!(in_order < 0.5, "{in_order}");
        assert_eq!(top(run(&[signin, owa, rpc])), in_order);
    }

    /// Found by an outside review of judging again: a thief reading the mailbox makes more than one request, and
    /// the second was learned as the session's own Exchange client, so the session's records arriving late looked
    /// like the new client and the thief was never judged again.
    #[test]
    fn a_thief_with_several_requests_is_judged_again_when_the_sessions_late_records_arrive() {
        let signin = entra_signin(MAC_CHROME);
        let own = exchange(300, 2856, "GB", "Client=MSExchangeRPC");
        let rest = "Client=REST;Client=RESTSystem;;";
        let thief = [
            exchange(600, 29465, "NG", rest),
            exchange(660, 29465, "NG", rest),
            exchange(540, 29465, "NG", rest),
        ];
        let top = |out: &[Finding]| out.iter().map(|f| f.score).fold(0.0, f64::max);
        let mut in_order = vec![
            signin.clone(),
            own.clone(),
            thief[2].clone(),
            thief[0].clone(),
            thief[1].clone(),
        ];
        assert_eq!(top(&run(&in_order)), 0.95);
        // the thief's records first, the earliest of them last; then the session's own
        in_order.clear();
        in_order.push(signin);
        in_order.extend(thief.iter().cloned());
        in_order.push(own);
        let arrived = run(&in_order);
        assert_eq!(top(&arrived), 0.95, "{arrived:?}");
    }

    /// Found by an outside review: an unmanaged laptop (no device id anywhere) behind a security proxy opens
    /// Outlook after Chrome in one Entra session; a phone on a carrier opens Teams after Outlook.
    #[test]
    fn a_second_app_in_a_session_no_source_ever_named_a_device_for_is_not_a_replay() {
        let mut a = hit(0, 53813, "US", MAC_CHROME, None);
        a.network.kind = Some(NetKind::Egress);
        let mut b = hit(
            60,
            53813,
            "US",
            "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18129; Pro)",
            None,
        );
        b.network.kind = Some(NetKind::Egress);
        assert!(run(&[a, b]).is_empty());
        let mut a = hit(0, 21928, "US", "Outlook-iOS/2.0", None);
        a.network.kind = Some(NetKind::Mobile);
        let mut b = hit(60, 21928, "US", "Teams/1.0 (iPhone; iOS 18.1)", None);
        b.network.kind = Some(NetKind::Mobile);
        assert!(run(&[a, b]).is_empty());
    }

    /// Found by an outside review: a managed laptop signs in from Geneva; an hour later Outlook reads mail from
    /// across the border in France, the session's first Exchange record. At most a step-up, never a logout.
    #[test]
    fn a_first_exchange_record_across_a_border_is_not_a_logout() {
        let mut signin = hit(0, 3303, "CH", MAC_CHROME, Some("dev-1"));
        signin.source.format = "entra_signin".into();
        let mut mail = hit(3600, 3215, "FR", "Client=MSExchangeRPC", None);
        mail.source.format = "m365_audit".into();
        mail.resource.app = Some("Exchange".into());
        let out = run(&[signin, mail]);
        assert!(out.iter().all(|f| f.score <= 0.6), "{out:?}");
    }

    /// Found by an outside review: an adversary-in-the-middle replay through Tor (the IdP flags it as a proxy) with
    /// the victim's exact browser string went unseen.
    #[test]
    fn the_sessions_own_client_through_an_anonymizer_is_a_step_up() {
        let mut tor = hit(1200, 60729, "DE", MAC_CHROME, None);
        tor.network.is_proxy = Some(true);
        let out = run(&[hit(0, 7922, "US", MAC_CHROME, None), tor]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.6);
    }

    /// Found by an outside review: the cookie replayed with the victim's browser string from a residential proxy
    /// abroad, without the registered device the IdP named on every earlier event of the session.
    #[test]
    fn a_session_whose_source_always_named_its_device_seen_without_it_elsewhere_is_a_replay() {
        let out = run(&[
            hit(0, 7922, "US", MAC_CHROME, Some("dev-1")),
            hit(600, 7922, "US", MAC_CHROME, Some("dev-1")),
            hit(1200, 8708, "RO", MAC_CHROME, None),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.95);
    }

    /// A gateway token first used from an internal address (no ASN, no place) and then from a cloud provider.
    #[test]
    fn a_token_first_seen_internally_then_used_from_a_hosting_network_is_flagged() {
        let mut internal = at(0, "k0", Family::Gateway, Category::ApiRequest);
        internal.session.token_id = Some("tok-svc".into());
        internal.network.ip = Some("10.20.0.15".into());
        internal.network.user_agent = Some("svc-client/1.4".into());
        let mut outside = at(600, "k1", Family::Gateway, Category::ApiRequest);
        outside.session.token_id = Some("tok-svc".into());
        outside.network.ip = Some("3.80.1.2".into());
        outside.network.asn = Some(16509);
        outside.network.kind = Some(NetKind::Hosting);
        outside.network.user_agent = Some("svc-client/1.4".into());
        let out = run(&[internal, outside]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.75);
    }

    #[test]
    fn forty_kilobyte_user_agents_are_kept_bounded_and_still_compared() {
        let mut d = SessionHijack {
            cfg: SessionHijackConfig::default(),
            state: KeyedState::new(crate::state::Bounds::default()),
            key: String::new(),
            memo: PrintMemo::default(),
        };
        let ua = "Mozilla/5.0 ".repeat(3400);
        let mut first = hit(0, 7922, "United States", "x", Some("dev-1"));
        first.network.user_agent = Some(Text::from(ua.clone()));
        let mut out = Vec::new();
        d.observe(&first, &mut out);
        let kept = d.state.peek("session:102abc").unwrap();
        assert_eq!(kept.families.len(), 1, "two 16-byte digests, not 40 KB");
        assert_eq!(kept.devices.0.len(), 1);
        let mut other = hit(600, 7713, "Indonesia", "curl/8.5.0", None);
        other.network.user_agent = Some(Text::from(format!("curl/8.5.0 {}", &ua[..ua.len() - 1])));
        d.observe(&other, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.95);
        assert!(out[0].reason.len() < 1200, "{}", out[0].reason);
    }

    #[test]
    fn a_session_ended_by_the_idp_starts_afresh() {
        let mut end = hit(300, 7922, "United States", MAC_CHROME, Some("dev-1"));
        end.category = Category::SessionEnd;
        let out = run(&[
            hit(0, 7922, "United States", MAC_CHROME, Some("dev-1")),
            end,
            hit(600, 7713, "Indonesia", "Firefox", None),
        ]);
        assert!(out.is_empty());
    }
}
