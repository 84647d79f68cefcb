//! Microsoft Graph activity logs: every request an app or user made to graph.microsoft.com, as Azure Monitor's
//! diagnostic export writes them (`{"category": "MicrosoftGraphActivityLogs", "properties": {...}}`, camelCase) or
//! as the Log Analytics / Sentinel table `MicrosoftGraphActivityLogs` stores them (PascalCase columns); and the
//! legacy Azure AD Graph's (graph.windows.net, still used by old tooling and by attackers' reconnaissance kits):
//! category `AzureADGraphActivityLogs`, table `AADGraphActivityLogs`, whose rows name the method `httpMethod`,
//! the status `httpStatusCode` and the address `callerIpAddress`.
//!
//! In: one row. Out: one event. State: none.
//!
//! Token: `signInActivityId`, which is the sign-in's `uniqueTokenIdentifier`, so a Graph request joins the
//! Entra sign-in that issued its token; session: `sessionId`; principal: `userId` (the Entra object id), else
//! `servicePrincipalId` (a service); client: `appId`; address `ipAddress`; user agent `userAgent`; device
//! `deviceId`; time `timeGenerated` (else the record's `time`). A GET is a data read and any other method a write;
//! the request URI is the object; failure from status 400 up; the token's scopes and roles go to `auth.scopes`.
//! Microsoft writes these rows about its own tokens, so they vouch for their identities.

use super::{parse_config, ConfigError, Context, Loose, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "entra_graph";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &["properties", "category", "RequestUri", "SignInActivityId"];

/// `[normalize.formats.entra_graph]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: GraphConfig = parse_config(NAME, t)?;
    Ok(Box::new(EntraGraph))
}

pub struct EntraGraph;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    #[serde(borrow, default, alias = "TimeGenerated")]
    time_generated: Loose<'a>,
    #[serde(borrow, default, alias = "RequestId")]
    request_id: Loose<'a>,
    #[serde(borrow, default, alias = "RequestMethod", alias = "httpMethod")]
    request_method: Loose<'a>,
    #[serde(borrow, default, alias = "RequestUri")]
    request_uri: Loose<'a>,
    #[serde(
        default,
        alias = "ResponseStatusCode",
        alias = "httpStatusCode",
        deserialize_with = "super::lenient_num"
    )]
    response_status_code: Option<u16>,
    #[serde(
        default,
        alias = "ResponseSizeBytes",
        deserialize_with = "super::lenient_num"
    )]
    response_size_bytes: Option<u64>,
    #[serde(borrow, default, alias = "SignInActivityId")]
    sign_in_activity_id: Loose<'a>,
    #[serde(borrow, default, alias = "SessionId")]
    session_id: Loose<'a>,
    #[serde(borrow, default, alias = "IPAddress", alias = "IpAddress")]
    ip_address: Loose<'a>,
    /// The Azure AD Graph's name for the address.
    #[serde(borrow, default, alias = "CallerIpAddress")]
    caller_ip_address: Loose<'a>,
    #[serde(borrow, default, alias = "UserAgent")]
    user_agent: Loose<'a>,
    #[serde(borrow, default, alias = "UserId")]
    user_id: Loose<'a>,
    #[serde(borrow, default, alias = "ServicePrincipalId")]
    service_principal_id: Loose<'a>,
    #[serde(borrow, default, alias = "AppId")]
    app_id: Loose<'a>,
    #[serde(borrow, default, alias = "DeviceId")]
    device_id: Loose<'a>,
    #[serde(borrow, default, alias = "Scopes")]
    scopes: Loose<'a>,
    #[serde(borrow, default, alias = "Roles")]
    roles: Loose<'a>,
    /// Log Analytics' table name (`AADGraphActivityLogs` …).
    #[serde(borrow, default, rename = "Type")]
    table: Loose<'a>,
}

/// The Azure Monitor category and Log Analytics table of the legacy Azure AD Graph's activity.
const AAD_GRAPH: [&str; 2] = ["AzureADGraphActivityLogs", "AADGraphActivityLogs"];

fn some(l: Loose<'_>) -> Option<Text<'_>> {
    l.non_empty()
}

/// Scopes and roles as the token lists them (space- or comma-separated).
fn words<'a, 'b>(l: &'b Loose<'a>) -> impl Iterator<Item = Text<'a>> + 'b {
    l.0.iter()
        .flat_map(|t| t.split([' ', ',']))
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| Text::from(w.to_string()))
}

impl Normalizer for EntraGraph {
    fn authority(&self) -> super::Authority {
        super::Authority::OwnUsers
    }

