//! The unified session event: what every normalizer emits and every later stage reads.
//!
//! In: nothing (this is the data model). Out: [`SessionEvent`], borrowed from the raw message where the
//! JSON allows it ([`Text`]), serialized as the JSON described by `schemas/session-event.schema.json`.
//! State: none.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

mod time;

pub use time::Ts;

/// A string that borrows from the raw message when it can, or shares an interned copy from keyed state.
#[derive(Clone)]
pub enum Text<'a> {
    /// Borrowed straight out of the input buffer (no escapes in the JSON string).
    Borrowed(&'a str),
    /// Owned: unescaped from JSON or built by a normalizer.
    Owned(Box<str>),
    /// Shared with correlation state (cheap to clone onto many events).
    Shared(Arc<str>),
}

impl<'a> Text<'a> {
    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Owned(s) => s,
            Text::Shared(s) => s,
        }
    }
    /// An `Arc<str>` copy, for keyed state.
    pub fn to_arc(&self) -> Arc<str> {
        match self {
            Text::Shared(s) => s.clone(),
            other => Arc::from(other.as_str()),
        }
    }
}

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}
impl Borrow<str> for Text<'_> {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}
impl PartialEq for Text<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.as_str() == o.as_str()
    }
}
impl Eq for Text<'_> {}
impl std::hash::Hash for Text<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}
impl PartialEq<str> for Text<'_> {
    fn eq(&self, o: &str) -> bool {
        self.as_str() == o
    }
}
impl PartialEq<&str> for Text<'_> {
    fn eq(&self, o: &&str) -> bool {
        self.as_str() == *o
    }
}
impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text::Borrowed(s)
    }
}
impl From<String> for Text<'_> {
    fn from(s: String) -> Self {
        Text::Owned(s.into_boxed_str())
    }
}
impl From<Arc<str>> for Text<'_> {
    fn from(s: Arc<str>) -> Self {
        Text::Shared(s)
    }
}
impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text::Owned(v.into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text::Owned(v.into_boxed_str()))
            }
            // Vendors are loose about ids: accept numbers where a string id is expected.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text::Owned(v.to_string().into_boxed_str()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text::Owned(v.to_string().into_boxed_str()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Which kind of system produced the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Idp,
    Saas,
    Gateway,
    Agent,
}

/// What happened, in Quench's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Login,
    Sso,
    SessionEnd,
    TokenIssued,
    TokenRefreshed,
    TokenRevoked,
    ApiRequest,
    DataRead,
    DataWrite,
    Export,
    AdminChange,
    ToolCall,
    AgentInvoke,
    ModelCall,
    Other,
}

impl Category {
    /// Events that prove the principal (or someone holding its credential) was active.
    pub fn is_activity(self) -> bool {
        !matches!(
            self,
            Category::SessionEnd | Category::TokenRevoked | Category::Other
        )
    }
    /// Writes and exports: data leaving for a destination.
    pub fn is_outbound(self) -> bool {
        matches!(
            self,
            Category::DataWrite | Category::Export | Category::ToolCall
        )
    }
}

/// Whether the action succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    #[default]
    Unknown,
}

/// Who acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    Human,
    Service,
    Agent,
    #[default]
    Unknown,
}

/// Where the raw event came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provenance<'a> {
    Kafka {
        #[serde(borrow)]
        topic: Text<'a>,
        partition: i32,
        offset: i64,
    },
    File {
        #[serde(borrow)]
        path: Text<'a>,
        line: u64,
    },
    #[default]
    None,
}

impl Provenance<'_> {
    /// Appends what `Display` writes, without the formatting machinery (event ids of sources that have none are
    /// built from it, once per event).
    pub fn write_to(&self, out: &mut String) {
        match self {
            Provenance::Kafka {
                topic,
                partition,
                offset,
            } => {
                out.push_str(topic);
                out.push('/');
                push_int(out, i128::from(*partition));
                out.push('@');
                push_int(out, i128::from(*offset));
            }
            Provenance::File { path, line } => {
                out.push_str(path);
                out.push(':');
                push_int(out, i128::from(*line));
            }
            Provenance::None => out.push('-'),
        }
    }
}

