//! OCSF 1.x events (Open Cybersecurity Schema Framework) as AWS Security Lake, Splunk and Tenzir write them as JSON:
//! Authentication (`class_uid` 3002), Account Change (3001), API Activity (6003) and Web Resources Activity (6001).
//!
//! In: one OCSF event. Out: one session event. State: none.
//!
//! Time: `time` (epoch milliseconds by the spec; seconds, micro- and nanoseconds are told apart by magnitude and an
//! RFC 3339 string is read too, as producers write those), else `time_dt`. Event id: `metadata.uid`. Category from
//! the class and `activity_id` (else `type_uid`): logon, preauth and account switch → login, logoff → session end,
//! Kerberos tickets → token issued (renewal: refreshed), every account change → admin change, create, update,
//! delete and import → data write, read and search → data read, a web resource export or share → export, any other
//! API or web activity → api request. Outcome: `status_id`, else `status`, else a denying `action_id`.
//!
//! Principal: for 3002 `user` (the account signing in), completed from `actor.user` when that names the same
//! account; for 3001 `actor.user`, with the changed `user` as the object; for 6001/6003 `actor.user`; with no user,
//! the actor's app as a service. Id `uid` (else `uid_alt`, `name`), e-mail `email_addr` (else a `name` holding an
//! `@`), kind `type_id`. Session: `uid` (else `uid_alt`, `uuid`) of `session` then `actor.session` for 3002, of
//! `actor.session` then `session` otherwise. Token id: `api.token.uid`, the session's `credential_uid`, else the
//! principal's `credential_uid` or first programmatic credential (an access key id, never a secret). Client:
//! `actor.app_uid`. Network: `src_endpoint` `ip`, `autonomous_system`, `location` (`lat`/`long`, else
//! `coordinates` as [lon, lat]: a place only with both, else its city and country alone); `http_request.user_agent`;
//! `device.uid`. Resource: app `api.service.name` (else `service.name`), server `dst_endpoint.hostname` (else
//! `svc_name`), object the changed user, else the first `web_resources` or `resources` item; bytes the request's
//! length for writes, the response's for reads and exports. Action: `api.operation`, else `metadata.event_code`,
//! else class and activity (`authentication.logon`). Vendor risk: `risk_level_id`/`risk_level` (Critical counts as
//! high), else the principal's. Account lockouts and password resets carry the requester's location, not the
//! user's (`location_untrusted`).
//!
//! Source: vendor the lower-cased `metadata.product.vendor_name` when it is one Quench acts at (`okta`,
//! `microsoft`, `google`, `salesforce`, `slack`, `github`), else `ocsf`; family that vendor's own (Okta an IdP;
//! Google, Salesforce, Slack and GitHub SaaS), else by class (3001/3002 IdP, 6001/6003 SaaS).
//!
//! Trust: an OCSF event is a vendor's record rewritten by a pipeline, so by itself it vouches for nothing: every
//! identity and key in it is a claim. `vouched_vendors` lists the `metadata.product.vendor_name` values whose events
//! reach this input only through a pipeline the operator controls; those events vouch for their principal and keys
//! under `source.vendor`, except the principal of a sign-in that did not succeed (the account someone tried, not
//! who acted). The vendor name is the event's own word: anyone who can write to the input can name any vendor, so
//! list a vendor only for inputs no one else writes to.
//!
//! Authentication facts: `is_mfa`, `auth_protocol` (as the method) and `logon_type` go to `auth`. Not carried: a
//! session's `uid_alt` when it also has a `uid`, and classes other than these four (rejected with the class named).

use super::{parse_config, ConfigError, Context, Loose, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "ocsf";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &["class_uid", "metadata", "time", "time_dt"];

/// `[normalize.formats.ocsf]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OcsfConfig {
    /// `metadata.product.vendor_name` values (ASCII case ignored, e.g. `"Okta"`) whose events reach this input only
    /// through a pipeline the operator controls: their events vouch for their principal and keys under
    /// `source.vendor`. Default `[]`: every OCSF event is a claim.
    pub vouched_vendors: Vec<String>,
}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let cfg: OcsfConfig = parse_config(NAME, t)?;
    let mut vouched = Vec::with_capacity(cfg.vouched_vendors.len());
    for v in cfg.vouched_vendors {
        let name = v.trim().to_string();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(ConfigError::Invalid {
                key: "normalize.formats.ocsf.vouched_vendors".into(),
                value: v,
                why: "each entry is a vendor name as `metadata.product.vendor_name` gives it (\"Okta\"), \
                      non-empty and without control characters"
                    .into(),
            });
        }
        vouched.push(name);
    }
    Ok(Box::new(Ocsf {
        vouched,
        hint: super::Needles::new(&["\"class_uid\"", "\"metadata\""]),
    }))
}

