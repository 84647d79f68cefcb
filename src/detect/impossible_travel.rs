//! impossible_travel: consecutive authenticated events of one principal from places whose great-circle distance
//! over the elapsed time needs a speed above `max_speed_kmh`.
//!
//! In: successful (or outcome-unknown) activity events (not `session_end`, `token_revoked` or `other`) with
//! coordinates, not marked `location_untrusted`. Guards: the same IP is never travel, nor is one session on one
//! device; proxy/VPN-flagged events, events from configured egress ranges and events on networks whose place is
//! not the user's (`network.kind` egress: security proxies, relays, VPN exits; mobile: carriers geolocated to a
//! hub; satellite: in-flight links) are skipped; both accuracy radii are subtracted from the distance; locations
//! less accurate than `max_accuracy_km` are skipped; distances under `min_distance_km` are never travel.
//! Order-tolerant: sources arrive minutes to hours late, so an event is compared with its nearest neighbours in
//! event time on both sides among the principal's recent places, never dropped for being older than the newest.
//! Out: one finding per impossible hop; a place that was reported is not compared again. State: per principal, in
//! a [`KeyedState`] (event-time TTL `ttl_secs`, key cap `max_keys`; principals first seen unvouched live in its
//! smaller claimed pool): up to [`PLACES`] recent trusted locations by event time (coordinates, accuracy, time, IP,
//! place, event id, session and device, whether reported; each string bounded).

use super::{BuildContext, ConfigError, Detector, Finding};
use crate::event::{NetKind, Outcome, SessionEvent, Ts};
use crate::net::Cidr;
use crate::state::{bounded, bounded_box, KeyedState};
use serde::Deserialize;
use std::net::IpAddr;

pub const NAME: &str = "impossible_travel";
const FILE: &str = "impossible_travel.toml";
const BUILTIN: &str = include_str!("../../detectors/impossible_travel.toml");

/// `detectors/impossible_travel.toml`; defaults in that file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImpossibleTravelConfig {
    pub max_speed_kmh: f64,
    pub min_distance_km: f64,
    pub default_accuracy_km: f64,
    pub max_accuracy_km: f64,
    pub min_elapsed_secs: u64,
    pub trust_proxy_flag: bool,
    pub egress_cidrs: Vec<String>,
    pub score: f64,
    pub ttl_secs: u64,
    pub max_keys: usize,
}

impl Default for ImpossibleTravelConfig {
    fn default() -> Self {
        ImpossibleTravelConfig {
            max_speed_kmh: 900.0,
            min_distance_km: 500.0,
            default_accuracy_km: 25.0,
            max_accuracy_km: 200.0,
            min_elapsed_secs: 60,
            trust_proxy_flag: true,
            egress_cidrs: Vec::new(),
            score: 0.6,
            ttl_secs: 1_209_600,
            max_keys: 1_000_000,
        }
    }
}

pub fn build(ctx: &BuildContext) -> Result<Box<dyn Detector>, ConfigError> {
    let (file, cfg): (String, ImpossibleTravelConfig) = ctx.config(FILE, BUILTIN)?;
    let mut egress = Vec::new();
    for c in &cfg.egress_cidrs {
        egress.push(Cidr::parse(c).ok_or_else(|| ConfigError::Invalid {
            file: file.clone(),
            key: "egress_cidrs",
            value: c.clone(),
            why: "not a CIDR range such as 203.0.113.0/24 or 2001:db8::/32".into(),
        })?);
    }
    if cfg.max_speed_kmh <= 0.0 {
        return Err(ConfigError::Invalid {
            file,
            key: "max_speed_kmh",
            value: cfg.max_speed_kmh.to_string(),
            why: "must be positive".into(),
        });
    }
    let bounds = ctx.bounds(cfg.ttl_secs, cfg.max_keys);
    Ok(Box::new(ImpossibleTravel {
        cfg,
        egress,
        state: KeyedState::new(bounds),
    }))
}

/// Recent places remembered per principal.
pub const PLACES: usize = 8;

#[derive(serde::Serialize, serde::Deserialize)]
struct Place {
    /// Reported as one end of an impossible hop: not compared again.
    flagged: bool,
    lat: f64,
    lon: f64,
    acc: f64,
    time: Ts,
    ip: Option<Box<str>>,
    /// The (session, device) pair of the event that recorded this place (when it had both), for the same-device
    /// guard.
    seen: Vec<(Box<str>, Box<str>)>,
    name: Box<str>,
    event_id: Box<str>,
}

pub struct ImpossibleTravel {
    cfg: ImpossibleTravelConfig,
    egress: Vec<Cidr>,
    state: KeyedState<Vec<Place>>,
}

