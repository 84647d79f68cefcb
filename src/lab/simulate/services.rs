//! The service accounts' gateway traffic, and the token scraping attacks on them.
//!
//! In: the configuration and the random stream. Out: their lines in [`Out`] and the attacks' labels. State: none
//! beyond [`Sim`]'s.

use super::*;

impl Sim<'_> {
    /// The service accounts' gateway traffic, and the token scraping attacks; returns how many there are and which
    /// were scraped.
    pub(super) fn services(&mut self) -> (usize, Vec<usize>) {
        let (cfg, rng, o, days, traps, labels) = self.parts();
        let n_scrape = cfg.n_attacks("token_scraping");
        let on = |t: &str| cfg.on(t);
        // --- service accounts ----------------------------------------------------------------------------------------
        let services = (cfg.people / 100).max(3);
        let n_scrape = n_scrape.min(services);
        let scraped: Vec<usize> = (0..n_scrape).map(|i| (i * 7 + 1) % services).collect();
        for s in 0..services {
            let consumer = format!("svc-{s:03}");
            let token = format!("tok-svc-{s:03}");
            let ip = format!("10.20.{s}.15");
            let per_min = 1 + rng.below(3) as i64;
            traps.count("service_burst", on("service_burst") && days >= 7);
            let scrape = scraped.iter().position(|x| *x == s).map(|k| {
                let mut d = rng.range(3.min(days - 1), days);
                while d % 7 >= 5 {
                    d -= 1;
                }
                (d, k)
            });
            for d in 0..days {
                if d % 7 >= 5 {
                    continue;
                }
                let day0 = T0 + d * DAY;
                // quarter-end style bulk work: 3x for an hour
                let burst = on("service_burst") && (d == days - 1 || (d % 7 == 4 && d >= 7));
                let mut t = day0 + 6 * H + rng.range(0, 30) * MIN;
                while t < day0 + 20 * H {
                    let rate = if burst && (t - day0) / H == 15 {
                        per_min * 3
                    } else {
                        per_min
                    };
                    o.kong(
                        t,
                        "GET",
                        "orders-api",
                        &consumer,
                        &token,
                        &ip,
                        "svc-client/1.4",
                        2048,
                    );
                    t += (60_000 / rate).max(1) + rng.range(-2000, 2000);
                }
                if let Some((_, k)) = scrape.filter(|x| x.0 == d) {
                    // 5-10x the baseline for three hours; from the usual host, or from outside with the same client
                    let at = day0 + 13 * H + rng.range(0, 60) * MIN;
                    let external = k % 2 == 1;
                    let src = if external {
                        world::hosting_ip(0, rng.u64())
                    } else {
                        ip.clone()
                    };
                    let factor = rng.range(5, 11);
                    let n = per_min * factor * 180;
                    let mut first = None;
                    for i in 0..n {
                        let tt = at + i * (180 * MIN / n);
                        let arr = o.kong(
                            tt,
                            "GET",
                            "orders-api",
                            &consumer,
                            &token,
                            &src,
                            "svc-client/1.4",
                            2048,
                        );
                        first.get_or_insert(arr);
                    }
                    labels.add(
                        "token_scraping",
                        if external { "external" } else { "same_host" },
                        (None, Some(&token), None),
                        at,
                        first.unwrap_or(at),
                        if external {
                            &[Action::RevokeToken]
                        } else {
                            &[Action::Alert, Action::StepUp, Action::RevokeToken]
                        },
                    );
                }
            }
        }

        (services, scraped)
    }
}