pub struct Ocsf {
    /// `vouched_vendors`, trimmed.
    vouched: Vec<String>,
    hint: super::Needles,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(default, deserialize_with = "super::lenient_num")]
    class_uid: Option<u32>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    activity_id: Option<u32>,
    /// `class_uid * 100 + activity_id`, for producers that leave `activity_id` out.
    #[serde(default, deserialize_with = "super::lenient_num")]
    type_uid: Option<u64>,
    #[serde(borrow, default)]
    time: Loose<'a>,
    #[serde(borrow, default)]
    time_dt: Loose<'a>,
    #[serde(borrow, default)]
    metadata: Option<Meta<'a>>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    status_id: Option<u32>,
    #[serde(borrow, default)]
    status: Loose<'a>,
    /// Security Control profile: 1 Allowed, 2 Denied.
    #[serde(default, deserialize_with = "super::lenient_num")]
    action_id: Option<u32>,
    #[serde(borrow, default)]
    actor: Option<Actor<'a>>,
    /// 3002: the account authenticating; 3001: the account changed.
    #[serde(borrow, default)]
    user: Option<User<'a>>,
    #[serde(borrow, default)]
    session: Option<Sess<'a>>,
    #[serde(borrow, default)]
    src_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow, default)]
    dst_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow, default)]
    device: Option<Device<'a>>,
    #[serde(borrow, default)]
    http_request: Option<HttpReq<'a>>,
    #[serde(default)]
    http_response: Option<HttpResp>,
    #[serde(borrow, default)]
    api: Option<Api<'a>>,
    /// 3002: the service or gateway authenticated to.
    #[serde(borrow, default)]
    service: Option<Named<'a>>,
    #[serde(borrow, default)]
    web_resources: Option<Vec<Item<'a>>>,
    #[serde(borrow, default)]
    resources: Option<Vec<Item<'a>>>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    risk_level_id: Option<u32>,
    #[serde(borrow, default)]
    risk_level: Loose<'a>,
    #[serde(borrow, default)]
    risk_details: Loose<'a>,
    /// 3002: whether multi-factor authentication was used, the protocol, and the kind of logon.
    #[serde(default)]
    is_mfa: Option<bool>,
    #[serde(borrow, default)]
    auth_protocol: Loose<'a>,
    #[serde(borrow, default)]
    logon_type: Loose<'a>,
}

#[derive(Deserialize, Default)]
struct Meta<'a> {
    #[serde(borrow, default)]
    uid: Option<Text<'a>>,
    /// The vendor's own event type (`user.session.start`, `4624`).
    #[serde(borrow, default)]
    event_code: Loose<'a>,
    #[serde(borrow, default)]
    product: Option<Product<'a>>,
}

#[derive(Deserialize)]
struct Product<'a> {
    #[serde(borrow, default)]
    vendor_name: Option<Text<'a>>,
}

#[derive(Deserialize, Default)]
struct Actor<'a> {
    #[serde(borrow, default)]
    user: Option<User<'a>>,
    #[serde(borrow, default)]
    session: Option<Sess<'a>>,
    #[serde(borrow, default)]
    app_uid: Option<Text<'a>>,
    #[serde(borrow, default)]
    app_name: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct User<'a> {
    #[serde(borrow, default)]
    uid: Option<Text<'a>>,
    #[serde(borrow, default)]
    uid_alt: Option<Text<'a>>,
    /// The user name (an Entra UPN, an IAM user name; Okta's mapping puts the display name here).
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    email_addr: Option<Text<'a>>,
    #[serde(borrow, default)]
    display_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    full_name: Option<Text<'a>>,
    /// 1 User, 2 Admin, 3 System, 4 Service.
    #[serde(default, deserialize_with = "super::lenient_num")]
    type_id: Option<u32>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Text<'a>>,
    /// Deprecated since 1.6 for `programmatic_credentials`; AWS puts the access key id here.
    #[serde(borrow, default)]
    credential_uid: Option<Text<'a>>,
    #[serde(borrow, default)]
    programmatic_credentials: Option<Vec<Named<'a>>>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    risk_level_id: Option<u32>,
    #[serde(borrow, default)]
    risk_level: Loose<'a>,
}

impl<'a> User<'a> {
    fn names_someone(&self) -> bool {
        [&self.uid, &self.email_addr, &self.name]
            .iter()
            .any(|f| f.as_deref().is_some_and(|s| !s.trim().is_empty()))
    }

    /// Whether `o` is the same account: no id, e-mail or name of the two differs, and at least one agrees.
    fn same_account(&self, o: &User<'_>) -> bool {
        let mut agree = false;
        for (a, b, exact) in [
            (&self.uid, &o.uid, true),
            (&self.email_addr, &o.email_addr, false),
            (&self.name, &o.name, false),
        ] {
            if let (Some(a), Some(b)) = (a.as_deref(), b.as_deref()) {
                let same = if exact {
                    a == b
                } else {
                    a.eq_ignore_ascii_case(b)
                };
                if !same {
                    return false;
                }
                agree = true;
            }
        }
        agree
    }

    /// Fill what this account's record lacks from another record of the same account.
    fn complete_from(&mut self, o: User<'a>) {
        self.uid = self.uid.take().or(o.uid);
        self.uid_alt = self.uid_alt.take().or(o.uid_alt);
        self.name = self.name.take().or(o.name);
        self.email_addr = self.email_addr.take().or(o.email_addr);
        self.display_name = self.display_name.take().or(o.display_name);
        self.full_name = self.full_name.take().or(o.full_name);
        self.type_id = self.type_id.or(o.type_id);
        self.kind = self.kind.take().or(o.kind);
        self.credential_uid = self.credential_uid.take().or(o.credential_uid);
        self.programmatic_credentials = self
            .programmatic_credentials
            .take()
            .or(o.programmatic_credentials);
        self.risk_level_id = self.risk_level_id.or(o.risk_level_id);
        if self.risk_level.0.is_none() {
            self.risk_level = o.risk_level;
        }
    }
}

#[derive(Deserialize)]
struct Sess<'a> {
    #[serde(borrow, default)]
    uid: Option<Text<'a>>,
    /// "The alternate unique identifier of the session", e.g. an AWS STS session ARN.
    #[serde(borrow, default)]
    uid_alt: Option<Text<'a>>,
    #[serde(borrow, default)]
    uuid: Option<Text<'a>>,
    #[serde(borrow, default)]
    credential_uid: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Endpoint<'a> {
    #[serde(borrow, default)]
    ip: Option<Text<'a>>,
    #[serde(borrow, default)]
    hostname: Option<Text<'a>>,
    #[serde(borrow, default)]
    svc_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    isp: Option<Text<'a>>,
    #[serde(borrow, default)]
    location: Option<Location<'a>>,
    #[serde(borrow, default)]
    autonomous_system: Option<Asys<'a>>,
}