impl Detector for ImpossibleTravel {
    fn expire(&mut self, watermark: Ts) {
        self.state.expire(watermark);
    }

    fn save(&self) -> Result<Option<super::Saved>, serde_json::Error> {
        super::save(&self.state)
    }

    fn load(&mut self, saved: &serde_json::value::RawValue) -> Result<(), String> {
        self.state.restore(super::load(saved)?)
    }

    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        let cfg = &self.cfg;
        let (Some(geo), Some(who)) = (&ev.network.geo, ev.principal.key()) else {
            return;
        };
        if ev.location_untrusted || ev.outcome == Outcome::Failure || !ev.category.is_activity() {
            return;
        }
        if cfg.trust_proxy_flag && ev.network.is_proxy == Some(true) {
            return;
        }
        if ev
            .network
            .kind
            .is_some_and(|k| matches!(k, NetKind::Egress | NetKind::Mobile | NetKind::Satellite))
        {
            return;
        }
        let ip = ev.network.ip.as_deref();
        if let Some(addr) = ip.and_then(|i| i.parse::<IpAddr>().ok()) {
            if self.egress.iter().any(|c| c.contains(addr)) {
                return;
            }
        }
        let acc = geo.accuracy_radius_km.unwrap_or(cfg.default_accuracy_km);
        if acc > cfg.max_accuracy_km {
            return;
        }
        let place_name = || match (&geo.city, &geo.country) {
            (Some(c), Some(k)) => format!("{c}, {k}"),
            (Some(c), None) => c.to_string(),
            (None, Some(k)) => k.to_string(),
            (None, None) => format!("{:.2},{:.2}", geo.lat, geo.lon),
        };
        // as kept in state
        let ip = ip.map(bounded);
        let ip = ip.as_deref();
        let session = ev.session.session_id.as_deref().map(bounded);
        let device = ev.network.device_id.as_deref().map(bounded);
        let (session, device) = (session.as_deref(), device.as_deref());
        let place = || Place {
            flagged: false,
            lat: geo.lat,
            lon: geo.lon,
            acc,
            time: ev.event_time,
            ip: ip.map(Box::from),
            seen: match (session, device) {
                (Some(s), Some(d)) => vec![(Box::from(s), Box::from(d))],
                _ => Vec::new(),
            },
            name: bounded_box(&place_name()),
            event_id: bounded_box(&ev.event_id),
        };
        let vouched = ev.principal.vouched_by.is_some();
        let Some(places) = self.state.get_mut_in(who, ev.event_time, vouched) else {
            self.state
                .entry_in(who, ev.event_time, vouched, || vec![place()]);
            return;
        };
        // the nearest unflagged places before and after in event time
        let at = places.partition_point(|p| p.time <= ev.event_time);
        let before = places[..at].iter().rposition(|p| !p.flagged);
        let after = places[at..].iter().position(|p| !p.flagged).map(|i| at + i);
        let pair = session.zip(device);
        let mut worst: Option<(usize, f64, f64, f64)> = None; // (index, moved, speed, minutes)
        for i in [before, after].into_iter().flatten() {
            let prev = &places[i];
            let same_ip = ip.is_some() && prev.ip.as_deref() == ip;
            // One session on one trusted device cannot teleport: a far-away location inside it is the IP's
            // geolocation, not travel. A stolen session on another device is session_hijack's to catch.
            let same_device_session = pair
                .is_some_and(|(s, d)| prev.seen.iter().any(|(ps, pd)| &**ps == s && &**pd == d));
            let moved = crate::geo::haversine_km(prev.lat, prev.lon, geo.lat, geo.lon);
            if same_ip || moved < 1.0 || same_device_session {
                continue;
            }
            let dist = (moved - prev.acc - acc).max(0.0);
            let secs = ev
                .event_time
                .secs_since(prev.time)
                .abs()
                .max(cfg.min_elapsed_secs as f64);
            let speed = dist / (secs / 3600.0);
            if dist >= cfg.min_distance_km
                && speed > cfg.max_speed_kmh
                && worst.is_none_or(|w| speed > w.2)
            {
                worst = Some((i, moved, speed, secs / 60.0));
            }
        }
        let mut new = place();
        if let Some((i, moved, speed, mins)) = worst {
            let prev = &places[i];
            let (who, name) = (bounded(who), bounded_box(&place_name()));
            let asn = ev
                .network
                .asn
                .map(|a| format!(" (AS{a})"))
                .unwrap_or_default();
            let when = if prev.time <= ev.event_time {
                "after"
            } else {
                "before"
            };
            let reason = format!(
                "{who} seen in {name}{asn} {mins:.0} min {when} {}: {moved:.0} km, {speed:.0} km/h (limit {:.0} km/h)",
                prev.name, cfg.max_speed_kmh
            );
            out.push(Finding::new(
                NAME,
                cfg.score,
                reason,
                vec![prev.event_id.to_string(), ev.event_id.to_string()],
                ev,
            ));
            new.flagged = true;
        }
        if places.len() >= PLACES {
            if at == 0 {
                return; // older than everything remembered
            }
            places.remove(0);
            places.insert(at - 1, new);
        } else {
            places.insert(at, new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::at;
    use crate::event::*;

    fn login(
        secs: i64,
        ip: &'static str,
        lat: f64,
        lon: f64,
        city: &'static str,
    ) -> SessionEvent<'static> {
        let mut e = at(secs, &format!("l{secs}"), Family::Idp, Category::Login);
        e.outcome = Outcome::Success;
        e.principal.email = Some("alice@example.com".into());
        e.network.ip = Some(ip.into());
        e.network.geo = Some(Geo {
            lat,
            lon,
            city: Some(city.into()),
            country: None,
            accuracy_radius_km: None,
        });
        e
    }
    const CHI: (f64, f64) = (41.88, -87.63);
    const JKT: (f64, f64) = (-6.2, 106.85);
    const NYC: (f64, f64) = (40.71, -74.0);
    const LON: (f64, f64) = (51.5, -0.12);

    fn run(events: Vec<SessionEvent<'static>>, cfg: Option<&str>) -> Vec<Finding> {
        let dir = cfg.map(|c| {
            let d = std::env::temp_dir().join(format!("quench-it-{}", c.len()));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(FILE), c).unwrap();
            d
        });
        let mut d = build(&BuildContext {
            dir,
            ..Default::default()
        })
        .unwrap();
        let mut out = Vec::new();
        for e in &events {
            d.observe(e, &mut out);
        }
        out
    }