/// Appends `n` in decimal.
pub fn push_int(out: &mut String, n: i128) {
    if n < 0 {
        out.push('-');
    }
    let mut digits = [0u8; 40];
    let mut i = digits.len();
    let v = n.unsigned_abs();
    // 64-bit division where the value allows (every offset and line number): 128-bit division is a slow call
    match u64::try_from(v) {
        Ok(mut v) => loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        },
        Err(_) => {
            let mut v = v;
            loop {
                i -= 1;
                digits[i] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
        }
    }
    // ASCII digits
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
}

impl fmt::Display for Provenance<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provenance::Kafka {
                topic,
                partition,
                offset,
            } => write!(f, "{topic}/{partition}@{offset}"),
            Provenance::File { path, line } => write!(f, "{path}:{line}"),
            Provenance::None => f.write_str("-"),
        }
    }
}

/// The producing system.
/// The vendors Quench reads with its own code and calls the APIs of, spelled once: the formats name their events'
/// vendor with [`Vendor::as_str`], and a revocation target says which vendor's log confirms it with a `Vendor`, so
/// the two cannot drift apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    Okta,
    Microsoft,
    Google,
    Slack,
    Salesforce,
    GitHub,
}

impl Vendor {
    /// The vendor as events name it (`source.vendor`, `trust.vendor`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Vendor::Okta => "okta",
            Vendor::Microsoft => "microsoft",
            Vendor::Google => "google",
            Vendor::Slack => "slack",
            Vendor::Salesforce => "salesforce",
            Vendor::GitHub => "github",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The format name of the Microsoft 365 unified audit log, whose workloads (Exchange, SharePoint, Teams …) name
/// their clients differently: detectors that compare clients keep them apart by workload. Normalize's
/// `m365_audit::NAME` is this constant, so later stages need not import normalize.
pub const M365_AUDIT: &str = "m365_audit";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo<'a> {
    pub family: Family,
    #[serde(borrow)]
    pub vendor: Text<'a>,
    #[serde(borrow)]
    pub format: Text<'a>,
}

/// Whose word an identity rests on: the source that authenticated it, or (for an identity correlation filled in)
/// the source of the link it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vouch<'a> {
    /// The vendor whose log vouches (`okta`, `microsoft`, `kong` …): the only vendor whose APIs may be addressed
    /// with the principal's id.
    #[serde(borrow)]
    pub vendor: Text<'a>,
    /// That source's family. An IdP vouches for the e-mail address as well as for its own ids.
    pub family: Family,
}

impl Vouch<'_> {
    /// How much a link learned from this source weighs against one from another (higher wins).
    pub fn strength(&self) -> u8 {
        match self.family {
            Family::Idp => 3,
            Family::Saas => 2,
            Family::Agent | Family::Gateway => 1,
        }
    }
    pub fn to_owned_vouch(&self) -> Vouch<'static> {
        Vouch {
            vendor: Text::Shared(self.vendor.to_arc()),
            family: self.family,
        }
    }
}

/// The acting identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Principal<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Text<'a>>,
    #[serde(default)]
    pub kind: PrincipalKind,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Text<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<Text<'a>>,
    /// The source that vouches for this identity. `None`: the identity is only claimed (a client-supplied header or
    /// user name, a request that failed authentication, an event of an untrusted input): a fact about the request
    /// that never aims a revocation. Normalizers set it; a native event's own value is replaced by its input's
    /// configured trust.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub vouched_by: Option<Vouch<'a>>,
    /// The person an agent says it acts for (OpenTelemetry `enduser.id`): context, never the acting principal.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Text<'a>>,
    /// The directory's immutable id for the principal, where `id` is a name that can be renamed or reused:
    /// GitHub's numeric `actor_id`, the Entra object id of a Microsoft 365 actor (what Entra's own logs use as
    /// `id`). For investigators and joins; correlation keys on `key()`.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<Text<'a>>,
}

impl Principal<'_> {
    /// The key correlation uses: the e-mail when known (it is stable across vendors), else the id.
    pub fn key(&self) -> Option<&str> {
        self.email.as_deref().or(self.id.as_deref())
    }
}

/// A set of session keys (token, session, job, client), as bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Keys(u8);