#[derive(Deserialize)]
struct Location<'a> {
    #[serde(borrow, default)]
    city: Option<Text<'a>>,
    #[serde(borrow, default)]
    country: Option<Text<'a>>,
    #[serde(borrow, default)]
    lat: Loose<'a>,
    #[serde(borrow, default)]
    long: Loose<'a>,
    /// GeoJSON order, longitude first; deprecated since 1.2 for `lat`/`long` (Security Lake's 1.1 still writes it).
    #[serde(borrow, default)]
    coordinates: Option<Vec<Loose<'a>>>,
}

#[derive(Deserialize)]
struct Asys<'a> {
    #[serde(default, deserialize_with = "super::lenient_num")]
    number: Option<u32>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Device<'a> {
    #[serde(borrow, default)]
    uid: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct HttpReq<'a> {
    #[serde(borrow, default)]
    user_agent: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::lenient_num")]
    length: Option<u64>,
}

#[derive(Deserialize)]
struct HttpResp {
    #[serde(default, deserialize_with = "super::lenient_num")]
    length: Option<u64>,
}

#[derive(Deserialize, Default)]
struct Api<'a> {
    #[serde(borrow, default)]
    operation: Option<Text<'a>>,
    #[serde(borrow, default)]
    service: Option<Named<'a>>,
    /// The API or client token's id (1.8), never the token.
    #[serde(borrow, default)]
    token: Option<Named<'a>>,
}

/// Any object read for its id and name (a service, a token, a programmatic credential).
#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    uid: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
}

/// A `web_resources` or `resources` item.
#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow, default)]
    uid: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    url_string: Option<Text<'a>>,
}

/// The classes read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    AccountChange,
    Authentication,
    WebResources,
    ApiActivity,
}

impl Class {
    fn of(class_uid: u32) -> Option<Class> {
        match class_uid {
            3001 => Some(Class::AccountChange),
            3002 => Some(Class::Authentication),
            6001 => Some(Class::WebResources),
            6003 => Some(Class::ApiActivity),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Class::AccountChange => "account_change",
            Class::Authentication => "authentication",
            Class::WebResources => "web_resources_activity",
            Class::ApiActivity => "api_activity",
        }
    }
}

/// The schema's caption of an activity, as a name.
fn activity_name(class: Class, activity: Option<u32>) -> &'static str {
    use Class::*;
    match (class, activity.unwrap_or(0)) {
        (Authentication, 1) => "logon",
        (Authentication, 2) => "logoff",
        (Authentication, 3) => "authentication_ticket",
        (Authentication, 4) => "service_ticket_request",
        (Authentication, 5) => "service_ticket_renew",
        (Authentication, 6) => "preauth",
        (Authentication, 7) => "account_switch",
        (AccountChange, 1) => "create",
        (AccountChange, 2) => "enable",
        (AccountChange, 3) => "password_change",
        (AccountChange, 4) => "password_reset",
        (AccountChange, 5) => "disable",
        (AccountChange, 6) => "delete",
        (AccountChange, 7) => "attach_policy",
        (AccountChange, 8) => "detach_policy",
        (AccountChange, 9) => "lock",
        (AccountChange, 10) => "mfa_factor_enable",
        (AccountChange, 11) => "mfa_factor_disable",
        (AccountChange, 12) => "unlock",
        (ApiActivity | WebResources, 1) => "create",
        (ApiActivity | WebResources, 2) => "read",
        (ApiActivity | WebResources, 3) => "update",
        (ApiActivity | WebResources, 4) => "delete",
        (WebResources, 5) => "search",
        (WebResources, 6) => "import",
        (WebResources, 7) => "export",
        (WebResources, 8) => "share",
        (_, 99) => "other",
        _ => "unknown",
    }
}

fn category(class: Class, activity: Option<u32>) -> Category {
    use Category::*;
    match (class, activity.unwrap_or(0)) {
        (Class::Authentication, 1 | 6 | 7) => Login,
        (Class::Authentication, 2) => SessionEnd,
        (Class::Authentication, 3 | 4) => TokenIssued,
        (Class::Authentication, 5) => TokenRefreshed,
        (Class::Authentication, _) => Other,
        (Class::AccountChange, _) => AdminChange,
        (Class::ApiActivity, 1 | 3 | 4) | (Class::WebResources, 1 | 3 | 4 | 6) => DataWrite,
        (Class::ApiActivity, 2) | (Class::WebResources, 2 | 5) => DataRead,
        (Class::WebResources, 7 | 8) => Export,
        (Class::ApiActivity | Class::WebResources, _) => ApiRequest,
    }
}

fn outcome(status_id: Option<u32>, status: Option<&str>, action_id: Option<u32>) -> Outcome {
    match status_id {
        Some(1) => Outcome::Success,
        Some(2) => Outcome::Failure,
        _ => match status.map(str::trim) {
            Some(s) if s.eq_ignore_ascii_case("success") => Outcome::Success,
            Some(s) if s.eq_ignore_ascii_case("failure") => Outcome::Failure,
            _ if action_id == Some(2) => Outcome::Failure,
            _ => Outcome::Unknown,
        },
    }
}

fn principal_kind(type_id: Option<u32>, kind: Option<&str>) -> PrincipalKind {
    match type_id {
        Some(1 | 2) => PrincipalKind::Human,
        Some(3 | 4) => PrincipalKind::Service,
        _ => {
            let is = |names: &[&str]| {
                kind.is_some_and(|k| names.iter().any(|n| k.trim().eq_ignore_ascii_case(n)))
            };
            if is(&["User", "Admin", "IAMUser", "Root", "IdentityCenterUser"]) {
                PrincipalKind::Human
            } else if is(&["System", "Service", "AWSService"]) {
                PrincipalKind::Service
            } else {
                PrincipalKind::Unknown
            }
        }
    }
}