    #[test]
    fn chicago_then_jakarta_twenty_minutes_later_is_impossible() {
        let out = run(
            vec![
                login(0, "73.1.1.1", CHI.0, CHI.1, "Chicago"),
                login(1320, "36.1.1.1", JKT.0, JKT.1, "Jakarta"),
            ],
            None,
        );
        assert_eq!(out.len(), 1);
        assert!(
            out[0].reason.contains("Jakarta")
                && out[0].reason.contains("after Chicago")
                && out[0].reason.contains("km/h"),
            "{}",
            out[0].reason
        );
        assert_eq!(out[0].evidence, vec!["l0".to_string(), "l1320".to_string()]);
    }

    #[test]
    fn a_plane_traveller_new_york_to_london_overnight_is_fine() {
        let out = run(
            vec![
                login(0, "1.1.1.1", NYC.0, NYC.1, "New York"),
                login(8 * 3600, "2.2.2.2", LON.0, LON.1, "London"),
            ],
            None,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn vpn_switcher_flagged_as_proxy_by_the_source_is_not_travel() {
        let mut vpn = login(600, "185.1.1.1", 50.11, 8.68, "Frankfurt");
        vpn.network.is_proxy = Some(true);
        let out = run(
            vec![
                login(0, "73.1.1.1", CHI.0, CHI.1, "Chicago"),
                vpn,
                login(1200, "73.1.1.1", CHI.0, CHI.1, "Chicago"),
            ],
            None,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn vpn_egress_listed_in_config_is_not_travel() {
        let cfg = "egress_cidrs = [\"185.0.0.0/8\"]\n";
        let vpn = login(600, "185.1.1.1", 50.11, 8.68, "Frankfurt");
        let out = run(
            vec![login(0, "73.1.1.1", CHI.0, CHI.1, "Chicago"), vpn],
            Some(cfg),
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_mobile_carrier_geolocated_far_away_inside_one_device_session_is_not_travel() {
        let mut home = login(0, "73.1.1.1", CHI.0, CHI.1, "Chicago");
        let mut hop = login(600, "172.56.1.1", 35.15, -90.05, "Memphis"); // carrier egress 770 km away
        for e in [&mut home, &mut hop] {
            e.session.session_id = Some("s1".into());
            e.network.device_id = Some("dev-1".into());
        }
        assert!(run(vec![home, hop], None).is_empty());
    }

    #[test]
    fn low_accuracy_geo_is_not_travel() {
        let mut fuzzy = login(600, "9.9.9.9", 47.6, -122.3, "Seattle");
        fuzzy.network.geo.as_mut().unwrap().accuracy_radius_km = Some(1000.0);
        let out = run(
            vec![login(0, "73.1.1.1", CHI.0, CHI.1, "Chicago"), fuzzy],
            None,
        );
        assert!(out.is_empty(), "{out:?}");
    }
}
