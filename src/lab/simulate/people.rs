//! The organisation's people and the victims chosen among them.
//!
//! In: the configuration and the simulation's random stream. Out: the people (their homes, devices, networks and
//! habits) and the attacks' victims (person, day, kind, variant). State: none beyond [`Sim`]'s.

use super::*;

impl Sim<'_> {
    /// The organisation's people, and the traps their traits set.
    pub(super) fn people(&mut self) -> Vec<Person> {
        let (cfg, rng, _, days, traps, _) = self.parts();
        let on = |t: &str| cfg.on(t);
        let people: Vec<Person> = (0..cfg.people)
            .map(|i| {
                let browser = rng.below(BROWSERS.len() as u64) as usize;
                Person {
                    email: format!("user{i:04}@example.com"),
                    okta_id: format!("00u{i:06}"),
                    oid: format!("{:08x}-5f1c-4e2a-9b1d-{:012x}", 0x1000 + i, i),
                    gid: format!("1{:020}", i),
                    home: rng.below(CITIES.len() as u64) as usize,
                    hh: rng.below(60_000),
                    browser,
                    version: if browser == SAFARI { 1 } else { 131 },
                    update_day: (on("browser_update") && rng.chance(0.5))
                        .then(|| rng.range(1, days)),
                    laptop: format!("{:08x}-dev-{i:04}", rng.u64() as u32),
                    phone: (on("carrier_hub") && rng.chance(0.4))
                        .then(|| format!("{:08x}-ph-{i:04}", rng.u64() as u32)),
                    dual_stack: on("dual_stack") && rng.chance(0.45),
                    zscaler: on("security_proxy") && rng.chance(0.2),
                    relay: on("private_relay") && browser == SAFARI && rng.chance(0.6),
                    vpn: on("corporate_vpn") && rng.chance(0.15),
                    tether: on("tethering") && rng.chance(0.1),
                    office: on("office_nat") && rng.chance(0.5),
                    traveller: (on("travel") || on("inflight_wifi")) && rng.chance(0.08),
                    start_day: if on("new_hire") && rng.chance(0.04) {
                        rng.range(2, days)
                    } else {
                        0
                    },
                    drive: rng.chance(0.4),
                    sales: rng.chance(0.1),
                    finance: on("quarter_end") && rng.chance(0.08),
                    engineer: rng.chance(0.08),
                }
            })
            .collect();

        for p in &people {
            traps.count("dual_stack", p.dual_stack);
            traps.count("security_proxy", p.zscaler);
            traps.count("private_relay", p.relay);
            traps.count("carrier_hub", p.phone.is_some());
            traps.count("tethering", p.tether);
            traps.count("corporate_vpn", p.vpn);
            traps.count("office_nat", p.office);
            traps.count("travel", p.traveller && on("travel"));
            traps.count("desktop_apps", on("desktop_apps"));
            traps.count("browser_update", p.update_day.is_some());
            traps.count("new_hire", p.start_day > 0);
            traps.count("quarter_end", p.finance);
            traps.count("on_call_burst", p.engineer && on("on_call_burst"));
            traps.count("oauth_rollout", on("oauth_rollout"));
        }
        people
    }

    /// The people attacked: (person, day, kind, variant index).
    pub(super) fn victims(&mut self, people: &[Person]) -> Vec<(usize, i64, &'static str, usize)> {
        let Sim { cfg, rng, days, .. } = self;
        let n_attacks = |kind: &str| cfg.n_attacks(kind);
        let days = *days;
        // --- victims: (person, day, kind, variant index) --------------------------------------------------------
        let mut victims: Vec<(usize, i64, &'static str, usize)> = Vec::new();
        for &kind in human_kinds() {
            for k in 0..n_attacks(kind) {
                for _ in 0..500 {
                    let p = rng.below(people.len().max(1) as u64) as usize;
                    let Some(person) = people.get(p) else { break };
                    let wants_sales = kind == "bulk_export" && k % 2 == 0;
                    if victims.iter().any(|v| v.0 == p)
                        || person.traveller
                        || person.start_day > 0
                        || (wants_sales && !person.sales)
                    {
                        continue;
                    }
                    // a weekday with a few days of history first
                    let mut d = rng.range(3.min(days - 1), days);
                    while d % 7 >= 5 {
                        d -= 1;
                    }
                    victims.push((p, d, kind, k));
                    break;
                }
            }
        }
        victims
    }
}
