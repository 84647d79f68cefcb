//! The simulated world's places and networks, and the geo/ASN table an operator of it would load.
//!
//! In: nothing (constants). Out: cities with their broadband, mobile and office networks; the relays, hosting
//! providers, in-flight links and attackers' networks; address helpers for each; and [`operator_config`], the
//! `quench.toml` an operator of this organisation runs with: its geo/ASN table (what a MaxMind City, ASN and
//! Connection Type database would say about these addresses, as `[[normalize.enrich.networks]]`) and its list of
//! corporate VPN exits. Security-proxy, relay and cloud ASNs are left to Quench's built-in ASN lists, on purpose:
//! they are real ASNs, and the exam checks that the lists know them. State: none.

use std::fmt::Write as _;

/// A city people live in, with its networks.
pub struct City {
    pub name: &'static str,
    pub lat: f64,
    pub lon: f64,
    /// Okta names countries in full; Entra ID and the geo table use ISO codes.
    pub country: &'static str,
    pub cc: &'static str,
    /// Home broadband: one ASN for IPv4 and a sibling ASN of the same ISP for IPv6 (as many ISPs route them).
    pub isp_asn: u32,
    pub isp_v6_asn: u32,
    pub isp: &'static str,
    pub mobile_asn: u32,
    pub mobile: &'static str,
    /// Where the mobile carrier's egress is geolocated: its hub, hundreds of km away.
    pub hub: (f64, f64),
    /// The nearest Zscaler node and iCloud Private Relay egress, often in another country.
    pub zscaler: usize,
    pub relay: usize,
}

