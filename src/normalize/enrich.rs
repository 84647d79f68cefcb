//! Enrichment: geo, ASN, network kind and proxy flags for events whose source gives only an IP (Google Workspace,
//! Microsoft 365, Slack, GitHub, gateways), and the network kind for every event with an address.
//!
//! In: a normalized event. Out: the same event with `network.geo`, `network.asn`/`as_org` filled from a MaxMind
//! database (GeoLite2/GeoIP2 City and ASN, `maxminddb`) or a configured table of networks, `network.is_proxy`
//! set for known VPN, proxy and cloud egress ranges, and `network.kind` (residential, business, mobile,
//! satellite, hosting, egress) from, in order: the egress ranges, the configured network's `kind`, and the ASN
//! lists (built in: the major clouds and hosters, and security proxies and relays; plus `asn_kinds` and
//! `asn_lists`). Values the source gave are never replaced. State: the opened databases and lists, read-only.

use super::ConfigError;
use crate::event::{Geo, NetKind, SessionEvent, Text};
use crate::net::Cidr;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// `[normalize.enrich]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// MaxMind City database (`GeoLite2-City.mmdb`). Default: none.
    #[serde(default)]
    pub geoip_city_db: Option<PathBuf>,
    /// MaxMind ASN database (`GeoLite2-ASN.mmdb`). Default: none.
    #[serde(default)]
    pub geoip_asn_db: Option<PathBuf>,
    /// Known VPN/proxy/cloud egress ranges (CIDR): events from them get `is_proxy = true`. Default [].
    #[serde(default)]
    pub egress_cidrs: Vec<String>,
    /// Your own networks with their place (offices, data centres); checked before the databases. Default [].
    #[serde(default)]
    pub networks: Vec<NetworkEntry>,
    /// ASNs by network kind, on top of the built-in lists:
    /// `asn_kinds = { hosting = [64500], egress = [64501], mobile = [64502] }`. Default: none.
    #[serde(default)]
    pub asn_kinds: AsnKinds,
    /// CSV files whose first column is an ASN (`13335` or `AS13335`; a header line is skipped), each with the kind
    /// its rows get: `asn_lists = [{ path = "hosting-asns.csv", kind = "hosting" }]`. Default [].
    #[serde(default)]
    pub asn_lists: Vec<AsnList>,
    /// Use the built-in ASN lists (the major clouds and hosters as `hosting`; Zscaler, Netskope, Cloudflare and
    /// the iCloud Private Relay operators as `egress`). Default true.
    #[serde(default = "yes")]
    pub builtin_asn_kinds: bool,
}

fn yes() -> bool {
    true
}

/// `[normalize.enrich.asn_kinds]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AsnKinds {
    /// Default [] each.
    #[serde(default)]
    pub residential: Vec<u32>,
    #[serde(default)]
    pub business: Vec<u32>,
    #[serde(default)]
    pub mobile: Vec<u32>,
    #[serde(default)]
    pub satellite: Vec<u32>,
    #[serde(default)]
    pub hosting: Vec<u32>,
    #[serde(default)]
    pub egress: Vec<u32>,
}

/// One entry of `asn_lists`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsnList {
    /// The CSV file. Required.
    pub path: PathBuf,
    /// The kind its ASNs get. Required.
    pub kind: NetKind,
}

/// Built-in ASN kinds: well-known, stable assignments. Hosting: Amazon, Microsoft, Google Cloud, Oracle,
/// DigitalOcean, OVH, Hetzner, Linode, Vultr, Leaseweb, Contabo, Scaleway, Alibaba, Tencent (not M247, home to many
/// consumer VPNs). Egress:
/// Zscaler, Netskope, Cloudflare (WARP and Private Relay), Akamai's and Fastly's Private Relay egress.
const BUILTIN_ASN_KINDS: &[(NetKind, &[u32])] = &[
    (
        NetKind::Hosting,
        &[
            16509, 14618, 8075, 8068, 396982, 19527, 31898, 14061, 16276, 24940, 63949, 20473,
            60781, 28753, 51167, 12876, 45102, 132203,
        ],
    ),
    (
        NetKind::Egress,
        &[22616, 53813, 62044, 55256, 13335, 36183, 54113],
    ),
];