impl Keys {
    pub const TOKEN: Keys = Keys(1);
    pub const SESSION: Keys = Keys(2);
    pub const JOB: Keys = Keys(4);
    pub const CLIENT: Keys = Keys(8);
    pub const ALL: Keys = Keys(15);
    const NAMES: [(Keys, &'static str); 4] = [
        (Keys::TOKEN, "token_id"),
        (Keys::SESSION, "session_id"),
        (Keys::JOB, "job_id"),
        (Keys::CLIENT, "client_id"),
    ];
    pub fn has(self, k: Keys) -> bool {
        self.0 & k.0 == k.0 && k.0 != 0
    }
    pub fn with(self, k: Keys) -> Keys {
        Keys(self.0 | k.0)
    }
    pub fn without(self, k: Keys) -> Keys {
        Keys(self.0 & !k.0)
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

impl Serialize for Keys {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(None)?;
        for (k, n) in Keys::NAMES {
            if self.has(k) {
                seq.serialize_element(n)?;
            }
        }
        seq.end()
    }
}
impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names: Vec<std::borrow::Cow<'de, str>> = Deserialize::deserialize(d)?;
        let mut k = Keys::default();
        for n in names {
            match Keys::NAMES.iter().find(|(_, x)| *x == n) {
                Some((b, _)) => k = k.with(*b),
                None => {
                    return Err(de::Error::unknown_variant(
                        &n,
                        &["token_id", "session_id", "job_id", "client_id"],
                    ))
                }
            }
        }
        Ok(k)
    }
}

/// Keys that tie events into sessions. Token ids are the IdP's token id or a hash, never a bearer token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionKeys<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<Text<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Text<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub root_session_id: Option<Text<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Text<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Text<'a>>,
    /// On a token grant: how many other principals, vouched for by their source, had granted this OAuth client
    /// before (at most [`crate::correlate::PEERS_KEPT`]). Filled by correlate for every event (whatever a record
    /// claims is overwritten), so that the keyed topology counts the organisation's grants in its first stage,
    /// which sees every principal, and not per partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_peers: Option<u8>,
    /// Which of these keys the source vouches for (it issued or authenticated them). The others were supplied by
    /// the client (a request header, a span attribute of an untrusted input): correlation neither learns links from
    /// them nor attributes through them, and a target never acts on them.
    #[serde(default, skip_serializing_if = "Keys::is_empty")]
    pub vouched: Keys,
}

/// A point on the globe as the source reported it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Geo<'a> {
    pub lat: f64,
    pub lon: f64,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub city: Option<Text<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub country: Option<Text<'a>>,
    /// Accuracy radius in km, when the source gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_radius_km: Option<f64>,
}

impl Geo<'_> {
    /// Whether a latitude and longitude name a place on Earth (finite and in range).
    pub fn valid(lat: f64, lon: f64) -> bool {
        (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
    }
}

/// Network context of the request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Network<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub as_org: Option<Text<'a>>,
    /// The source says the request came through a proxy/VPN/Tor egress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_proxy: Option<bool>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Text<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Text<'a>>,
    /// What kind of network the address belongs to (from the configured networks, the ASN lists or a proxy
    /// flag); none when nothing says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<NetKind>,
    /// The country the source names when it gives no coordinates (GitHub's `actor_location.country_code`,
    /// Defender's `CountryCode`), as the source wrote it. Never a place to travel from.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub country: Option<Text<'a>>,
    /// The city the source names when it gives no coordinates, as the source wrote it.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub city: Option<Text<'a>>,
}

/// What kind of network an address is on, as far as the enrichment knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetKind {
    /// Home broadband.
    Residential,
    /// An office or other business network (often one NAT address for many people).
    Business,
    /// A mobile carrier: addresses are geolocated to the carrier's hub, often hundreds of km away.
    Mobile,
    /// In-flight and satellite links: geolocated to a ground station.
    Satellite,
    /// Cloud, hosting and colocation: servers, not people (adversary-in-the-middle kits replay from here).
    Hosting,
    /// Traffic relayed for its users: security proxies (Zscaler, Netskope), iCloud Private Relay, corporate VPN
    /// exits. The address says where the relay is, not where the user is.
    Egress,
}

impl NetKind {
    /// Whether the address's place says where the person is (not a hub, a ground station or a relay).
    pub fn places_the_user(self) -> bool {
        matches!(self, NetKind::Residential | NetKind::Business)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NetKind::Residential => "residential",
            NetKind::Business => "business",
            NetKind::Mobile => "mobile",
            NetKind::Satellite => "satellite",
            NetKind::Hosting => "hosting",
            NetKind::Egress => "egress",
        }
    }
}