#[allow(clippy::too_many_arguments)]
const fn c(
    name: &'static str,
    lat: f64,
    lon: f64,
    country: &'static str,
    cc: &'static str,
    isp: (u32, u32, &'static str),
    mobile: (u32, &'static str),
    hub: (f64, f64),
    zscaler: usize,
    relay: usize,
) -> City {
    City {
        name,
        lat,
        lon,
        country,
        cc,
        isp_asn: isp.0,
        isp_v6_asn: isp.1,
        isp: isp.2,
        mobile_asn: mobile.0,
        mobile: mobile.1,
        hub,
        zscaler,
        relay,
    }
}

pub const CITIES: &[City] = &[
    c(
        "Chicago",
        41.88,
        -87.63,
        "United States",
        "US",
        (7922, 33657, "Comcast Cable"),
        (21928, "T-Mobile USA"),
        (39.10, -94.58),
        0,
        0,
    ),
    c(
        "New York",
        40.71,
        -74.01,
        "United States",
        "US",
        (701, 6167, "Verizon Business"),
        (22394, "Verizon Wireless"),
        (38.90, -77.04),
        0,
        0,
    ),
    c(
        "San Francisco",
        37.77,
        -122.42,
        "United States",
        "US",
        (7018, 6389, "AT&T Services"),
        (20057, "AT&T Mobility"),
        (33.45, -112.07),
        1,
        1,
    ),
    c(
        "Denver",
        39.74,
        -104.99,
        "United States",
        "US",
        (209, 3356, "Lumen"),
        (21928, "T-Mobile USA"),
        (35.47, -97.52),
        1,
        1,
    ),
    c(
        "Toronto",
        43.65,
        -79.38,
        "Canada",
        "CA",
        (812, 16508, "Rogers Communications"),
        (37693, "Rogers Wireless"),
        (45.50, -73.57),
        0,
        0,
    ),
    c(
        "London",
        51.51,
        -0.13,
        "United Kingdom",
        "GB",
        (2856, 5400, "British Telecommunications"),
        (12576, "EE Limited"),
        (53.48, -2.24),
        2,
        2,
    ),
    c(
        "Berlin",
        52.52,
        13.40,
        "Germany",
        "DE",
        (3320, 6805, "Deutsche Telekom"),
        (3209, "Vodafone GmbH"),
        (50.11, 8.68),
        2,
        2,
    ),
    c(
        "Paris",
        48.86,
        2.35,
        "France",
        "FR",
        (3215, 5511, "Orange"),
        (51207, "Free Mobile"),
        (45.76, 4.84),
        2,
        2,
    ),
    c(
        "Madrid",
        40.42,
        -3.70,
        "Spain",
        "ES",
        (3352, 6739, "Telefonica de Espana"),
        (12430, "Vodafone Spain"),
        (41.39, 2.17),
        2,
        2,
    ),
    c(
        "Bangalore",
        12.97,
        77.59,
        "India",
        "IN",
        (24560, 9498, "Bharti Airtel"),
        (45609, "Bharti Airtel Mobility"),
        (19.08, 72.88),
        3,
        3,
    ),
    c(
        "Singapore",
        1.35,
        103.82,
        "Singapore",
        "SG",
        (9506, 7473, "Singtel"),
        (4773, "Singtel Mobile"),
        (1.35, 103.82),
        3,
        3,
    ),
    c(
        "Sydney",
        -33.87,
        151.21,
        "Australia",
        "AU",
        (1221, 4637, "Telstra"),
        (4804, "Optus Mobile"),
        (-37.81, 144.96),
        3,
        3,
    ),
    c(
        "Tokyo",
        35.68,
        139.69,
        "Japan",
        "JP",
        (2516, 4713, "KDDI"),
        (17676, "SoftBank Mobile"),
        (34.69, 135.50),
        3,
        3,
    ),
    c(
        "Sao Paulo",
        -23.55,
        -46.63,
        "Brazil",
        "BR",
        (28573, 4230, "Claro NXT"),
        (26599, "TIM Brasil"),
        (-22.91, -43.17),
        1,
        1,
    ),
];

/// A place with a network that is not a home: relays, hosting, in-flight links, attackers.
pub struct Site {
    pub name: &'static str,
    pub lat: f64,
    pub lon: f64,
    pub country: &'static str,
    pub cc: &'static str,
    pub asn: u32,
    pub org: &'static str,
    /// The /16 its addresses come from.
    pub prefix: &'static str,
}

#[allow(clippy::too_many_arguments)]
const fn s(
    name: &'static str,
    lat: f64,
    lon: f64,
    country: &'static str,
    cc: &'static str,
    asn: u32,
    org: &'static str,
    prefix: &'static str,
) -> Site {
    Site {
        name,
        lat,
        lon,
        country,
        cc,
        asn,
        org,
        prefix,
    }
}

/// Zscaler nodes (real Zscaler ASN and range): the security proxy egresses wherever the node is.
pub const ZSCALER: &[Site] = &[
    s(
        "Chicago",
        41.88,
        -87.63,
        "United States",
        "US",
        53813,
        "Zscaler, Inc.",
        "165.225.8",
    ),
    s(
        "Dallas",
        32.78,
        -96.80,
        "United States",
        "US",
        22616,
        "Zscaler, Inc.",
        "165.225.34",
    ),
    s(
        "Frankfurt",
        50.11,
        8.68,
        "Germany",
        "DE",
        53813,
        "Zscaler, Inc.",
        "165.225.72",
    ),
    s(
        "Singapore",
        1.35,
        103.82,
        "Singapore",
        "SG",
        22616,
        "Zscaler, Inc.",
        "165.225.112",
    ),
];

/// iCloud Private Relay egress (Akamai and Cloudflare, real ASNs): geolocated to a region, not the user.
pub const RELAY: &[Site] = &[
    s(
        "Toronto",
        43.65,
        -79.38,
        "Canada",
        "CA",
        36183,
        "Akamai Technologies",
        "172.224.40",
    ),
    s(
        "Los Angeles",
        34.05,
        -118.24,
        "United States",
        "US",
        13335,
        "Cloudflare, Inc.",
        "104.28.50",
    ),
    s(
        "Amsterdam",
        52.37,
        4.90,
        "Netherlands",
        "NL",
        36183,
        "Akamai Technologies",
        "172.224.90",
    ),
    s(
        "Hong Kong",
        22.32,
        114.17,
        "Hong Kong",
        "HK",
        13335,
        "Cloudflare, Inc.",
        "104.28.120",
    ),
];

/// The organisation's VPN exits, on a hosting provider (M247): listed by the operator as egress.
pub const VPN: &[Site] = &[
    s(
        "Frankfurt",
        50.11,
        8.68,
        "Germany",
        "DE",
        9009,
        "M247 Europe",
        "193.27.14",
    ),
    s(
        "Ashburn",
        39.04,
        -77.49,
        "United States",
        "US",
        9009,
        "M247 Europe",
        "193.27.15",
    ),
];

/// In-flight Wi-Fi: every address is geolocated to the provider's ground station.
pub const INFLIGHT: Site = s(
    "Ground station",
    39.74,
    -104.99,
    "United States",
    "US",
    64496,
    "Inflight Connectivity",
    "57.20.0",
);

/// Cloud regions an adversary-in-the-middle kit replays from, one per country of the homes (same country as
/// the victim).
pub fn hosting_for(city: &City) -> Site {
    // AWS (16509) in most countries, DigitalOcean (14061) elsewhere
    let (asn, org) = if city.cc == "US" || city.cc == "GB" || city.cc == "DE" || city.cc == "JP" {
        (16509, "Amazon.com, Inc.")
    } else {
        (14061, "DigitalOcean, LLC")
    };
    Site {
        name: "cloud region",
        lat: city.lat + 0.3,
        lon: city.lon + 0.3,
        country: city.country,
        cc: city.cc,
        asn,
        org,
        prefix: "",
    }
}

/// Residential networks attackers use (another country from every home).
pub const ATTACKERS: &[Site] = &[
    s(
        "Jakarta",
        -6.21,
        106.85,
        "Indonesia",
        "ID",
        7713,
        "PT Telekomunikasi Indonesia",
        "36.80.0",
    ),
    s(
        "Lagos",
        6.52,
        3.38,
        "Nigeria",
        "NG",
        29465,
        "MTN Nigeria",
        "41.184.0",
    ),
    s(
        "Bucharest",
        44.43,
        26.10,
        "Romania",
        "RO",
        8708,
        "RCS & RDS",
        "86.120.0",
    ),
    s(
        "Ho Chi Minh City",
        10.82,
        106.63,
        "Vietnam",
        "VN",
        45899,
        "VNPT",
        "14.160.0",
    ),
];

/// A host in a /24 or /16 prefix written as its first octets.
pub fn host(prefix: &str, a: u64, b: u64) -> String {
    match prefix.matches('.').count() {
        2 => format!("{prefix}.{}", 1 + a % 250),
        _ => format!("{prefix}.{}.{}", a % 250, 1 + b % 250),
    }
}

/// Home broadband IPv4 of household `hh` in city `ci` (stable for weeks).
pub fn home_v4(ci: usize, hh: u64) -> String {
    format!(
        "{}.{}.{}.{}",
        60 + ci,
        (hh >> 8) % 250,
        hh % 250,
        2 + (hh * 7) % 250
    )
}

/// Home IPv6 of household `hh`: its /48 and /64 are stable, the interface part is a temporary address that
/// changes daily.
pub fn home_v6(ci: usize, hh: u64, temp: u64) -> String {
    format!(
        "2400:{:x}:{:x}:1:{:x}:{:x}:{:x}:{:x}",
        ci + 1,
        hh,
        (temp >> 48) & 0xffff,
        (temp >> 32) & 0xffff,
        (temp >> 16) & 0xffff,
        temp & 0xffff
    )
}

/// A mobile carrier address (carrier-grade NAT: it changes through the day).
pub fn mobile_ip(ci: usize, a: u64) -> String {
    format!(
        "{}.{}.{}.{}",
        100 + ci,
        (a >> 16) % 250,
        (a >> 8) % 250,
        1 + a % 250
    )
}

/// The office's one NAT address in city `ci`.
pub fn office_ip(ci: usize) -> String {
    format!("198.18.{ci}.10")
}

/// An address in the cloud region for city `ci`.
pub fn hosting_ip(ci: usize, a: u64) -> String {
    let base = if hosting_for(&CITIES[ci]).asn == 16509 {
        3
    } else {
        159
    };
    format!("{base}.{}.{}.{}", 80 + ci, a % 250, 1 + (a >> 8) % 250)
}

/// The `quench.toml` an operator of this organisation runs Quench with.
pub fn operator_config() -> String {
    let mut t = String::from(
        "# Written by `quench simulate`: how this organisation configures Quench.\n\
         # The agent platform's configuration audit (native events) is authoritative for its agents.\n\
         [normalize.formats.native]\nfamily = \"agent\"\nvendor = \"agent-platform\"\nvouched = true\n\n\
         # The organisation's own buckets and hooks: a new one is a reconfiguration to look at, not exfiltration.\n\
         [detect]\nown_destinations = [\"s3://corp-*\", \"https://*.corp.example/*\"]\n\n\
         # The organisation's own VPN exits: egress, not travel.\n[normalize.enrich]\negress_cidrs = [",
    );
    let exits: Vec<String> = VPN
        .iter()
        .map(|v| format!("\"{}.0/24\"", v.prefix))
        .collect();
    t.push_str(&exits.join(", "));
    t.push_str("]\n\n# The geo/ASN table of this world (what MaxMind City, ASN and Connection Type would say).\n");
    let mut net = |cidr: String,
                   lat: f64,
                   lon: f64,
                   cc: &str,
                   asn: u32,
                   org: &str,
                   kind: Option<&str>,
                   acc: Option<f64>| {
        let _ = write!(
            t,
            "[[normalize.enrich.networks]]\ncidr = \"{cidr}\"\nlat = {lat}\nlon = {lon}\ncountry = \"{cc}\"\nasn = {asn}\nas_org = \"{org}\"\n"
        );
        if let Some(k) = kind {
            let _ = writeln!(t, "kind = \"{k}\"");
        }
        if let Some(a) = acc {
            let _ = writeln!(t, "accuracy_km = {a}");
        }
    };
    for (i, ci) in CITIES.iter().enumerate() {
        net(
            format!("{}.0.0.0/8", 60 + i),
            ci.lat,
            ci.lon,
            ci.cc,
            ci.isp_asn,
            ci.isp,
            Some("residential"),
            Some(20.0),
        );
        net(
            format!("2400:{:x}::/32", i + 1),
            ci.lat,
            ci.lon,
            ci.cc,
            ci.isp_v6_asn,
            ci.isp,
            Some("residential"),
            Some(20.0),
        );
        net(
            format!("{}.0.0.0/8", 100 + i),
            ci.hub.0,
            ci.hub.1,
            ci.cc,
            ci.mobile_asn,
            ci.mobile,
            Some("mobile"),
            None,
        );
        net(
            format!("198.18.{i}.0/24"),
            ci.lat,
            ci.lon,
            ci.cc,
            ci.isp_asn,
            ci.isp,
            Some("business"),
            Some(10.0),
        );
        let h = hosting_for(ci);
        let base = if h.asn == 16509 { 3 } else { 159 };
        net(
            format!("{base}.{}.0.0/16", 80 + i),
            h.lat,
            h.lon,
            h.cc,
            h.asn,
            h.org,
            None,
            Some(100.0),
        );
    }
    for site in ZSCALER.iter().chain(RELAY).chain(VPN).chain(ATTACKERS) {
        let cidr = if site.prefix.matches('.').count() == 2 {
            format!("{}.0/24", site.prefix)
        } else {
            format!("{}.0.0/16", site.prefix)
        };
        net(
            cidr,
            site.lat,
            site.lon,
            site.cc,
            site.asn,
            site.org,
            None,
            Some(50.0),
        );
    }
    net(
        format!("{}.0/24", INFLIGHT.prefix),
        INFLIGHT.lat,
        INFLIGHT.lon,
        INFLIGHT.cc,
        INFLIGHT.asn,
        INFLIGHT.org,
        Some("satellite"),
        None,
    );
    t
}