/// One configured network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkEntry {
    /// The range. Required.
    pub cidr: String,
    /// Coordinates. Required.
    pub lat: f64,
    pub lon: f64,
    /// Place names. Default: none.
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    /// Accuracy radius in km. Default: none.
    #[serde(default)]
    pub accuracy_km: Option<f64>,
    /// ASN and organisation. Default: none.
    #[serde(default)]
    pub asn: Option<u32>,
    #[serde(default)]
    pub as_org: Option<String>,
    /// The range is a proxy/VPN egress. Default false.
    #[serde(default)]
    pub proxy: bool,
    /// The kind of network (`residential`, `business`, `mobile`, `satellite`, `hosting`, `egress`), as a
    /// Connection Type database would say. Default: none (the ASN lists decide).
    #[serde(default)]
    pub kind: Option<NetKind>,
}

/// The enrichment step.
pub struct Enrich {
    city: Option<maxminddb::Reader<Vec<u8>>>,
    asn: Option<maxminddb::Reader<Vec<u8>>>,
    egress: Vec<Cidr>,
    networks: Vec<(Cidr, NetworkEntry)>,
    asn_kinds: HashMap<u32, NetKind>,
}

fn bad(key: &str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: format!("normalize.enrich.{key}"),
        value: value.into(),
        why: why.into(),
    }
}

fn cidr(key: &str, s: &str) -> Result<Cidr, ConfigError> {
    Cidr::parse(s).ok_or_else(|| {
        bad(
            key,
            s,
            "not a CIDR range such as 203.0.113.0/24 or 2001:db8::/32",
        )
    })
}

