//! Every person's working days: sign-ins, mail, files, the phone, quarter-end downloads, trips, and the attacks
//! on the victims on the day they happen.
//!
//! In: the people and the victims. Out: their lines, written to [`Out`]; trap counts. State: where each person is
//! across the run ([`Whereabouts`]), kept while their days are written.

use super::attacks::attack_person;
use super::*;

/// Where a person is across the run: the city, where their trip takes them (if they travel) and when they are
/// free again after a flight, and their browser's version.
struct Whereabouts {
    here_i: usize,
    away_i: usize,
    trip: Option<i64>,
    free_at: i64,
    version: u32,
}

/// One working day of one person: where and when they work, and the sessions the day's records carry.
pub(super) struct Workday<'p> {
    pub(super) pi: usize,
    pub(super) p: &'p Person,
    pub(super) d: i64,
    pub(super) week: i64,
    pub(super) day: Day<'static>,
    pub(super) end: i64,
    version: u32,
    update_at: Option<i64>,
    pub(super) okta_session: String,
    pub(super) entra_session: String,
    pub(super) rt: String,
}

impl Workday<'_> {
    /// The browser's user agent at `t` (the version before the update until it happens).
    fn ua_at(&self, t: i64) -> String {
        if self.update_at.is_some_and(|u| t < u) {
            ua_of(self.p.browser, self.version - 1)
        } else {
            ua_of(self.p.browser, self.version)
        }
    }
}