/// What was touched, and where data went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Resource<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub app: Option<Text<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<Text<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<Text<'a>>,
    /// Data-domain labels the source gave; detectors add their own from `detectors/data_domains.toml`.
    #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<Text<'a>>,
    /// The server an agent or client reached (an MCP server's address, an API host).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Text<'a>>,
    /// Destination of a write or export (host, bucket/dataset, integration id).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Text<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
}

/// One unified session event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionEvent<'a> {
    #[serde(borrow)]
    pub event_id: Text<'a>,
    pub event_time: Ts,
    pub ingest_time: Ts,
    #[serde(borrow, default)]
    pub provenance: Provenance<'a>,
    #[serde(borrow)]
    pub source: SourceInfo<'a>,
    pub category: Category,
    /// The vendor's own event type (`user.session.start`, `execute_tool`, `GET` …).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Text<'a>>,
    #[serde(default)]
    pub outcome: Outcome,
    #[serde(borrow, default)]
    pub principal: Principal<'a>,
    #[serde(borrow, default)]
    pub session: SessionKeys<'a>,
    #[serde(borrow, default)]
    pub network: Network<'a>,
    #[serde(borrow, default)]
    pub resource: Resource<'a>,
    /// Set when the event's location is not where the actor was (e.g. a token-issue IP); travel logic skips it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub location_untrusted: bool,
    /// The source's own risk verdict on this sign-in, session or principal (Okta Identity Threat Protection and
    /// behaviour risk, Entra ID Protection, Salesforce's session-hijacking detection, Google's account warnings).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk<'a>>,
    /// How the sign-in was authenticated and what the source says of the client and device, when it says (boxed:
    /// most events carry none).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Box<Auth<'a>>>,
}

/// The facts a source gives about how a principal authenticated, as the source words them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Auth<'a> {
    /// The authentication method or credential ("Password", "FIDO2 security key", "backup_code", a GitHub
    /// programmatic access type).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Text<'a>>,
    /// Whether multi-factor authentication was satisfied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<bool>,
    /// The conditional access result ("success", "failure", "notApplied").
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub conditional_access: Option<Text<'a>>,
    /// Whether the device is compliant with the organisation's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_compliant: Option<bool>,
    /// How the device is joined or trusted ("Azure AD joined", "Hybrid Azure AD joined", "Workplace").
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub device_trust: Option<Text<'a>>,
    /// The kind of client ("Browser", "Mobile Apps and Desktop clients", "Exchange ActiveSync").
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub client_app: Option<Text<'a>>,
    /// The kind of login ("google_password", "saml", "Remote Access 2.0", "Application").
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub login_type: Option<Text<'a>>,
    /// OAuth scopes granted or used.
    #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<Text<'a>>,
    /// The user chose to stay signed in (Entra's KMSI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_signed_in: Option<bool>,
    /// Who actually signed in on the principal's behalf ("Login As" by a Salesforce admin).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub delegated_by: Option<Text<'a>>,
    /// Whether the session's token is bound to the device (Entra token protection: "bound", "unbound").
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub token_binding: Option<Text<'a>>,
    /// The source's own id of the credential used, where the session's token key is a hash of it (GitHub's
    /// numeric `token_id` beside `hashed_token`): what the vendor's token APIs take.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<Text<'a>>,
}

/// A vendor's risk verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Risk<'a> {
    pub level: RiskLevel,
    /// The vendor's name for what it detected ("detect_client_roaming", "anomalousToken", "SessionHijackingEvent").
    #[serde(borrow)]
    pub kind: Text<'a>,
}

/// How sure the vendor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    /// The vendor (or an admin through it) confirmed the account or session compromised.
    Compromised,
}

impl RiskLevel {
    /// "high", "HIGH", "level=HIGH" …; "none", "hidden" and unknown words are no level.
    pub fn parse(s: &str) -> Option<RiskLevel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Some(RiskLevel::Low),
            "medium" => Some(RiskLevel::Medium),
            "high" => Some(RiskLevel::High),
            "confirmedcompromised" | "compromised" => Some(RiskLevel::Compromised),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Compromised => "compromised",
        }
    }
}

/// A session or token ended, as an IdP or SaaS logged it: what confirms that a revocation took effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub event_id: String,
    pub event_time: Ts,
    /// The logging vendor (`okta`, `microsoft`, `google` …) and its event type.
    pub vendor: String,
    pub action: String,
    /// Whose sessions ended, lower-cased: the user an admin action targeted, else the principal (e-mail and id).
    pub subjects: Vec<String>,
}