impl Enrich {
    pub fn new(cfg: &EnrichConfig) -> Result<Self, ConfigError> {
        let open = |key: &str,
                    p: &Option<PathBuf>|
         -> Result<Option<maxminddb::Reader<Vec<u8>>>, ConfigError> {
            p.as_ref()
                .map(|p| {
                    maxminddb::Reader::open_readfile(p)
                        .map_err(|e| bad(key, &p.display().to_string(), e.to_string()))
                })
                .transpose()
        };
        let mut asn_kinds = HashMap::new();
        if cfg.builtin_asn_kinds {
            for (kind, asns) in BUILTIN_ASN_KINDS {
                asn_kinds.extend(asns.iter().map(|a| (*a, *kind)));
            }
        }
        for list in &cfg.asn_lists {
            let text = std::fs::read_to_string(&list.path).map_err(|e| {
                bad(
                    "asn_lists.path",
                    &list.path.display().to_string(),
                    e.to_string(),
                )
            })?;
            for (i, line) in text.lines().enumerate() {
                let first = line
                    .split(',')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"');
                let digits = first.strip_prefix("AS").unwrap_or(first);
                match digits.parse::<u32>() {
                    Ok(a) => {
                        asn_kinds.insert(a, list.kind);
                    }
                    Err(_) if i == 0 || line.trim().is_empty() => {}
                    Err(_) => {
                        return Err(bad(
                            "asn_lists.path",
                            &list.path.display().to_string(),
                            format!("line {}: {first:?} is not an ASN", i + 1),
                        ))
                    }
                }
            }
        }
        let k = &cfg.asn_kinds;
        for (kind, asns) in [
            (NetKind::Residential, &k.residential),
            (NetKind::Business, &k.business),
            (NetKind::Mobile, &k.mobile),
            (NetKind::Satellite, &k.satellite),
            (NetKind::Hosting, &k.hosting),
            (NetKind::Egress, &k.egress),
        ] {
            asn_kinds.extend(asns.iter().map(|a| (*a, kind)));
        }
        Ok(Enrich {
            asn_kinds,
            city: open("geoip_city_db", &cfg.geoip_city_db)?,
            asn: open("geoip_asn_db", &cfg.geoip_asn_db)?,
            egress: cfg
                .egress_cidrs
                .iter()
                .map(|c| cidr("egress_cidrs", c))
                .collect::<Result<_, _>>()?,
            networks: cfg
                .networks
                .iter()
                .map(|n| cidr("networks.cidr", &n.cidr).map(|c| (c, n.clone())))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether IP-only events can get coordinates.
    pub fn has_geo(&self) -> bool {
        self.city.is_some() || !self.networks.is_empty()
    }

    /// Whether there is anything to do at all (so the hot path can skip the IP parse).
    pub fn is_active(&self) -> bool {
        self.has_geo()
            || self.asn.is_some()
            || !self.egress.is_empty()
            || !self.asn_kinds.is_empty()
    }

    /// Fill what the source left out.
    pub fn enrich(&self, ev: &mut SessionEvent<'_>) {
        let Some(ip) = ev
            .network
            .ip
            .as_deref()
            .and_then(|s| s.parse::<IpAddr>().ok())
        else {
            return;
        };
        let n = &mut ev.network;
        if self.egress.iter().any(|c| c.contains(ip)) {
            n.is_proxy = Some(true);
            n.kind = Some(NetKind::Egress);
        }
        if let Some((_, e)) = self.networks.iter().find(|(c, _)| c.contains(ip)) {
            n.kind = n.kind.or(e.kind);
            if n.geo.is_none() {
                n.geo = Some(Geo {
                    lat: e.lat,
                    lon: e.lon,
                    city: e.city.clone().map(Text::from),
                    country: e.country.clone().map(Text::from),
                    accuracy_radius_km: e.accuracy_km,
                });
            }
            // the organisation is filled when the source gave none and the entry's ASN is not contradicted
            if n.as_org.is_none() && (n.asn.is_none() || n.asn == e.asn) {
                n.as_org = e.as_org.clone().map(Text::from);
            }
            if n.asn.is_none() {
                n.asn = e.asn;
            }
            if e.proxy {
                n.is_proxy = Some(true);
            }
        }
        if n.geo.is_none() {
            if let Some(r) = &self.city {
                if let Ok(Some(c)) = r
                    .lookup(ip)
                    .and_then(|l| l.decode::<maxminddb::geoip2::City>())
                {
                    if let (Some(lat), Some(lon)) = (c.location.latitude, c.location.longitude) {
                        n.geo = Some(Geo {
                            lat,
                            lon,
                            city: c.city.names.english.map(|s| Text::from(s.to_string())),
                            country: c.country.iso_code.map(|s| Text::from(s.to_string())),
                            accuracy_radius_km: c.location.accuracy_radius.map(f64::from),
                        });
                    }
                }
            }
        }
        if n.asn.is_none() || n.as_org.is_none() {
            if let Some(r) = &self.asn {
                if let Ok(Some(a)) = r
                    .lookup(ip)
                    .and_then(|l| l.decode::<maxminddb::geoip2::Asn>())
                {
                    let agrees = n.asn.is_none() || n.asn == a.autonomous_system_number;
                    n.asn = n.asn.or(a.autonomous_system_number);
                    if n.as_org.is_none() && agrees {
                        n.as_org = a
                            .autonomous_system_organization
                            .map(|s| Text::from(s.to_string()));
                    }
                }
            }
        }
        if n.kind.is_none() {
            n.kind = n.asn.and_then(|a| self.asn_kinds.get(&a).copied());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;

    fn ev(ip: &'static str) -> SessionEvent<'static> {
        let src = SourceInfo {
            family: Family::Saas,
            vendor: "t".into(),
            format: "t".into(),
        };
        let mut e = SessionEvent::new(src, Text::from("e"), Ts(0), Category::Login);
        e.network.ip = Some(ip.into());
        e
    }

    fn enrich() -> Enrich {
        let cfg: EnrichConfig = toml::from_str(
            r#"
egress_cidrs = ["185.220.100.0/22"]
[[networks]]
cidr = "73.45.0.0/16"
lat = 41.88
lon = -87.63
city = "Chicago"
country = "US"
accuracy_km = 20.0
asn = 7922
as_org = "Comcast"
"#,
        )
        .unwrap();
        Enrich::new(&cfg).unwrap()
    }

    #[test]
    fn ip_only_events_get_place_and_asn_and_egress_is_flagged() {
        let e = enrich();
        let mut a = ev("73.45.12.8");
        e.enrich(&mut a);
        let g = a.network.geo.as_ref().unwrap();
        assert_eq!(
            (g.city.as_deref(), g.accuracy_radius_km),
            (Some("Chicago"), Some(20.0))
        );
        assert_eq!(a.network.asn, Some(7922));
        let mut b = ev("185.220.101.4");
        e.enrich(&mut b);
        assert_eq!(b.network.is_proxy, Some(true));
        assert!(b.network.geo.is_none());
    }

    /// The real reader path: MaxMind's published test databases (`../shared/data/geo`) place an IP-only event and
    /// give its ASN. Missing databases fail the test (QUENCH_ALLOW_SKIP=1 opts out, as for the other shared data).
    #[test]
    fn maxmind_city_and_asn_databases_place_an_ip_only_event() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/geo");
        if !dir.is_dir() {
            assert!(
                std::env::var_os("QUENCH_ALLOW_SKIP").is_some_and(|v| v == "1"),
                "{} is missing (set QUENCH_ALLOW_SKIP=1 to skip)",
                dir.display()
            );
            return;
        }
        let cfg = EnrichConfig {
            geoip_city_db: Some(dir.join("GeoIP2-City-Test.mmdb")),
            geoip_asn_db: Some(dir.join("GeoLite2-ASN-Test.mmdb")),
            ..Default::default()
        };
        let e = Enrich::new(&cfg).unwrap();
        assert!(e.has_geo());
        // 214.78.120.0/22 is San Diego, accuracy 100 km, in the City test data; 1.128.0.0/11 is Telstra's AS1221
        let mut a = ev("214.78.120.5");
        e.enrich(&mut a);
        let g = a.network.geo.as_ref().unwrap();
        assert_eq!(g.city.as_deref(), Some("San Diego"));
        assert!((g.lat - 32.7405).abs() < 1e-3 && (g.lon + 117.0935).abs() < 1e-3);
        assert_eq!(g.accuracy_radius_km, Some(100.0));
        let mut b = ev("1.128.0.1");
        e.enrich(&mut b);
        assert_eq!(b.network.asn, Some(1221));
        assert_eq!(b.network.as_org.as_deref(), Some("Telstra Pty Ltd"));
    }

    #[test]
    fn source_values_are_never_replaced() {
        let e = enrich();
        let mut a = ev("73.45.12.8");
        a.network.geo = Some(Geo {
            lat: 1.0,
            lon: 2.0,
            city: None,
            country: None,
            accuracy_radius_km: None,
        });
        a.network.asn = Some(1);
        e.enrich(&mut a);
        assert_eq!(
            (a.network.geo.as_ref().unwrap().lat, a.network.asn),
            (1.0, Some(1))
        );
    }

    #[test]
    fn a_missing_database_file_is_named_at_start_up() {
        let cfg = EnrichConfig {
            geoip_city_db: Some("/nonexistent/GeoLite2-City.mmdb".into()),
            ..Default::default()
        };
        let e = Enrich::new(&cfg).err().unwrap().to_string();
        assert!(
            e.contains("normalize.enrich.geoip_city_db") && e.contains("GeoLite2-City.mmdb"),
            "{e}"
        );
        let cfg = EnrichConfig {
            egress_cidrs: vec!["10.0.0.0/40".into()],
            ..Default::default()
        };
        assert!(Enrich::new(&cfg)
            .err()
            .unwrap()
            .to_string()
            .contains("10.0.0.0/40"));
    }
}