/// OCSF's risk level: 1 Low, 2 Medium, 3 High, 4 Critical (no confirmed compromise: high), else the caption.
fn risk_level(id: Option<u32>, caption: Option<&str>) -> Option<RiskLevel> {
    match id {
        Some(1) => Some(RiskLevel::Low),
        Some(2) => Some(RiskLevel::Medium),
        Some(3 | 4) => Some(RiskLevel::High),
        _ => caption.and_then(|c| {
            if c.trim().eq_ignore_ascii_case("critical") {
                Some(RiskLevel::High)
            } else {
                RiskLevel::parse(c)
            }
        }),
    }
}

/// The Quench vendor a `vendor_name` names, when Quench acts at that vendor.
fn known_vendor(vendor_name: &str) -> Option<&'static str> {
    let n = vendor_name.trim();
    [
        "okta",
        "microsoft",
        "google",
        "salesforce",
        "slack",
        "github",
    ]
    .into_iter()
    .find(|k| n.eq_ignore_ascii_case(k))
}

/// The family of the vendor's own log where Quench reads one, else of the class.
fn family(vendor: Option<&str>, class: Class) -> Family {
    match vendor {
        Some("okta") => Family::Idp,
        Some("google" | "salesforce" | "slack" | "github") => Family::Saas,
        _ => match class {
            Class::Authentication | Class::AccountChange => Family::Idp,
            Class::ApiActivity | Class::WebResources => Family::Saas,
        },
    }
}

fn non_empty(t: Option<Text<'_>>) -> Option<Text<'_>> {
    t.filter(|s| !s.trim().is_empty())
}

/// The account a 3002 event is about: `user`, completed from `actor.user` when that names the same account (Security
/// Lake's CloudTrail sign-ins give `user` only its id), `actor.user` when `user` names no one.
fn signing_in<'a>(user: Option<User<'a>>, actor: Option<User<'a>>) -> Option<User<'a>> {
    match (user, actor) {
        (Some(u), Some(a)) if !u.names_someone() => {
            let mut a = a;
            a.complete_from(u);
            Some(a)
        }
        (Some(mut u), Some(a)) if u.same_account(&a) => {
            u.complete_from(a);
            Some(u)
        }
        (u @ Some(_), _) => u,
        (None, a) => a,
    }
}

fn session_key<'a>(s: &Sess<'a>) -> Option<Text<'a>> {
    non_empty(s.uid.clone())
        .or_else(|| non_empty(s.uid_alt.clone()))
        .or_else(|| non_empty(s.uuid.clone()))
}

/// (object type, object id) of a changed user.
fn user_object(u: User<'_>) -> Option<(Option<Text<'_>>, Text<'_>)> {
    let id = non_empty(u.email_addr)
        .or_else(|| non_empty(u.uid))
        .or_else(|| non_empty(u.name))?;
    Some((Some("User".into()), id))
}

/// (object type, object id) of a web resource or resource.
fn item_object(i: Item<'_>) -> Option<(Option<Text<'_>>, Text<'_>)> {
    let id = non_empty(i.url_string)
        .or_else(|| non_empty(i.uid))
        .or_else(|| non_empty(i.name))?;
    Some((non_empty(i.kind), id))
}

fn degrees(v: &Loose<'_>) -> Option<f64> {
    v.0.as_deref()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|d| d.is_finite())
}

/// A place when the location has both coordinates (not 0,0, which producers write for "unknown"), else its city
/// and country alone.
fn place<'a>(net: &mut Network<'a>, loc: Location<'a>) {
    let city = non_empty(loc.city);
    let country = non_empty(loc.country);
    let (lat, lon) = match (degrees(&loc.lat), degrees(&loc.long)) {
        (Some(lat), Some(lon)) => (Some(lat), Some(lon)),
        _ => match loc.coordinates.as_deref() {
            Some([lon, lat, ..]) => (degrees(lat), degrees(lon)),
            _ => (None, None),
        },
    };
    match (lat, lon) {
        (Some(lat), Some(lon))
            if lat.abs() <= 90.0 && lon.abs() <= 180.0 && !(lat == 0.0 && lon == 0.0) =>
        {
            net.geo = Some(Geo {
                lat,
                lon,
                city,
                country,
                accuracy_radius_km: None,
            });
        }
        _ => {
            net.city = city;
            net.country = country;
        }
    }
}

impl Normalizer for Ocsf {
    fn hint(&self, raw: &str) -> bool {
        self.hint.all_in(raw)
    }