impl Sim<'_> {
    /// Every person's days: sign-ins, mail, files, trips, and the attacks on the victims.
    pub(super) fn live(
        &mut self,
        people: &[Person],
        victims: &[(usize, i64, &'static str, usize)],
    ) {
        let days = self.days;
        let rollout_day = 3.min(days - 1);
        for (pi, p) in people.iter().enumerate() {
            let rng = &mut self.rng;
            let mut at = Whereabouts {
                here_i: p.home,
                away_i: (p.home + 1 + rng.below(CITIES.len() as u64 - 1) as usize) % CITIES.len(),
                trip: p.traveller.then(|| rng.range(1, (days - 2).max(2))),
                free_at: i64::MIN,
                version: p.version,
            };
            for d in 0..days {
                if d < p.start_day {
                    continue;
                }
                if d % 7 >= 5 {
                    self.weekend(pi, p, d, at.here_i);
                    continue;
                }
                let Some(w) = self.workday(pi, p, d, &mut at) else {
                    continue;
                };
                let last_uti = self.office_hours(&w, rollout_day);
                self.quarter_end(&w, &last_uti);
                self.phone(&w);
                // attacks on this person today
                let (_, rng, o, _, _, labels) = self.parts();
                for &(_, _, kind, variant) in victims.iter().filter(|v| v.0 == pi && v.1 == d) {
                    attack_person(o, rng, labels, &w, &last_uti, kind, variant);
                }
                self.travel(&w, &mut at);
            }
        }
    }

    /// A weekend day: an on-call engineer's burst through the gateway, from wherever the engineer is.
    fn weekend(&mut self, pi: usize, p: &Person, d: i64, here_i: usize) {
        let (cfg, rng, o, ..) = self.parts();
        let week = d / 7;
        let day0 = T0 + d * DAY;
        if !(p.engineer && cfg.on("on_call_burst") && (pi as i64 + week) % 4 == 0 && d % 7 == 5) {
            return;
        }
        // from wherever the engineer is this weekend
        let ip = if here_i == p.home {
            world::home_v4(p.home, p.hh)
        } else {
            world::home_v4(here_i, 59_000 + p.hh % 1000)
        };
        let t0 = day0 + rng.range(8, 20) * H - tz_ms(&CITIES[here_i]);
        let n = rng.range(300, 700);
        for k in 0..n {
            let t = t0 + k * (2 * H / n) + rng.range(0, 5 * S);
            o.kong(
                t,
                "GET",
                "deploy-api",
                &p.email,
                &format!("cred-{}", p.okta_id),
                &ip,
                "httpie/3.2.4",
                4096,
            );
        }
    }

    /// The working day of person `p` on day `d`, where they are: none when a flight leaves too little of it.
    fn workday<'p>(
        &mut self,
        pi: usize,
        p: &'p Person,
        d: i64,
        at: &mut Whereabouts,
    ) -> Option<Workday<'p>> {
        let rng = &mut self.rng;
        let (here_i, free_at) = (at.here_i, at.free_at);
        let week = d / 7;
        let day0 = T0 + d * DAY;
        let here = &CITIES[here_i];
        let at_home = here_i == p.home;
        let start = (day0 + 8 * H + 30 * MIN - tz_ms(here) + rng.range(-40, 40) * MIN).max(free_at);
        let end = day0 + 17 * H + 30 * MIN - tz_ms(here) + rng.range(-40, 40) * MIN;
        if end <= start + H {
            return None;
        }
        let span = |a: i64, b: i64| Some((start + a, (start + b).min(end)));
        let day = Day {
            here,
            here_i,
            at_home,
            start,
            office: (p.office && at_home && (1..=3).contains(&(d % 7)))
                .then(|| (start + 50 * MIN, end - 60 * MIN)),
            vpn: if p.vpn && d % 2 == 0 {
                span(2 * H, 5 * H)
            } else {
                None
            },
            tether: if p.tether && d % 5 == 1 {
                span(3 * H, 4 * H)
            } else {
                None
            },
        };
        if p.update_day == Some(d) {
            at.version += 1;
        }
        let update_at = (p.update_day == Some(d)).then(|| start + rng.range(60, 240) * MIN);
        Some(Workday {
            pi,
            p,
            d,
            week,
            day,
            end,
            version: at.version,
            update_at,
            okta_session: format!("102{}d{d}", p.okta_id),
            entra_session: format!("{}-s{week}", &p.oid[..8]),
            rt: format!("rt-{}-{d}", p.okta_id),
        })
    }

    /// The sign-ins and the work of office hours (SSO, mail, files, Drive, exports, the gateway, an org-wide OAuth
    /// rollout); returns the Entra token id last issued.
    fn office_hours(&mut self, w: &Workday<'_>, rollout_day: i64) -> String {
        let (cfg, rng, o, _, traps, _) = self.parts();
        let on = |t: &str| cfg.on(t);
        let Workday {
            pi,
            p,
            d,
            ref day,
            end,
            ref okta_session,
            ref entra_session,
            ref rt,
            ..
        } = *w;
        let (start, at_home) = (day.start, day.at_home);
        let who = p.who();
        let ua_at = |t: i64| w.ua_at(t);
        let net = |rng: &mut Rng, t: i64, traffic: Traffic| net_at(rng, p, day, t, traffic);
        let mut last_uti = format!("uti{}d{d}k0", &p.oid[..8]);
        let n0 = net(&mut *rng, start, Traffic::Web);
        o.okta(
            start,
            "user.session.start",
            &who,
            &n0,
            okta_session,
            &ua_at(start),
            Some(&p.laptop),
            "Okta Dashboard",
        );
        let t1 = start + rng.range(1, 5) * MIN;
        let n1 = net(&mut *rng, t1, Traffic::M365);
        // Entra ID Protection's own noise: a traveller's sign-in from the city they flew to is "unfamiliar"
        // (medium), and now and then anyone's is, at low risk
        if on("vendor_risk_noise") {
            if !at_home {
                o.next_entra_risk = Some(("medium", "unfamiliarFeatures"));
                traps.count("vendor_risk_noise", true);
            } else if rng.chance(0.01) {
                o.next_entra_risk = Some(("low", "unfamiliarFeatures"));
                traps.count("vendor_risk_noise", true);
            }
        }
        o.entra(
            t1,
            &who,
            &n1,
            entra_session,
            &last_uti,
            &ua_at(t1),
            Some(&p.laptop),
            "OfficeHome",
            true,
        );
        let mut t = start + rng.range(15, 40) * MIN;
        let mut k = 0;
        while t < end {
            k += 1;
            let w = net(&mut *rng, t, Traffic::Web);
            let m = net(&mut *rng, t + 2 * MIN, Traffic::M365);
            let app = APPS[rng.below(APPS.len() as u64) as usize];
            o.okta(
                t,
                "user.authentication.sso",
                &who,
                &w,
                okta_session,
                &ua_at(t),
                Some(&p.laptop),
                app,
            );
            // the desktop apps renew their tokens silently in the same Entra session as the browser
            let (app_ua, app_name, interactive) = if on("desktop_apps") {
                if k % 2 == 0 {
                    (OUTLOOK_UA.to_string(), "Microsoft Outlook", false)
                } else {
                    (TEAMS_UA.to_string(), "Microsoft Teams", false)
                }
            } else {
                (ua_at(t), "OfficeHome", false)
            };
            last_uti = format!("uti{}d{d}k{k}", &p.oid[..8]);
            o.entra(
                t + 2 * MIN,
                &who,
                &m,
                entra_session,
                &last_uti,
                &app_ua,
                Some(&p.laptop),
                app_name,
                interactive,
            );
            if rng.chance(0.6) {
                let client = if on("desktop_apps") {
                    "Client=MSExchangeRPC".to_string()
                } else {
                    format!("Client=OWA;{}", ua_at(t))
                };
                o.m365(
                    t + 3 * MIN,
                    "Exchange",
                    "MailItemsAccessed",
                    &who,
                    &m.ip,
                    &client,
                    entra_session,
                    &last_uti,
                    "",
                );
            }
            if rng.chance(0.3) {
                let doc = format!("report-{}.docx", rng.below(400));
                o.m365(
                    t + 6 * MIN,
                    "SharePoint",
                    "FileAccessed",
                    &who,
                    &m.ip,
                    &ua_at(t),
                    entra_session,
                    &last_uti,
                    &doc,
                );
            }
            if rng.chance(0.5) {
                o.okta_refresh(t + 5 * S, &who, &w, rt, false);
            }
            if p.drive && rng.chance(0.4) {
                let doc = format!("doc-{}", rng.below(5000));
                o.google(t + 30 * S, "drive", "view", &who, &w.ip, json!([{"name": "doc_id", "value": doc}, {"name": "doc_type", "value": "document"}, {"name": "owner_is_team_drive", "boolValue": false}]));
            }
            if p.sales && k <= 3 {
                let rows = 800 + rng.below(3200);
                o.salesforce_export(
                    t + MIN,
                    &who,
                    &w.ip,
                    &format!("sk-{okta_session}"),
                    rows,
                    "0H4TableauCrmSync",
                );
            }
            if p.engineer && rng.chance(0.5) {
                for j in 0..rng.range(1, 6) {
                    o.kong(
                        t + 4 * MIN + j * 20 * S,
                        "GET",
                        "deploy-api",
                        &p.email,
                        &format!("cred-{}", p.okta_id),
                        &w.ip,
                        "httpie/3.2.4",
                        4096,
                    );
                }
            }
            if on("oauth_rollout") && d == rollout_day && k == 2 && pi % 10 < 6 {
                o.google(t + 90 * S, "token", "authorize", &who, &w.ip, json!([{"name": "client_id", "value": "1084-zoom.apps.googleusercontent.com"}, {"name": "app_name", "value": "Zoom for Google Workspace"}, {"name": "scope", "multiValue": ["https://www.googleapis.com/auth/calendar"]}]));
            }
            t += rng.range(20, 60) * MIN;
        }
        last_uti
    }

    /// Quarter-end: finance downloads the quarter's files to their laptops on the last two days.
    fn quarter_end(&mut self, w: &Workday<'_>, last_uti: &str) {
        let (_, rng, o, days, ..) = self.parts();
        let Workday {
            p,
            d,
            ref day,
            ref entra_session,
            ..
        } = *w;
        let start = day.start;
        let who = p.who();
        let ua_at = |t: i64| w.ua_at(t);
        let net = |rng: &mut Rng, t: i64, traffic: Traffic| net_at(rng, p, day, t, traffic);
        // quarter-end: finance downloads the quarter's files to their laptops
        if p.finance && d >= days - 2 {
            let t0 = start + rng.range(60, 180) * MIN;
            let n = rng.range(60, 160);
            for j in 0..n {
                let tt = t0 + j * rng.range(30, 90) * S;
                let m = net(&mut *rng, tt, Traffic::M365);
                o.m365(
                    tt,
                    "SharePoint",
                    "FileDownloaded",
                    &who,
                    &m.ip,
                    &ua_at(tt),
                    entra_session,
                    last_uti,
                    &format!("q4-ledger-{j}.xlsx"),
                );
            }
        }
    }

    /// The phone: its own Okta session and its own Entra session, on the carrier's network.
    fn phone(&mut self, w: &Workday<'_>) {
        let (_, rng, o, ..) = self.parts();
        let Workday {
            p,
            d,
            week,
            ref day,
            end,
            ..
        } = *w;
        let (start, here_i) = (day.start, day.here_i);
        let who = p.who();
        // the phone: its own Okta session and its own Entra session, on the carrier's network
        if let Some(phone) = &p.phone {
            for j in 0..rng.range(1, 3) {
                let pt = start + rng.range(30, 420) * MIN;
                if pt >= end {
                    continue;
                }
                let c = &CITIES[here_i];
                let mn = Net::at_city(
                    world::mobile_ip(here_i, rng.u64()),
                    c,
                    c.mobile_asn,
                    c.mobile,
                    c.hub,
                );
                o.okta(
                    pt,
                    "user.session.start",
                    &who,
                    &mn,
                    &format!("102{}p{d}j{j}", p.okta_id),
                    PHONE_UA,
                    Some(phone),
                    "Okta Verify",
                );
                o.entra(
                    pt + MIN,
                    &who,
                    &mn,
                    &format!("{}-ph{week}", &p.oid[..8]),
                    &format!("uti{}p{d}{j}", &p.oid[..8]),
                    OUTLOOK_MOBILE_UA,
                    Some(phone),
                    "Microsoft Outlook",
                    false,
                );
            }
        }
    }

    /// Travel: fly out after work on the trip day, back two working days later (the in-flight Wi-Fi on the way).
    fn travel(&mut self, w: &Workday<'_>, at: &mut Whereabouts) {
        let Some(td) = at.trip else {
            return;
        };
        let (cfg, rng, o, _, traps, _) = self.parts();
        let on = |t: &str| cfg.on(t);
        let Workday {
            pi,
            p,
            d,
            end,
            ref entra_session,
            ..
        } = *w;
        let here_i = at.here_i;
        let who = p.who();
        let ua_at = |t: i64| w.ua_at(t);
        let to = if d == td {
            Some(at.away_i)
        } else if d == td + 2 && here_i != p.home {
            Some(p.home)
        } else {
            None
        };
        let Some(to_i) = to else {
            return;
        };
        let (a, b) = (&CITIES[here_i], &CITIES[to_i]);
        let dist = km((a.lat, a.lon), (b.lat, b.lon));
        let depart = end + rng.range(60, 180) * MIN;
        let flight = ((dist / 800.0 + 0.5) * H as f64) as i64;
        if on("inflight_wifi") && dist > 3000.0 {
            traps.count("inflight_wifi", true);
            // the in-flight Wi-Fi is geolocated to the provider's ground station
            let ft = depart + flight / 2;
            let n = Net::at_site(
                world::host(world::INFLIGHT.prefix, pi as u64, 0),
                &world::INFLIGHT,
            );
            o.okta(
                ft,
                "user.authentication.sso",
                &who,
                &n,
                &format!("102{}f{d}", p.okta_id),
                &ua_at(ft),
                Some(&p.laptop),
                "Slack",
            );
            o.entra(
                ft + MIN,
                &who,
                &n,
                entra_session,
                &format!("uti{}f{d}", &p.oid[..8]),
                TEAMS_UA,
                Some(&p.laptop),
                "Microsoft Teams",
                false,
            );
        }
        at.free_at = depart + flight + H;
        at.here_i = to_i;
    }
}

