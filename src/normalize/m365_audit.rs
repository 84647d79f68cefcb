//! Microsoft 365 unified audit log (Office 365 Management Activity API records): AzureActiveDirectory logons,
//! SharePoint/OneDrive file access, downloads and sync, Exchange `MailItemsAccessed` and admin cmdlets, Copilot
//! interactions. Rows of the Log Analytics (Sentinel) `OfficeActivity` table (`TimeGenerated`, `OfficeWorkload`,
//! `OfficeId`, `Client_IPAddress`) are read the same way.
//!
//! In: one record. Out: one event. Principal: `UserId` (human for user types 0–3, service for system,
//! application and service-principal types); IP: `ClientIP`/`ActorIpAddress` without the port M365 appends;
//! session: `SessionId`, else the `SessionId` extended or device property of logons, else
//! `AppAccessContext.AADSessionId`; token id: `AppAccessContext.UniqueTokenId`; user agent from `UserAgent`,
//! `ClientInfoString` or the `UserAgent` extended property; a human actor's Entra object id (the GUID among
//! `Actor`'s ids) as `principal.directory_id`. State: none.

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = crate::event::M365_AUDIT;

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &[
    "Operation",
    "operation",
    "CreationTime",
    "creationtime",
    "Workload",
    "workload",
    "TimeGenerated",
    "OfficeWorkload",
];

/// `[normalize.formats.m365_audit]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct M365Config {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: M365Config = parse_config(NAME, t)?;
    Ok(Box::new(M365Audit))
}

