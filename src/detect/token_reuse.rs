//! token_reuse: a refresh token used again after rotation: the tell-tale of a stolen refresh token being replayed
//! alongside the legitimate client.
//!
//! In: `token_refreshed` events with a token id. Out: a finding when the IdP itself reports reuse (an action
//! containing `reuse`, as Okta's `app.oauth2.as.token.detect_reuse`; `idp_reported_score`), or, once per token,
//! when one refresh token is redeemed from two countries within `window_secs` (`two_countries_score`). Relays,
//! carriers, in-flight links and proxy-flagged networks say nothing about where the client is and are skipped.
//! State: per token, in a [`KeyedState`] bounded by `window_secs` of event time and a key cap (`max_keys`; tokens
//! first seen unvouched live in its smaller claimed pool): the ASN, country, time and event id of its last
//! redemption (strings bounded), and whether it was reported.

use super::{BuildContext, ConfigError, Detector, Finding};
use crate::event::{Category, Keys, NetKind, SessionEvent, Ts};
use crate::state::{bounded, bounded_box, KeyedState};
use serde::Deserialize;

pub const NAME: &str = "token_reuse";
const FILE: &str = "token_reuse.toml";
const BUILTIN: &str = include_str!("../../detectors/token_reuse.toml");

/// `detectors/token_reuse.toml`; defaults in that file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenReuseConfig {
    pub idp_reported_score: f64,
    pub two_countries_score: f64,
    pub window_secs: u64,
    pub max_keys: usize,
}

impl Default for TokenReuseConfig {
    fn default() -> Self {
        TokenReuseConfig {
            idp_reported_score: 0.85,
            two_countries_score: 0.8,
            window_secs: 3600,
            max_keys: 1_000_000,
        }
    }
}

pub fn build(ctx: &BuildContext) -> Result<Box<dyn Detector>, ConfigError> {
    let (file, cfg): (String, TokenReuseConfig) = ctx.config(FILE, BUILTIN)?;
    super::check_scores(
        &file,
        &[
            ("idp_reported_score", cfg.idp_reported_score),
            ("two_countries_score", cfg.two_countries_score),
        ],
    )?;
    let bounds = ctx.bounds(cfg.window_secs, cfg.max_keys);
    Ok(Box::new(TokenReuse {
        cfg,
        state: KeyedState::new(bounds),
    }))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Last {
    asn: Option<u32>,
    country: Option<Box<str>>,
    time: Ts,
    event_id: Box<str>,
    reported: bool,
}

pub struct TokenReuse {
    cfg: TokenReuseConfig,
    state: KeyedState<Last>,
}

impl Detector for TokenReuse {
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
        if ev.category != Category::TokenRefreshed {
            return;
        }
        let Some(token) = ev.session.token_id.as_deref() else {
            return;
        };
        if ev.action.as_deref().is_some_and(|a| a.contains("reuse")) {
            let who = bounded(ev.principal.key().unwrap_or("an unknown principal"));
            let token = bounded(token);
            let reason = format!(
                "the IdP detected reuse of refresh token {token} of {who} after it was rotated"
            );
            out.push(Finding::new(
                NAME,
                self.cfg.idp_reported_score,
                reason,
                vec![ev.event_id.to_string()],
                ev,
            ));
            return;
        }
        // relays (security proxies, Private Relay, VPN exits), carriers and in-flight links are not where the client
        // is: they neither start nor end a two-country pair
        if ev.network.is_proxy == Some(true)
            || ev.network.kind.is_some_and(|k| {
                matches!(k, NetKind::Egress | NetKind::Mobile | NetKind::Satellite)
            })
        {
            return;
        }
        // as kept in state
        let country = ev
            .network
            .geo
            .as_ref()
            .and_then(|g| g.country.as_deref())
            .map(bounded);
        let country = country.as_deref();
        let now = ev.event_time;
        let window = self.cfg.window_secs as f64;
        let score = self.cfg.two_countries_score;
        let last = self
            .state
            .entry_in(token, now, ev.vouches(Keys::TOKEN), || Last {
                asn: ev.network.asn,
                country: country.map(Box::from),
                time: now,
                event_id: bounded_box(&ev.event_id),
                reported: false,
            });

        let other_country =
            matches!((last.country.as_deref(), country), (Some(a), Some(b)) if a != b);
        // A country change between two redemptions of one token within the window; a carrier or Wi-Fi switch (an ASN
        // change in the same country) and proxy-flagged exits are normal for mobile clients.
        if other_country
            && ev.network.is_proxy != Some(true)
            && now.secs_since(last.time).abs() <= window
            && !last.reported
        {
            let token = bounded(token);
            let reason = format!(
                "refresh token {token} redeemed from AS{} {} {:.0} min after AS{} {}",
                ev.network.asn.unwrap_or(0),
                country.unwrap_or("?"),
                now.secs_since(last.time) / 60.0,
                last.asn.unwrap_or(0),
                last.country.as_deref().unwrap_or("?")
            );
            out.push(Finding::new(
                NAME,
                score,
                reason,
                vec![last.event_id.to_string(), ev.event_id.to_string()],
                ev,
            ));
            last.reported = true;
            return;
        }
        *last = Last {
            asn: ev.network.asn,
            country: country.map(Box::from),
            time: now,
            event_id: bounded_box(&ev.event_id),
            reported: last.reported,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::at;
    use crate::event::*;

    fn refresh(secs: i64, asn: u32, action: &'static str) -> SessionEvent<'static> {
        let mut e = at(
            secs,
            &format!("r{secs}"),
            Family::Idp,
            Category::TokenRefreshed,
        );
        e.session.token_id = Some("rt-1".into());
        e.principal.email = Some("dana@example.com".into());
        e.network.asn = Some(asn);
        let country = if asn == 7713 { "ID" } else { "US" };
        e.network.geo = Some(Geo {
            lat: 0.0,
            lon: 0.0,
            city: None,
            country: Some(country.into()),
            accuracy_radius_km: None,
        });
        e.action = Some(action.into());
        e
    }

    fn run(evs: &[SessionEvent<'static>]) -> Vec<Finding> {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        evs.iter().for_each(|e| d.observe(e, &mut out));
        out
    }

    #[test]
    fn idp_reported_reuse_is_flagged() {
        let out = run(&[refresh(0, 1, "app.oauth2.as.token.detect_reuse")]);
        assert_eq!(out.len(), 1);
        assert!(out[0].reason.contains("rt-1") && out[0].reason.contains("dana@example.com"));
    }

    #[test]
    fn one_refresh_token_from_two_countries_within_the_hour_is_flagged_once() {
        let grant = "app.oauth2.as.token.grant.refresh_token";
        let out = run(&[
            refresh(0, 7922, grant),
            refresh(600, 7713, grant),
            refresh(700, 7713, grant),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].evidence, vec!["r0".to_string(), "r600".to_string()]);
    }

    #[test]
    fn refreshes_from_one_country_across_carriers_are_fine() {
        let grant = "app.oauth2.as.token.grant.refresh_token";
        assert!(run(&[
            refresh(0, 7922, grant),
            refresh(3000, 7922, grant),
            refresh(9000, 21928, grant)
        ])
        .is_empty());
    }
}