impl<'a> SessionEvent<'a> {
    /// When this event records a session or token ending (not a failed attempt), who and when. Only a source that
    /// vouches for the event's principal (the user, or the admin who ended another's sessions) can confirm that a revocation took effect: a vendor's record carried by
    /// an untrusted envelope, or an OCSF event naming a vendor, is a claim and confirms nothing.
    pub fn ended(&self) -> Option<Ended> {
        if !matches!(self.category, Category::SessionEnd | Category::TokenRevoked)
            || self.outcome == Outcome::Failure
            || self.principal.vouched_by.is_none()
        {
            return None;
        }
        let target = self.resource.object_id.as_deref().filter(|_| {
            self.resource
                .object_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("user"))
        });
        let subjects: Vec<String> = match target {
            Some(t) => vec![t.to_ascii_lowercase()],
            None => [
                self.principal.email.as_deref(),
                self.principal.id.as_deref(),
            ]
            .into_iter()
            .flatten()
            .map(str::to_ascii_lowercase)
            .collect(),
        };
        if subjects.is_empty() {
            return None;
        }
        Some(Ended {
            event_id: self.event_id.to_string(),
            event_time: self.event_time,
            vendor: self.source.vendor.to_string(),
            action: self.action.as_deref().unwrap_or("").to_string(),
            subjects,
        })
    }

    /// Mark the principal and every key present as vouched for by this event's own source (formats that are
    /// authoritative for the identities in their logs: an IdP or a SaaS audit log for its own users).
    pub fn vouch_all(&mut self) {
        if self.principal.id.is_some() || self.principal.email.is_some() {
            self.principal.vouched_by = Some(Vouch {
                vendor: self.source.vendor.clone(),
                family: self.source.family,
            });
        }
        let s = &self.session;
        let mut k = s.vouched;
        for (present, bit) in [
            (s.token_id.is_some(), Keys::TOKEN),
            (s.session_id.is_some(), Keys::SESSION),
            (s.job_id.is_some(), Keys::JOB),
            (s.client_id.is_some(), Keys::CLIENT),
        ] {
            if present {
                k = k.with(bit);
            }
        }
        self.session.vouched = k;
    }

    /// Forget every vouch: the identity in this event is only claimed.
    /// The event's authentication facts, created empty when it has none.
    pub fn auth_mut(&mut self) -> &mut Auth<'a> {
        self.auth.get_or_insert_with(Default::default)
    }

    pub fn unvouch_all(&mut self) {
        self.principal.vouched_by = None;
        self.session.vouched = Keys::default();
    }

    /// Whether the source vouches for this key of the event (and the key is present).
    pub fn vouches(&self, k: Keys) -> bool {
        self.session.vouched.has(k)
    }

    /// The key detectors and decide track this event's actor by (job, else principal, else token, else session),
    /// and whether the source vouches for it. State first seen from unvouched keys lives in its own pool.
    pub fn actor_vouched(&self) -> bool {
        if self.session.job_id.is_some() {
            self.vouches(Keys::JOB)
        } else if self.principal.key().is_some() {
            self.principal.vouched_by.is_some()
        } else if self.session.token_id.is_some() {
            self.vouches(Keys::TOKEN)
        } else {
            self.vouches(Keys::SESSION)
        }
    }

    /// An empty event of a given source and category; normalizers fill in the rest.
    pub fn new(
        source: SourceInfo<'a>,
        event_id: Text<'a>,
        event_time: Ts,
        category: Category,
    ) -> Self {
        SessionEvent {
            event_id,
            event_time,
            ingest_time: Ts::default(),
            provenance: Provenance::None,
            source,
            category,
            action: None,
            outcome: Outcome::Unknown,
            principal: Principal::default(),
            session: SessionKeys::default(),
            network: Network::default(),
            resource: Resource::default(),
            location_untrusted: false,
            risk: None,
            auth: None,
        }
    }
}