pub struct M365Audit;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Raw<'a> {
    #[serde(borrow, alias = "OfficeId", alias = "id")]
    id: Text<'a>,
    #[serde(borrow, alias = "TimeGenerated", alias = "creationtime")]
    creation_time: Text<'a>,
    #[serde(borrow, alias = "operation")]
    operation: Text<'a>,
    #[serde(borrow, alias = "OfficeWorkload", alias = "workload")]
    workload: Text<'a>,
    #[serde(borrow, default, alias = "userid")]
    user_id: Option<Text<'a>>,
    #[serde(borrow, default, alias = "usertype")]
    user_type: Option<Text<'a>>,
    #[serde(
        borrow,
        default,
        rename = "ClientIP",
        alias = "Client_IPAddress",
        alias = "clientip"
    )]
    client_ip: Option<Text<'a>>,
    #[serde(borrow, default, alias = "actoripaddress")]
    actor_ip_address: Option<Text<'a>>,
    #[serde(borrow, default, alias = "resultstatus")]
    result_status: Option<Text<'a>>,
    #[serde(borrow, default, alias = "objectid")]
    object_id: Option<Text<'a>>,
    #[serde(borrow, default, alias = "sessionid")]
    session_id: Option<Text<'a>>,
    #[serde(borrow, default, alias = "appaccesscontext")]
    app_access_context: Option<AppAccess<'a>>,
    #[serde(borrow, default, alias = "useragent")]
    user_agent: Option<Text<'a>>,
    #[serde(borrow, default, alias = "clientinfostring")]
    client_info_string: Option<Text<'a>>,
    #[serde(borrow, default, alias = "applicationid")]
    application_id: Option<Text<'a>>,
    #[serde(borrow, default, alias = "appid")]
    app_id: Option<Text<'a>>,
    #[serde(borrow, default, alias = "sourcefilename")]
    source_file_name: Option<Text<'a>>,
    #[serde(borrow, default, alias = "extendedproperties")]
    extended_properties: Option<Vec<NameValue<'a>>>,
    #[serde(borrow, default, alias = "deviceproperties")]
    device_properties: Option<Vec<NameValue<'a>>>,
    /// Who acted, in several forms (`{"ID": object id | UPN | PUID, "Type": …}`); read leniently, since no stage
    /// needs it.
    #[serde(borrow, default, alias = "actor")]
    actor: Option<Actors<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Actors<'a> {
    #[serde(borrow)]
    List(Vec<ActorEntry<'a>>),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ActorEntry<'a> {
    #[serde(borrow)]
    Id(ActorId<'a>),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct ActorId<'a> {
    #[serde(borrow, default, rename = "ID", alias = "id", alias = "Id")]
    id: super::Loose<'a>,
    /// 0 for the Entra object id (5 a UPN, 3 a PUID).
    #[serde(
        default,
        rename = "Type",
        alias = "type",
        deserialize_with = "super::lenient_num"
    )]
    kind: Option<u32>,
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hex: the form of an Entra object id.
fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AppAccess<'a> {
    #[serde(borrow, default, rename = "AADSessionId", alias = "aadsessionid")]
    aad_session_id: Option<Text<'a>>,
    #[serde(borrow, default, alias = "uniquetokenid")]
    unique_token_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameValue<'a> {
    #[serde(borrow, alias = "name")]
    name: Text<'a>,
    #[serde(borrow, default, alias = "value")]
    value: Option<Text<'a>>,
}

/// `1.2.3.4:5678` → `1.2.3.4`, `[2001:db8::1]:443` → `2001:db8::1`; bare IPv6 stays as it is.
fn strip_port(t: Text<'_>) -> Text<'_> {
    let s = t.as_str();
    let cut = if let Some(rest) = s.strip_prefix('[') {
        rest.split(']').next().map(|h| (1, h.len()))
    } else if s.matches(':').count() == 1 {
        s.split(':').next().map(|h| (0, h.len()))
    } else {
        None
    };
    match (cut, &t) {
        (Some((a, n)), Text::Borrowed(b)) => Text::Borrowed(&b[a..a + n]),
        (Some((a, n)), _) => Text::from(s[a..a + n].to_string()),
        (None, _) => t,
    }
}

/// The category of an audit operation named alone (Defender's `ActionType` repeats the operation).
pub(crate) fn category_of_operation(op: &str) -> Category {
    category("", op)
}

fn category(workload: &str, op: &str) -> Category {
    use Category::*;
    match op {
        "UserLoggedIn" | "UserLoginFailed" => Login,
        "SignInEvent" => Sso,
        "FileDownloaded"
        | "FileSyncDownloadedFull"
        | "FileSyncDownloadedPartial"
        | "SearchExportDownloaded" => Export,
        "AnonymousLinkCreated"
        | "SharingInvitationCreated"
        | "CompanyLinkCreated"
        | "SharingSet" => Export,
        "FileAccessed"
        | "FilePreviewed"
        | "FileAccessedExtended"
        | "MailItemsAccessed"
        | "PageViewed" => DataRead,
        "FileUploaded"
        | "FileModified"
        | "FileModifiedExtended"
        | "FileSyncUploadedFull"
        | "FileDeleted"
        | "Send"
        | "SendAs"
        | "SendOnBehalf"
        | "Create"
        | "Update"
        | "MoveToDeletedItems"
        | "HardDelete"
        | "SoftDelete" => DataWrite,
        "New-InboxRule" | "Set-InboxRule" | "UpdateInboxRules" | "Set-Mailbox" => AdminChange,
        op if op.starts_with("AIInteraction") || op == "CopilotInteraction" => ModelCall,
        op if workload == "Exchange" && op.contains('-') => AdminChange,
        op if op.ends_with('.') => AdminChange, // Entra directory operations: "Add member to role."
        _ => Other,
    }
}

impl Normalizer for M365Audit {
    fn authority(&self) -> super::Authority {
        super::Authority::OwnUsers
    }

    fn sniff(&self, p: &Probe) -> bool {
        p.has_any(&["Operation", "operation"])
            && ((p.has_any(&["CreationTime", "creationtime"])
                && p.has_any(&["Workload", "workload"]))
                || (p.has("TimeGenerated") && p.has("OfficeWorkload")))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        _ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let r: Raw<'a> = super::parse_json(NAME, raw)?;
        let time = Ts::parse(&r.creation_time).ok_or_else(|| {
            NormalizeError::invalid(
                NAME,
                format!(
                    "CreationTime {:?} is not a timestamp",
                    r.creation_time.as_str()
                ),
            )
        })?;
        let cat = category(&r.workload, &r.operation);
        let src = SourceInfo {
            family: Family::Saas,
            vendor: crate::event::Vendor::Microsoft.as_str().into(),
            format: NAME.into(),
        };
        let mut ev = SessionEvent::new(src, r.id, time, cat);
        ev.outcome = match (r.operation.as_str(), r.result_status.as_deref()) {
            ("UserLoginFailed", _) => Outcome::Failure,
            (_, Some("Succeeded" | "Success" | "True" | "PartiallySucceeded")) => Outcome::Success,
            (_, Some("Failed" | "False")) => Outcome::Failure,
            (_, _) if cat != Category::Other => Outcome::Success,
            _ => Outcome::Unknown,
        };
        ev.principal.kind = match r.user_type.as_deref() {
            Some("0" | "1" | "2" | "3" | "Regular" | "Reserved" | "Admin" | "DcAdmin") | None => {
                PrincipalKind::Human
            }
            Some(_) => PrincipalKind::Service,
        };
        if let Some(u) = r.user_id.filter(|u| !u.is_empty()) {
            if u.contains('@') {
                ev.principal.email = Some(u.clone());
            }
            ev.principal.id = Some(u);
        }
        if ev.principal.kind == PrincipalKind::Human {
            // the acting user's Entra object id, which Entra's own logs name them by
            let ids: Vec<(Option<u32>, Text<'a>)> = match r.actor {
                Some(Actors::List(v)) => v
                    .into_iter()
                    .filter_map(|e| match e {
                        ActorEntry::Id(a) => a.id.0.filter(|id| is_guid(id)).map(|id| (a.kind, id)),
                        ActorEntry::Other(_) => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            // the id typed as the object id, else the only GUID (several untyped GUIDs may include an app's)
            ev.principal.directory_id = match ids.iter().find(|(k, _)| *k == Some(0)) {
                Some((_, id)) => Some(id.clone()),
                None if ids.len() == 1 => ids.into_iter().next().map(|(_, id)| id),
                None => None,
            };
        }
        ev.network.ip = r
            .client_ip
            .or(r.actor_ip_address)
            .filter(|s| !s.is_empty())
            .map(strip_port);
        let mut ua = r.user_agent.or(r.client_info_string);
        let mut session = r.session_id;
        let mut keep_signed_in = None;
        for p in r
            .extended_properties
            .iter()
            .flatten()
            .chain(r.device_properties.iter().flatten())
        {
            match p.name.as_str() {
                "UserAgent" if ua.is_none() => ua = p.value.clone(),
                "SessionId" if session.is_none() => session = p.value.clone(),
                "KeepMeSignedIn" => {
                    keep_signed_in = p.value.as_deref().and_then(|v| match v {
                        "True" | "true" => Some(true),
                        "False" | "false" => Some(false),
                        _ => None,
                    })
                }
                _ => {}
            }
        }
        if let Some(ctx) = r.app_access_context {
            session = session.or(ctx.aad_session_id);
            ev.session.token_id = ctx.unique_token_id;
        }
        if keep_signed_in.is_some() {
            ev.auth_mut().keep_signed_in = keep_signed_in;
        }
        ev.network.user_agent = ua.filter(|s| !s.is_empty());
        ev.session.session_id = session.filter(|s| !s.is_empty());
        ev.session.client_id = r.application_id.or(r.app_id).filter(|s| !s.is_empty());
        ev.resource.app = Some(r.workload);
        ev.resource.object_id = r.source_file_name.or(r.object_id).filter(|s| !s.is_empty());
        if cat == Category::Export {
            // a download goes to the user's device; the site is where it came from, not where it went
            ev.resource.destination = Some(Text::Borrowed("device"));
        }
        ev.action = Some(r.operation);
        out.push(ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Found on a SIEM's export: every key lowercased (`creationtime`, `operation`, `clientip`).
    #[test]
    fn records_whose_keys_a_pipeline_lowercased_are_read() {
        let raw = r#"{"creationtime":"2026-11-02T08:00:00","id":"m-9","operation":"MailItemsAccessed","recordtype":50,"usertype":0,"workload":"Exchange","clientip":"203.0.113.5:5123","userid":"bob@contoso.com","clientinfostring":"Client=MSExchangeRPC","appaccesscontext":{"aadsessionid":"aad-9","uniquetokenid":"uti-3"}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.event_time, Ts::parse("2026-11-02T08:00:00Z").unwrap());
        assert_eq!(ev.network.ip.as_deref(), Some("203.0.113.5"));
        assert_eq!(ev.principal.email.as_deref(), Some("bob@contoso.com"));
        assert_eq!(ev.session.session_id.as_deref(), Some("aad-9"));
        assert_eq!(
            ev.network.user_agent.as_deref(),
            Some("Client=MSExchangeRPC")
        );
    }

    use super::*;
    use crate::normalize::testutil::normalize_one;

    #[test]
    fn aad_logon_with_port_in_client_ip_and_user_agent_in_extended_properties() {
        let raw = r#"{"CreationTime":"2026-11-02T08:00:00","Id":"m-1","Operation":"UserLoggedIn","RecordType":15,"ResultStatus":"Succeeded","UserType":0,"Workload":"AzureActiveDirectory","ClientIP":"[2001:db8::7]:51234","UserId":"alice@contoso.com","ExtendedProperties":[{"Name":"UserAgent","Value":"Mozilla/5.0 Edge"}],"DeviceProperties":[{"Name":"SessionId","Value":"sess-42"}]}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::Login, Outcome::Success)
        );
        assert_eq!(ev.network.ip.as_deref(), Some("2001:db8::7"));
        assert_eq!(ev.network.user_agent.as_deref(), Some("Mozilla/5.0 Edge"));
        assert_eq!(ev.session.session_id.as_deref(), Some("sess-42"));
        assert_eq!(ev.principal.email.as_deref(), Some("alice@contoso.com"));
    }

    #[test]
    fn sharepoint_download_is_an_export_with_its_session() {
        let raw = r#"{"CreationTime":"2026-11-02T08:00:00","Id":"m-2","Operation":"FileDownloaded","RecordType":6,"UserType":0,"Workload":"SharePoint","ClientIP":"203.0.113.5","UserId":"bob@contoso.com","SourceFileName":"q3-forecast.xlsx","SiteUrl":"https://contoso.sharepoint.com/sites/finance/","AppAccessContext":{"AADSessionId":"aad-9","UniqueTokenId":"uti-3"}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::Export);
        assert_eq!(ev.session.session_id.as_deref(), Some("aad-9"));
        assert_eq!(ev.session.token_id.as_deref(), Some("uti-3"));
        assert_eq!(ev.resource.object_id.as_deref(), Some("q3-forecast.xlsx"));
        assert_eq!(ev.network.ip.as_deref(), Some("203.0.113.5"));
    }

    /// Found by an independent evaluation: quarter-end downloads took the source site for a new destination.
    #[test]
    fn a_download_goes_to_the_device_not_to_the_site_it_came_from() {
        let raw = r#"{"CreationTime":"2026-11-02T08:00:00","Id":"m-3","Operation":"FileDownloaded","RecordType":6,"UserType":0,"Workload":"SharePoint","ClientIP":"203.0.113.5","UserId":"bob@contoso.com","SourceFileName":"q4.xlsx","SiteUrl":"https://contoso.sharepoint.com/sites/finance/"}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.resource.destination.as_deref(), Some("device"));
    }

    #[test]
    fn ports_are_stripped_from_ipv4_and_kept_off_bare_ipv6() {
        assert_eq!(strip_port("1.2.3.4:80".into()), "1.2.3.4");
        assert_eq!(strip_port("2001:db8::1".into()), "2001:db8::1");
        assert_eq!(strip_port("[::1]:9".into()), "::1");
    }

    /// Issue 13's dropped facts: the user chose to stay signed in.
    #[test]
    fn a_logon_keeps_keep_me_signed_in() {
        let raw = r#"{"CreationTime":"2026-11-02T08:00:00","Id":"k-1","Operation":"UserLoggedIn","Workload":"AzureActiveDirectory","UserId":"bob@example.com","ClientIP":"198.51.100.7","ResultStatus":"Success","ExtendedProperties":[{"Name":"KeepMeSignedIn","Value":"True"},{"Name":"UserAgent","Value":"Mozilla/5.0"}]}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            ev.auth.as_deref().and_then(|a| a.keep_signed_in),
            Some(true)
        );
    }

    /// Issue 13's dropped facts: M365 names a user by UPN, Entra's sign-ins by object id; the record's `Actor`
    /// carries both, and the object id is kept.
    #[test]
    fn a_users_entra_object_id_is_kept_from_the_actor_ids() {
        let raw = r#"{"CreationTime":"2026-11-02T08:00:00","Id":"m-7","Operation":"UserLoggedIn","RecordType":15,"ResultStatus":"Success","UserType":0,"Workload":"AzureActiveDirectory","ClientIP":"203.0.113.9","UserId":"asr@contoso.com","Actor":[{"ID":"asr@contoso.com","Type":5},{"ID":"755e500a-6c03-46b0-b53b-282f23374e3b","Type":0},{"ID":"1003200096971F55","Type":3}]}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            ev.principal.directory_id.as_deref(),
            Some("755e500a-6c03-46b0-b53b-282f23374e3b")
        );
        assert_eq!(ev.principal.key(), Some("asr@contoso.com"));
        // an application's ids are not a person's
        let app = raw.replace(r#""UserType":0"#, r#""UserType":5"#);
        assert_eq!(normalize_one(&app)[0].principal.directory_id, None);
        // found by the outside review: an exporter's string in place of the list costs nothing but the id
        let text = raw.replace(
            r#"[{"ID":"asr@contoso.com","Type":5},{"ID":"755e500a-6c03-46b0-b53b-282f23374e3b","Type":0},{"ID":"1003200096971F55","Type":3}]"#,
            r#""asr@contoso.com""#,
        );
        let ev = &normalize_one(&text)[0];
        assert_eq!(ev.principal.directory_id, None);
        assert_eq!(ev.principal.key(), Some("asr@contoso.com"));
        assert!(!is_guid("755e500a-6c03-46b0-b53b-282f23374e3"));
        assert!(!is_guid("755e500a-6c03-46b0-b53b_282f23374e3b"));
    }
}