/// The network a person's request comes from at `t`.
fn net_at(rng: &mut Rng, p: &Person, day: &Day<'_>, t: i64, traffic: Traffic) -> Net {
    let c = day.here;
    let within = |w: Option<(i64, i64)>| w.is_some_and(|(a, b)| t >= a && t < b);
    if within(day.vpn) {
        let v = &world::VPN[p.home % world::VPN.len()];
        return Net::at_site(world::host(v.prefix, p.hh, 0), v);
    }
    let in_office = within(day.office);
    if p.zscaler && traffic == Traffic::Web {
        let z = &world::ZSCALER[c.zscaler];
        return Net::at_site(world::host(z.prefix, rng.u64(), 0), z);
    }
    if p.relay && traffic == Traffic::Web && !in_office {
        let r = &world::RELAY[c.relay];
        return Net::at_site(world::host(r.prefix, rng.u64(), 0), r);
    }
    if within(day.tether) {
        return Net::at_city(
            world::mobile_ip(day.here_i, rng.u64() >> 40),
            c,
            c.mobile_asn,
            c.mobile,
            c.hub,
        );
    }
    if in_office {
        return Net::at_city(
            world::office_ip(day.here_i),
            c,
            c.isp_asn,
            c.isp,
            (c.lat, c.lon),
        );
    }
    if !day.at_home {
        // a hotel's broadband
        return Net::at_city(
            world::home_v4(day.here_i, 59_000 + p.hh % 1000),
            c,
            c.isp_asn,
            c.isp,
            (c.lat, c.lon),
        );
    }
    if p.dual_stack && rng.chance(0.5) {
        let temp = (p.hh << 20) ^ (((t - T0) / DAY) as u64 * 0x9E37_79B9);
        return Net::at_city(
            world::home_v6(day.here_i, p.hh, temp),
            c,
            c.isp_v6_asn,
            c.isp,
            (c.lat, c.lon),
        );
    }
    Net::at_city(
        world::home_v4(day.here_i, p.hh),
        c,
        c.isp_asn,
        c.isp,
        (c.lat, c.lon),
    )
}