#[cfg(test)]
mod tests {
    /// The hand-written form and reader agree with chrono's everywhere a year has four digits, and leave the rest
    /// to it.
    #[test]
    fn the_canonical_time_form_is_chronos_rfc3339_both_ways() {
        let mut rng = fastrand::Rng::with_seed(7);
        let far = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let edges = [
            0,
            -1,
            1,
            -62_167_219_200_000,
            far,
            951_782_400_000,
            1_709_164_800_000,
        ];
        for ms in edges
            .into_iter()
            .chain((0..20_000).map(|_| rng.i64(-62_167_219_200_000..=far)))
        {
            let t = Ts(ms);
            let chrono = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(t.to_rfc3339(), chrono, "{ms}");
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{chrono}\""));
            assert_eq!(Ts::parse(&chrono), Some(t), "{chrono}");
            assert_eq!(Ts::parse_canonical(chrono.as_bytes()), Some(t), "{chrono}");
        }
        // beyond four digits, chrono writes them, as before
        let big = Ts(far + 1);
        assert_eq!(big.to_rfc3339(), "+10000-01-01T00:00:00.000Z");
        // not the canonical form, or not a time: the general reader decides
        for s in [
            "2026-02-30T00:00:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-01-01T24:00:00.000Z",
            "2026-01-01T00:00:60.000Z",
            "2026-01-01T00:00:00.00aZ",
            "+026-01-01T00:00:00.000Z",
        ] {
            assert_eq!(Ts::parse_canonical(s.as_bytes()), None, "{s}");
        }
        assert_eq!(Ts::parse("2026-02-30T00:00:00.000Z"), None);
    }

    use super::*;

    /// The label written for every stored event without the formatting machinery is `Display`'s, at the ends of
    /// every integer it holds; and integers past 64 bits are written whole.
    #[test]
    fn provenance_written_by_hand_is_what_display_writes() {
        for p in [
            Provenance::File {
                path: "a/b.jsonl".into(),
                line: u64::MAX,
            },
            Provenance::File {
                path: "x".into(),
                line: 0,
            },
            Provenance::Kafka {
                topic: "t".into(),
                partition: i32::MIN,
                offset: i64::MIN,
            },
            Provenance::Kafka {
                topic: "t".into(),
                partition: i32::MAX,
                offset: i64::MAX,
            },
            Provenance::None,
        ] {
            let mut s = String::new();
            p.write_to(&mut s);
            assert_eq!(s, p.to_string());
        }
        for n in [i128::MIN, i128::MAX, -(1i128 << 64), 1i128 << 64, -1, 10] {
            let mut s = String::new();
            push_int(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    /// Found on a SIEM's export: Slack's epoch `date_create` and other numeric times arrive as strings.
    #[test]
    fn epoch_seconds_millis_micros_and_nanos_as_strings_agree() {
        let a = Some(Ts(1_623_190_575_000));
        assert_eq!(Ts::parse("1623190575"), a);
        assert_eq!(Ts::parse("1623190575000"), a);
        assert_eq!(Ts::parse("1623190575000000"), a);
        assert_eq!(Ts::parse("1623190575000000000"), a);
        assert_eq!(Ts::parse("1623190575.5"), Some(Ts(1_623_190_575_500)));
        assert_eq!(
            Ts::parse("2022-12-11 02:57:48.693000000"),
            Some(Ts(1_670_727_468_693))
        );
        assert_eq!(Ts::parse("16231905x5"), None);
        assert_eq!(Ts::parse("99999999999999999999"), None);
    }

    #[test]
    fn timestamps_in_iso_and_space_separated_forms_agree() {
        let a = Ts::parse("2020-01-01T00:00:00.000Z");
        let b = Ts::parse("2020-01-01 00:00:00.000000000");
        let c = Ts::parse("2020-01-01T01:00:00+01:00");
        assert_eq!(a, Some(Ts(1_577_836_800_000)));
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(
            Ts(1_577_836_800_123).to_rfc3339(),
            "2020-01-01T00:00:00.123Z"
        );
        assert_eq!(Ts::parse("yesterday"), None);
        assert_eq!(Ts::parse("2020-01-01T00:00:00.000+0000"), a);
        assert_eq!(Ts::parse("01/Jan/2020:00:00:00 +0000"), a);
        assert_eq!(Ts::parse("20200101000000.000"), a);
        assert_eq!(Ts::parse("2019-12-31T19:00:00.0000000-05:00"), a);
    }

    #[test]
    fn text_borrows_unescaped_strings_and_owns_escaped_ones() {
        let t: Text = serde_json::from_str(r#""plain""#).unwrap();
        assert!(matches!(t, Text::Borrowed("plain")));
        let t: Text = serde_json::from_str(r#""a\"b""#).unwrap();
        assert!(matches!(t, Text::Owned(_)));
        assert_eq!(t, "a\"b");
    }
}