    fn sniff(&self, p: &Probe) -> bool {
        p.has("class_uid") && p.has("metadata") && (p.has("time") || p.has("time_dt"))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let r: Raw<'a> = super::parse_json(NAME, raw)?;
        let class_uid = r
            .class_uid
            .ok_or_else(|| NormalizeError::invalid(NAME, "no class_uid"))?;
        let class = Class::of(class_uid).ok_or_else(|| {
            NormalizeError::invalid(
                NAME,
                format!(
                    "class_uid {class_uid} is not a class this format reads (3001 Account Change, \
                     3002 Authentication, 6001 Web Resources Activity, 6003 API Activity)"
                ),
            )
        })?;
        let time = r
            .time
            .0
            .as_deref()
            .and_then(|t| Ts::parse(t.trim()))
            .or_else(|| r.time_dt.0.as_deref().and_then(|t| Ts::parse(t.trim())))
            .ok_or_else(|| NormalizeError::invalid(NAME, "no parsable time or time_dt"))?;
        let activity = r.activity_id.or_else(|| {
            r.type_uid
                .filter(|t| t / 100 == u64::from(class_uid))
                .and_then(|t| u32::try_from(t % 100).ok())
        });
        let meta = r.metadata.unwrap_or_default();
        let vendor_name = meta.product.and_then(|p| non_empty(p.vendor_name));
        let vendor = vendor_name.as_deref().and_then(known_vendor);
        let cat = category(class, activity);
        let src = SourceInfo {
            family: family(vendor, class),
            vendor: vendor.unwrap_or("ocsf").into(),
            format: NAME.into(),
        };
        let id = non_empty(meta.uid).unwrap_or_else(|| super::fallback_id(ctx, 0));
        let mut ev = SessionEvent::new(src, id, time, cat);
        ev.outcome = outcome(r.status_id, r.status.0.as_deref(), r.action_id);

        // who acted, and (3001) whom it acted on
        let actor = r.actor.unwrap_or_default();
        let (who, target) = match class {
            Class::Authentication => (signing_in(r.user, actor.user), None),
            Class::AccountChange => (actor.user, r.user),
            Class::ApiActivity | Class::WebResources => (actor.user, None),
        };
        let mut user_token = None;
        let mut user_risk = None;
        if let Some(u) = who {
            user_token = non_empty(u.credential_uid.clone()).or_else(|| {
                u.programmatic_credentials
                    .iter()
                    .flatten()
                    .find_map(|c| non_empty(c.uid.clone()))
            });
            user_risk = risk_level(u.risk_level_id, u.risk_level.0.as_deref());
            ev.principal.kind = principal_kind(u.type_id, u.kind.as_deref());
            let name = non_empty(u.name);
            ev.principal.email = non_empty(u.email_addr)
                .filter(|e| e.contains('@'))
                .or_else(|| name.clone().filter(|n| n.contains('@')));
            ev.principal.id = non_empty(u.uid)
                .or_else(|| non_empty(u.uid_alt))
                .or_else(|| name.clone());
            ev.principal.display_name = non_empty(u.display_name)
                .or_else(|| non_empty(u.full_name))
                .or(name);
        }
        let app_uid = non_empty(actor.app_uid);
        let app_name = non_empty(actor.app_name);
        if ev.principal.id.is_none() && ev.principal.email.is_none() {
            if let Some(app) = app_uid.clone().or_else(|| app_name.clone()) {
                ev.principal.id = Some(app);
                ev.principal.kind = PrincipalKind::Service;
                ev.principal.display_name = app_name;
            }
        }
        ev.session.client_id = app_uid;

        let sessions = match class {
            Class::Authentication => [r.session, actor.session],
            Class::AccountChange | Class::ApiActivity | Class::WebResources => {
                [actor.session, r.session]
            }
        };
        ev.session.session_id = sessions.iter().flatten().find_map(session_key);
        let api = r.api.unwrap_or_default();
        ev.session.token_id = api
            .token
            .and_then(|t| non_empty(t.uid))
            .or_else(|| {
                sessions
                    .iter()
                    .flatten()
                    .find_map(|s| non_empty(s.credential_uid.clone()))
            })
            .or(user_token);

        if let Some(src) = r.src_endpoint {
            ev.network.ip = non_empty(src.ip);
            if let Some(asys) = src.autonomous_system {
                ev.network.asn = asys.number;
                ev.network.as_org = non_empty(asys.name);
            }
            if ev.network.as_org.is_none() {
                ev.network.as_org = non_empty(src.isp);
            }
            if let Some(loc) = src.location {
                place(&mut ev.network, loc);
            }
        }
        let (user_agent, request_bytes) = match r.http_request {
            Some(h) => (non_empty(h.user_agent), h.length),
            None => (None, None),
        };
        ev.network.user_agent = user_agent;
        ev.network.device_id = r.device.and_then(|d| non_empty(d.uid));

        ev.resource.app = api
            .service
            .and_then(|s| non_empty(s.name))
            .or_else(|| r.service.and_then(|s| non_empty(s.name)));
        ev.resource.server = r
            .dst_endpoint
            .and_then(|d| non_empty(d.hostname).or_else(|| non_empty(d.svc_name)));
        let object = match target {
            Some(t) => user_object(t),
            None => r
                .web_resources
                .into_iter()
                .flatten()
                .find_map(item_object)
                .or_else(|| r.resources.into_iter().flatten().find_map(item_object)),
        };
        if let Some((kind, id)) = object {
            ev.resource.object_type = kind;
            ev.resource.object_id = Some(id);
        }
        ev.resource.bytes = match cat {
            Category::DataWrite => request_bytes,
            Category::DataRead | Category::Export => r.http_response.and_then(|h| h.length),
            _ => None,
        };

        ev.risk = match risk_level(r.risk_level_id, r.risk_level.0.as_deref()) {
            Some(level) => Some(Risk {
                level,
                kind: non_empty(r.risk_details.0).unwrap_or_else(|| "risk_level".into()),
            }),
            None => user_risk.map(|level| Risk {
                level,
                kind: "user_risk_level".into(),
            }),
        };
        // a lockout or a password reset is set off by whoever types the user's name: their client is the
        // requester, not where the user was
        if class == Class::AccountChange && matches!(activity, Some(4 | 9)) {
            ev.location_untrusted = true;
        }
        ev.action = Some(
            non_empty(api.operation)
                .or_else(|| non_empty(meta.event_code.0))
                .unwrap_or_else(|| {
                    Text::from(format!(
                        "{}.{}",
                        class.name(),
                        activity_name(class, activity)
                    ))
                }),
        );

        let vouched = vendor_name.as_deref().is_some_and(|v| {
            self.vouched
                .iter()
                .any(|x| x.eq_ignore_ascii_case(v.trim()))
        });
        if vouched {
            ev.vouch_all();
            // the account a sign-in tried is not who acted unless the sign-in succeeded
            let tried = (class == Class::Authentication && ev.outcome != Outcome::Success)
                || (ev.outcome == Outcome::Failure
                    && matches!(ev.category, Category::Login | Category::Sso));
            if tried {
                ev.principal.vouched_by = None;
            }
        }
        let protocol = r
            .auth_protocol
            .0
            .filter(|p| !p.is_empty() && p.as_str() != "Unknown");
        let logon = r
            .logon_type
            .0
            .filter(|p| !p.is_empty() && p.as_str() != "Unknown");
        if r.is_mfa.is_some() || protocol.is_some() || logon.is_some() {
            let a = ev.auth_mut();
            a.mfa = r.is_mfa;
            a.method = protocol;
            a.login_type = logon;
        }
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::testutil::normalize_one;

    /// An Okta sign-in with MFA as Okta's OCSF 1.3 mapping writes it: `user` and `actor.user` name the same account.
    const OKTA_LOGON: &str = r#"{"activity_id":1,"activity_name":"Logon","category_uid":3,"class_uid":3002,"class_name":"Authentication","type_uid":300201,"time":1793606400000,"severity_id":1,"status_id":1,"status":"Success","is_mfa":true,"actor":{"user":{"uid":"00u1ocsf","name":"Alice Example","email_addr":"alice@example.com","type_id":1},"session":{"uid":"102sessA","is_mfa":true,"issuer":"https://example.okta.com"}},"user":{"uid":"00u1ocsf","email_addr":"alice@example.com","type_id":1,"type":"User"},"src_endpoint":{"ip":"198.51.100.23","location":{"city":"Chicago","country":"US","lat":41.88,"long":-87.63},"autonomous_system":{"number":64500,"name":"Example Broadband"}},"http_request":{"user_agent":"Mozilla/5.0 Chrome/127.0"},"device":{"uid":"guo1dev","type_id":0},"dst_endpoint":{"svc_name":"/idp/idx/authenticators/poll"},"metadata":{"uid":"ocsf-okta-1","version":"1.3.0","event_code":"user.session.start","product":{"name":"Okta System Log","vendor_name":"Okta"}}}"#;

    /// A CloudTrail S3 data event as Security Lake's OCSF 1.1 writes it.
    const CLOUDTRAIL: &str = r#"{"activity_id":2,"activity_name":"Read","category_uid":6,"class_uid":6003,"class_name":"API Activity","type_uid":600302,"time":1793607000000,"severity_id":1,"status_id":1,"status":"Success","actor":{"user":{"uid":"arn:aws:sts::123456789012:assumed-role/DataAnalyst/dana","uid_alt":"AROAEXAMPLEID:dana","name":"dana","type":"AssumedRole","credential_uid":"ASIAEXAMPLEKEY0001","account":{"uid":"123456789012","type_id":10}},"session":{"uid":"ct-sess-7f3a","is_mfa":true,"issuer":"arn:aws:iam::123456789012:role/DataAnalyst","created_time":1793606900000}},"api":{"operation":"GetObject","service":{"name":"s3.amazonaws.com"},"request":{"uid":"req-1"}},"resources":[{"uid":"arn:aws:s3:::example-bucket/q3.csv","type":"AWS::S3::Object"}],"src_endpoint":{"ip":"203.0.113.10"},"http_request":{"user_agent":"aws-cli/2.15.0"},"http_response":{"length":52430},"cloud":{"provider":"AWS","region":"us-east-1"},"metadata":{"uid":"ct-evt-1","version":"1.1.0","product":{"name":"CloudTrail","vendor_name":"AWS"},"profiles":["cloud","datetime"]}}"#;

    /// An Entra sign-in with a top-level session and the 1.1 `coordinates` pair.
    const ENTRA: &str = r#"{"activity_id":1,"class_uid":3002,"time":1793607600000,"status_id":1,"user":{"uid":"6f1e2d3c-oid","name":"carol@example.com","type_id":1},"session":{"uid":"8c2b-sess","uid_alt":"aad-sid-77"},"src_endpoint":{"ip":"192.0.2.41","location":{"city":"Berlin","country":"DE","coordinates":[13.4,52.52]}},"metadata":{"uid":"ocsf-entra-1","version":"1.1.0","product":{"name":"Entra ID","vendor_name":"Microsoft"}}}"#;

    /// `build` with a config, then one event.
    fn read<'a>(cfg: &str, raw: &'a str) -> SessionEvent<'a> {
        let n = build(toml::from_str(cfg).unwrap()).unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
        let mut out = Vec::new();
        n.normalize(raw, &ctx, &mut out).unwrap();
        out.remove(0)
    }

    #[test]
    fn an_okta_sign_in_relayed_as_ocsf_fills_principal_session_network_and_place() {
        let ev = &normalize_one(OKTA_LOGON)[0];
        assert_eq!(
            (
                ev.source.format.as_str(),
                ev.source.vendor.as_str(),
                ev.source.family
            ),
            ("ocsf", "okta", Family::Idp)
        );
        assert_eq!(ev.event_id, "ocsf-okta-1");
        assert_eq!(ev.event_time, Ts(1_793_606_400_000));
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::Login, Outcome::Success)
        );
        assert_eq!(ev.principal.id.as_deref(), Some("00u1ocsf"));
        assert_eq!(ev.principal.email.as_deref(), Some("alice@example.com"));
        assert_eq!(
            ev.principal.display_name.as_deref(),
            Some("Alice Example"),
            "completed from actor.user, the same account"
        );
        assert_eq!(ev.principal.kind, PrincipalKind::Human);
        assert_eq!(ev.session.session_id.as_deref(), Some("102sessA"));
        assert_eq!(ev.network.ip.as_deref(), Some("198.51.100.23"));
        assert_eq!(
            ev.network.user_agent.as_deref(),
            Some("Mozilla/5.0 Chrome/127.0")
        );
        assert_eq!(ev.network.asn, Some(64500));
        assert_eq!(ev.network.device_id.as_deref(), Some("guo1dev"));
        let g = ev.network.geo.as_ref().unwrap();
        assert_eq!(
            (g.lat, g.lon, g.city.as_deref()),
            (41.88, -87.63, Some("Chicago"))
        );
        assert_eq!(ev.action.as_deref(), Some("user.session.start"));
        assert_eq!(
            ev.resource.server.as_deref(),
            Some("/idp/idx/authenticators/poll")
        );
    }

    #[test]
    fn an_ocsf_event_vouches_for_nothing_unless_its_vendor_is_listed() {
        let ev = &normalize_one(OKTA_LOGON)[0];
        assert!(ev.principal.vouched_by.is_none());
        assert!(ev.session.vouched.is_empty());
        let ev = read(r#"vouched_vendors = ["Microsoft", "AWS"]"#, OKTA_LOGON);
        assert!(ev.principal.vouched_by.is_none());
        assert!(ev.session.vouched.is_empty());
        let ev = read(r#"vouched_vendors = ["OKTA"]"#, OKTA_LOGON);
        let v = ev.principal.vouched_by.as_ref().unwrap();
        assert_eq!((v.vendor.as_str(), v.family), ("okta", Family::Idp));
        assert!(ev.vouches(Keys::SESSION));
    }

    #[test]
    fn a_failed_sign_in_from_a_listed_vendor_does_not_vouch_for_the_account_tried() {
        let raw = OKTA_LOGON.replace(
            r#""status_id":1,"status":"Success""#,
            r#""status_id":2,"status":"Failure","status_detail":"INVALID_CREDENTIALS""#,
        );
        let ev = read(r#"vouched_vendors = ["Okta"]"#, &raw);
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::Login, Outcome::Failure)
        );
        assert_eq!(ev.principal.email.as_deref(), Some("alice@example.com"));
        assert!(ev.principal.vouched_by.is_none());
        // a sign-in whose result the event does not state is no proof of who acted either
        let raw = OKTA_LOGON.replace(r#""status_id":1,"status":"Success","#, "");
        let ev = read(r#"vouched_vendors = ["Okta"]"#, &raw);
        assert_eq!(ev.outcome, Outcome::Unknown);
        assert!(ev.principal.vouched_by.is_none());
    }

    #[test]
    fn a_security_lake_cloudtrail_call_reads_the_actor_session_and_access_key_id() {
        let ev = &normalize_one(CLOUDTRAIL)[0];
        assert_eq!(
            (ev.source.vendor.as_str(), ev.source.family),
            ("ocsf", Family::Saas)
        );
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::DataRead, Outcome::Success)
        );
        assert_eq!(
            ev.principal.id.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/DataAnalyst/dana")
        );
        assert_eq!(ev.principal.email, None);
        assert_eq!(
            ev.principal.kind,
            PrincipalKind::Unknown,
            "an assumed role may be anyone"
        );
        assert_eq!(ev.session.session_id.as_deref(), Some("ct-sess-7f3a"));
        assert_eq!(ev.session.token_id.as_deref(), Some("ASIAEXAMPLEKEY0001"));
        assert_eq!(ev.network.ip.as_deref(), Some("203.0.113.10"));
        assert_eq!(ev.network.user_agent.as_deref(), Some("aws-cli/2.15.0"));
        assert_eq!(ev.action.as_deref(), Some("GetObject"));
        assert_eq!(ev.resource.app.as_deref(), Some("s3.amazonaws.com"));
        assert_eq!(
            (
                ev.resource.object_type.as_deref(),
                ev.resource.object_id.as_deref()
            ),
            (
                Some("AWS::S3::Object"),
                Some("arn:aws:s3:::example-bucket/q3.csv")
            )
        );
        assert_eq!(ev.resource.bytes, Some(52430));
    }

    /// Also read here: `time_dt` alone, and numbers written as strings.
    #[test]
    fn an_account_change_is_the_actors_with_the_changed_user_as_object() {
        let raw = r#"{"activity_id":"11","class_uid":"3001","time_dt":"2026-11-02T09:15:30.500Z","status_id":"1","actor":{"user":{"uid":"00uadmin","email_addr":"it-admin@example.com","type_id":2},"session":{"uid":"102sessAdmin"}},"user":{"uid":"00u2ocsf","email_addr":"bob@example.com","type_id":1},"src_endpoint":{"ip":"192.0.2.15"},"metadata":{"uid":"ocsf-okta-3","version":"1.3.0","event_code":"user.mfa.factor.deactivate","product":{"name":"Okta System Log","vendor_name":"Okta"}}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            ev.event_time,
            Ts::parse("2026-11-02T09:15:30.500Z").unwrap()
        );
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::AdminChange, Outcome::Success)
        );
        assert_eq!(ev.principal.email.as_deref(), Some("it-admin@example.com"));
        assert_eq!(ev.principal.kind, PrincipalKind::Human);
        assert_eq!(ev.session.session_id.as_deref(), Some("102sessAdmin"));
        assert_eq!(
            (
                ev.resource.object_type.as_deref(),
                ev.resource.object_id.as_deref()
            ),
            (Some("User"), Some("bob@example.com"))
        );
        assert_eq!(ev.action.as_deref(), Some("user.mfa.factor.deactivate"));
        assert!(!ev.location_untrusted);
        // a lockout names the requester's client, not the user's
        let lock = raw.replace(r#""activity_id":"11""#, r#""activity_id":9"#);
        assert!(normalize_one(&lock)[0].location_untrusted);
    }

    /// Found in OCSF's own Okta example: `time` written in epoch seconds.
    #[test]
    fn epoch_seconds_in_time_are_told_apart_from_milliseconds() {
        let raw = OKTA_LOGON.replace("1793606400000", "1793606400");
        assert_eq!(normalize_one(&raw)[0].event_time, Ts(1_793_606_400_000));
        let raw = OKTA_LOGON.replace("1793606400000", "\"2026-11-02T08:00:00Z\"");
        assert_eq!(normalize_one(&raw)[0].event_time, Ts(1_793_606_400_000));
    }

    #[test]
    fn the_session_uid_wins_over_uid_alt_which_is_the_fallback() {
        let ev = &normalize_one(ENTRA)[0];
        assert_eq!(ev.session.session_id.as_deref(), Some("8c2b-sess"));
        let raw = ENTRA.replace(r#""uid":"8c2b-sess","#, "");
        assert_eq!(
            normalize_one(&raw)[0].session.session_id.as_deref(),
            Some("aad-sid-77")
        );
    }

    #[test]
    fn coordinates_are_longitude_first_and_a_lone_country_is_no_place() {
        let ev = &normalize_one(ENTRA)[0];
        assert_eq!(
            (ev.source.vendor.as_str(), ev.source.family),
            ("microsoft", Family::Idp)
        );
        assert_eq!(ev.principal.email.as_deref(), Some("carol@example.com"));
        assert_eq!(ev.action.as_deref(), Some("authentication.logon"));
        let g = ev.network.geo.as_ref().unwrap();
        assert_eq!(
            (g.lat, g.lon, g.country.as_deref()),
            (52.52, 13.4, Some("DE"))
        );
        let raw = ENTRA.replace(
            r#""location":{"city":"Berlin","country":"DE","coordinates":[13.4,52.52]}"#,
            r#""location":{"country":"NL"}"#,
        );
        let ev = &normalize_one(&raw)[0];
        assert!(ev.network.geo.is_none());
        assert_eq!(ev.network.country.as_deref(), Some("NL"));
    }

    #[test]
    fn a_sign_in_takes_nothing_from_an_actor_that_is_another_account() {
        let raw = ENTRA.replace(
            r#""user":{"#,
            r#""actor":{"user":{"uid":"admin-oid","name":"Admin Person","email_addr":"admin@example.com","credential_uid":"AKIAEXAMPLEADMIN"}},"user":{"#,
        );
        let ev = &normalize_one(&raw)[0];
        assert_eq!(ev.principal.id.as_deref(), Some("6f1e2d3c-oid"));
        assert_eq!(ev.principal.email.as_deref(), Some("carol@example.com"));
        assert_ne!(ev.principal.display_name.as_deref(), Some("Admin Person"));
        assert_eq!(ev.session.token_id, None);
    }

    #[test]
    fn a_web_resource_export_is_an_export_of_its_first_resource() {
        let raw = r#"{"activity_id":7,"class_uid":6001,"time":1793608200000,"status_id":1,"actor":{"user":{"uid":"1093847561","email_addr":"erin@example.com","type_id":1}},"web_resources":[{"uid":"1AbCdEf","name":"q3-forecast.xlsx","type":"file","url_string":"https://drive.example.com/file/d/1AbCdEf"}],"dst_endpoint":{"hostname":"drive.example.com"},"src_endpoint":{"ip":"198.51.100.61"},"http_response":{"length":"88120"},"metadata":{"uid":"ocsf-gdrive-1","version":"1.1.0","product":{"name":"Google Drive","vendor_name":"Google"}}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::Export);
        assert_eq!(
            (ev.source.vendor.as_str(), ev.source.family),
            ("google", Family::Saas)
        );
        assert_eq!(
            (
                ev.resource.object_type.as_deref(),
                ev.resource.object_id.as_deref()
            ),
            (
                Some("file"),
                Some("https://drive.example.com/file/d/1AbCdEf")
            )
        );
        assert_eq!(ev.resource.server.as_deref(), Some("drive.example.com"));
        assert_eq!(ev.resource.bytes, Some(88120));
        assert_eq!(ev.action.as_deref(), Some("web_resources_activity.export"));
    }

    #[test]
    fn the_sources_risk_level_becomes_its_verdict_and_critical_counts_as_high() {
        let raw = OKTA_LOGON.replace(
            r#""severity_id":1,"#,
            r#""severity_id":1,"risk_level_id":4,"risk_level":"Critical","risk_details":"Anomalous Device","#,
        );
        let ev = &normalize_one(&raw)[0];
        let r = ev.risk.as_ref().unwrap();
        assert_eq!(
            (r.level, r.kind.as_str()),
            (RiskLevel::High, "Anomalous Device")
        );
        assert_eq!(normalize_one(OKTA_LOGON)[0].risk, None);
    }

    #[test]
    fn classes_this_format_does_not_read_are_rejected_naming_the_class() {
        let raw = r#"{"class_uid":2004,"activity_id":1,"time":1793606400000,"metadata":{"uid":"f-1","product":{"vendor_name":"Quench"}}}"#;
        let n = crate::normalize::Normalize::new(&Default::default()).unwrap();
        let ctx = Context::new(Provenance::None, Ts(0));
        let e = n
            .normalize(raw.as_bytes(), None, &ctx, &mut Vec::new())
            .unwrap_err();
        assert_eq!(e.code(), "invalid");
        assert!(e.to_string().contains("2004"), "{e}");
    }

    #[test]
    fn an_empty_vouched_vendor_or_an_unknown_setting_is_rejected() {
        let e = build(toml::from_str(r#"vouched_vendors = [" "]"#).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("normalize.formats.ocsf.vouched_vendors"), "{e}");
        assert!(build(toml::from_str("vouched = true").unwrap()).is_err());
    }
}