    fn sniff(&self, p: &Probe) -> bool {
        (p.has("properties")
            && p.category
                .as_deref()
                .is_some_and(|c| c == "MicrosoftGraphActivityLogs" || c == AAD_GRAPH[0]))
            || (p.has("RequestUri") && p.has("SignInActivityId"))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let (row_text, record_time, category) = super::azure_row(raw);
        let r: Row<'a> = super::parse_json(NAME, row_text)?;
        let legacy = category
            .as_deref()
            .or(r.table.0.as_deref())
            .is_some_and(|c| AAD_GRAPH.contains(&c))
            || r.request_uri.0.as_deref().is_some_and(|u| {
                // the host, not anywhere in the query (`$filter=…graph.windows.net…` on graph.microsoft.com)
                let rest = u.strip_prefix("https://").unwrap_or(u);
                rest.split(['/', '?']).next() == Some("graph.windows.net")
            });
        let time = r
            .time_generated
            .0
            .as_deref()
            .or(record_time.as_deref())
            .and_then(super::ms_or_timestamp)
            .ok_or_else(|| NormalizeError::invalid(NAME, "no parsable timeGenerated or time"))?;
        let method = some(r.request_method);
        let cat = match method.as_deref() {
            Some(m) if m.eq_ignore_ascii_case("GET") || m.eq_ignore_ascii_case("HEAD") => {
                Category::DataRead
            }
            Some(_) => Category::DataWrite,
            None => Category::ApiRequest,
        };
        let src = SourceInfo {
            family: Family::Saas,
            vendor: crate::event::Vendor::Microsoft.as_str().into(),
            format: NAME.into(),
        };
        let id = some(r.request_id).unwrap_or_else(|| super::fallback_id(ctx, 0));
        let mut ev = SessionEvent::new(src, id, time, cat);
        ev.outcome = match r.response_status_code {
            Some(s) if s >= 400 => Outcome::Failure,
            Some(_) => Outcome::Success,
            None => Outcome::Unknown,
        };
        match (some(r.user_id), some(r.service_principal_id)) {
            (Some(u), _) => {
                ev.principal.id = Some(u);
                ev.principal.kind = PrincipalKind::Human;
            }
            (None, Some(sp)) => {
                ev.principal.id = Some(sp);
                ev.principal.kind = PrincipalKind::Service;
            }
            (None, None) => {}
        }
        ev.session.token_id = some(r.sign_in_activity_id);
        ev.session.session_id = some(r.session_id);
        ev.session.client_id = some(r.app_id);
        ev.network.ip = some(r.ip_address).or(some(r.caller_ip_address));
        ev.network.user_agent = some(r.user_agent);
        ev.network.device_id = some(r.device_id);
        if legacy {
            ev.resource.app = Some(Text::Borrowed("azure-ad-graph"));
            ev.resource.server = Some(Text::Borrowed("graph.windows.net"));
        } else {
            ev.resource.app = Some(Text::Borrowed("microsoft-graph"));
            ev.resource.server = Some(Text::Borrowed("graph.microsoft.com"));
        }
        ev.resource.object_id = some(r.request_uri);
        ev.resource.bytes = r.response_size_bytes;
        let scopes: Vec<Text<'a>> = words(&r.scopes).chain(words(&r.roles)).collect();
        if !scopes.is_empty() {
            ev.auth_mut().scopes = scopes;
        }
        ev.action = method;
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::testutil::normalize_one;

    const EXPORTED: &str = r#"{"time":"2026-11-02T09:00:01.0000000Z","resourceId":"/TENANTS/T/PROVIDERS/MICROSOFT.AADIAM","operationName":"Microsoft Graph Activity","operationVersion":"beta","category":"MicrosoftGraphActivityLogs","resultSignature":"200","durationMs":"84","callerIpAddress":"198.51.100.7","correlationId":"c-1","level":"Informational","location":"West Europe","properties":{"timeGenerated":"2026-11-02T09:00:00.5000000Z","location":"West Europe","requestId":"g-1","operationId":"g-1","clientRequestId":"g-1","apiVersion":"v1.0","requestMethod":"GET","responseStatusCode":200,"tenantId":"t","durationMs":84,"responseSizeBytes":53110,"signInActivityId":"tok-7Qx","roles":"","tokenIssuedAt":"2026-11-02T08:55:00Z","appId":"14d82eec-204b-4c2f-b7e8-296a70dab67e","userId":"0b6c-oid","servicePrincipalId":"","scopes":"Mail.Read User.Read","identityProvider":"https://sts.windows.net/t/","clientAuthMethod":0,"wids":"","ipAddress":"198.51.100.7","userAgent":"python-requests/2.32","requestUri":"https://graph.microsoft.com/v1.0/me/messages?$top=999","sessionId":"sess-a1","deviceId":""}}"#;

    #[test]
    fn an_exported_request_joins_its_sign_in_by_token_and_session() {
        let ev = &normalize_one(EXPORTED)[0];
        assert_eq!(ev.source.format.as_str(), NAME);
        assert_eq!(ev.category, Category::DataRead);
        assert_eq!(ev.outcome, Outcome::Success);
        assert_eq!(ev.principal.id.as_deref(), Some("0b6c-oid"));
        assert_eq!(ev.session.token_id.as_deref(), Some("tok-7Qx"));
        assert_eq!(ev.session.session_id.as_deref(), Some("sess-a1"));
        assert_eq!(
            ev.event_time,
            Ts::parse("2026-11-02T09:00:00.500Z").unwrap()
        );
        assert_eq!(ev.resource.bytes, Some(53110));
        let scopes: Vec<&str> = ev
            .auth
            .as_deref()
            .unwrap()
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(scopes, ["Mail.Read", "User.Read"]);
        assert!(ev.principal.vouched_by.is_some() && ev.vouches(Keys::TOKEN));
    }

    #[test]
    fn a_log_analytics_row_of_a_service_principal_is_read() {
        let raw = r#"{"TimeGenerated":"2026-11-02T09:00:00Z","RequestId":"g-2","RequestMethod":"POST","RequestUri":"https://graph.microsoft.com/v1.0/users/x/sendMail","ResponseStatusCode":403,"SignInActivityId":"tok-sp","IPAddress":"203.0.113.4","UserAgent":"azurehound/2.1","UserId":"","ServicePrincipalId":"sp-9","AppId":"app-9","Roles":"Mail.Send","Type":"MicrosoftGraphActivityLogs"}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::DataWrite);
        assert_eq!(ev.outcome, Outcome::Failure);
        assert_eq!(
            (ev.principal.id.as_deref(), ev.principal.kind),
            (Some("sp-9"), PrincipalKind::Service)
        );
        assert_eq!(ev.session.token_id.as_deref(), Some("tok-sp"));
    }

    /// Issue 13: the legacy Azure AD Graph's activity, as the diagnostic export writes it (no record time, the
    /// method and status under other names, the address as `callerIpAddress`, a size of -1).
    #[test]
    fn an_azure_ad_graph_request_is_read_as_a_graph_request_to_the_legacy_endpoint() {
        let raw = r#"{"category":"AzureADGraphActivityLogs","location":"westeurope","operationName":"AAD Graph Activity","tenantId":"t","properties":{"actorType":"User","apiVersion":"1.6","appId":"1b730954-1685-4b74-9bfd-dac224a7b894","callerIpAddress":"203.0.113.61","clientAuthMethod":0,"deviceId":"","durationMs":41,"httpMethod":"GET","httpStatusCode":200,"issuedAt":"11/2/2026 9:00:00 AM","requestId":"aad-1","requestUri":"/v2/t/users","responseSizeBytes":-1,"roles":"","scopes":"User.Read.All","servicePrincipalId":"","sessionId":"sess-a1","signInActivityId":"tok-7Qx==","timeGenerated":"2026-11-02T09:00:02.1234567Z","userAgent":"roadrecon/1.4","userId":"0b6c-oid"}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.source.format.as_str(), NAME);
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::DataRead, Outcome::Success)
        );
        assert_eq!(ev.network.ip.as_deref(), Some("203.0.113.61"));
        assert_eq!(ev.resource.server.as_deref(), Some("graph.windows.net"));
        assert_eq!(ev.resource.bytes, None);
        assert_eq!(ev.session.token_id.as_deref(), Some("tok-7Qx=="));
        assert_eq!(ev.session.session_id.as_deref(), Some("sess-a1"));
        assert_eq!(ev.principal.id.as_deref(), Some("0b6c-oid"));
        assert_eq!(
            ev.event_time,
            Ts::parse("2026-11-02T09:00:02.123Z").unwrap()
        );
        // the Log Analytics table
        let row = r#"{"TimeGenerated":"2026-11-02T09:00:02Z","RequestId":"aad-2","RequestMethod":"PATCH","RequestUri":"https://graph.windows.net/t/users/x","ResponseStatusCode":403,"SignInActivityId":"tok-2","CallerIpAddress":"203.0.113.62","UserId":"u-2","Type":"AADGraphActivityLogs"}"#;
        let ev = &normalize_one(row)[0];
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::DataWrite, Outcome::Failure)
        );
        assert_eq!(ev.network.ip.as_deref(), Some("203.0.113.62"));
        assert_eq!(ev.resource.app.as_deref(), Some("azure-ad-graph"));
        // found by the outside review: the legacy endpoint is the host, not a word in the query
        let query = EXPORTED.replace(
            "me/messages?$top=999",
            "users?$filter=startswith(mail,'graph.windows.net')",
        );
        let ev = &normalize_one(&query)[0];
        assert_eq!(ev.resource.app.as_deref(), Some("microsoft-graph"));
    }
}
