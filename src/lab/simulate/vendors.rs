//! Raw records in each vendor's own shape, and their delivery.
//!
//! In: what happened (who, when, from which network and client). Out: one JSON line per record in the vendor's
//! published shape (Okta System Log, Entra ID sign-in as Azure Monitor exports it, the M365 unified audit log,
//! Google Workspace Reports, Salesforce event monitoring, Kong http-log, OTLP/JSON GenAI spans, an MCP proxy's
//! log, the agent platform's native configuration audit), each stamped with when it *arrives*: the event time
//! plus that source's delivery lag (Okta seconds to a minute, Kong about a second, OTel batched every 5 s, Entra
//! 2–10 min, Google minutes to hours, M365 30–90 min). State: the lines written so far.

use super::world::{City, Site};
use super::Rng;
use crate::event::Ts;
use serde_json::{json, Value};

pub const S: i64 = 1000;
pub const MIN: i64 = 60 * S;
pub const H: i64 = 60 * MIN;

pub fn iso(ms: i64) -> String {
    Ts(ms).to_rfc3339()
}

/// The M365 unified audit log writes its times without a zone.
fn iso_m365(ms: i64) -> String {
    let s = iso(ms);
    s.trim_end_matches('Z').to_string()
}

/// Where a request comes from, as the vendors that locate it would report it.
#[derive(Clone, Debug)]
pub struct Net {
    pub ip: String,
    pub asn: u32,
    pub org: &'static str,
    pub lat: f64,
    pub lon: f64,
    pub city: &'static str,
    pub country: &'static str,
    pub cc: &'static str,
    /// Okta's `securityContext.isProxy` (an anonymizing proxy).
    pub proxy: bool,
}

impl Net {
    pub fn at_city(ip: String, c: &City, asn: u32, org: &'static str, at: (f64, f64)) -> Net {
        Net {
            ip,
            asn,
            org,
            lat: at.0,
            lon: at.1,
            city: c.name,
            country: c.country,
            cc: c.cc,
            proxy: false,
        }
    }
    pub fn at_site(ip: String, s: &Site) -> Net {
        Net {
            ip,
            asn: s.asn,
            org: s.org,
            lat: s.lat,
            lon: s.lon,
            city: s.name,
            country: s.country,
            cc: s.cc,
            proxy: false,
        }
    }
}

/// A person as the identity systems know them.
pub struct Who<'a> {
    pub email: &'a str,
    pub okta_id: &'a str,
    /// Entra object id.
    pub oid: &'a str,
    pub google_id: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    Okta,
    Entra,
    M365,
    Google,
    Salesforce,
    Kong,
    Otel,
    Mcp,
    Native,
}

impl Src {
    /// Delivery lag of one record, ms.
    fn lag(self, rng: &mut Rng, t: i64) -> i64 {
        match self {
            Src::Okta => rng.range(2 * S, 60 * S),
            Src::Kong => rng.range(300, 1500),
            // batched: the exporter flushes every 5 s
            Src::Otel => (5 * S - t.rem_euclid(5 * S)) + rng.range(200, 1200),
            Src::Mcp => rng.range(S, 3 * S),
            Src::Entra => rng.range(2 * MIN, 10 * MIN),
            Src::Google => {
                if rng.chance(0.7) {
                    rng.range(3 * MIN, 40 * MIN)
                } else {
                    rng.range(40 * MIN, 3 * H)
                }
            }
            Src::M365 => rng.range(30 * MIN, 90 * MIN),
            Src::Salesforce => rng.range(30 * S, 5 * MIN),
            Src::Native => rng.range(5 * S, 30 * S),
        }
    }
}

/// The lines written: (arrival, or event time with `by_event_time`; sequence; line).
pub struct Out {
    pub lines: Vec<(i64, u64, String)>,
    /// Order the lines by event time instead of arrival.
    pub by_event_time: bool,
    seq: u64,
    pub rng: Rng,
    /// Entra ID Protection's verdict (level, detection) for the next Entra sign-in written.
    pub next_entra_risk: Option<(&'static str, &'static str)>,
}

impl Out {
    pub fn new(seed: u64) -> Out {
        Out {
            lines: Vec::new(),
            by_event_time: false,
            seq: 0,
            rng: Rng(seed ^ 0xD311_7E47),
            next_entra_risk: None,
        }
    }

    /// Write a record that happened at `t`; returns when it arrives.
    pub fn push(&mut self, src: Src, t: i64, v: Value) -> i64 {
        self.seq += 1;
        let arrival = t + src.lag(&mut self.rng, t);
        let at = if self.by_event_time { t } else { arrival };
        self.lines.push((at, self.seq, v.to_string()));
        arrival
    }

    pub fn uid(&mut self) -> u64 {
        self.rng.u64()
    }

    /// Okta System Log.
    #[allow(clippy::too_many_arguments)]
    pub fn okta(
        &mut self,
        t: i64,
        etype: &str,
        who: &Who<'_>,
        net: &Net,
        session: &str,
        ua: &str,
        device: Option<&str>,
        app: &str,
    ) -> i64 {
        let uuid = format!("{:032x}", self.uid() as u128 * 31 + t as u128);
        self.push(Src::Okta, t, json!({
            "uuid": uuid,
            "published": iso(t),
            "eventType": etype,
            "version": "0",
            "severity": "INFO",
            "displayMessage": if etype == "user.session.start" { "User login to Okta" } else { "User single sign on to app" },
            "actor": {"id": who.okta_id, "type": "User", "alternateId": who.email, "displayName": who.email},
            "client": {"userAgent": {"rawUserAgent": ua}, "ipAddress": net.ip, "device": "Computer", "zone": "null",
                       "geographicalContext": {"city": net.city, "country": net.country, "geolocation": {"lat": net.lat, "lon": net.lon}}},
            "device": device.map(|d| json!({"id": d, "name": "laptop", "os_platform": "MACOS", "managed": true})),
            "authenticationContext": {"externalSessionId": session, "rootSessionId": session, "authenticationStep": 0},
            "outcome": {"result": "SUCCESS"},
            "securityContext": {"asNumber": net.asn, "asOrg": net.org, "isp": net.org, "domain": ".", "isProxy": net.proxy},
            "debugContext": {"debugData": {"requestUri": "/app/sso/saml", "threatSuspected": "false"}},
            "target": [{"id": "0oa-app", "type": "AppInstance", "alternateId": app, "displayName": app}],
        }))
    }

    /// Okta refresh-token grant, or Okta's own reuse detection.
    pub fn okta_refresh(
        &mut self,
        t: i64,
        who: &Who<'_>,
        net: &Net,
        token: &str,
        reuse: bool,
    ) -> i64 {
        let uuid = format!("{:032x}", self.uid() as u128);
        let etype = if reuse {
            "app.oauth2.as.token.detect_reuse"
        } else {
            "app.oauth2.as.token.grant.refresh_token"
        };
        self.push(Src::Okta, t, json!({
            "uuid": uuid,
            "published": iso(t),
            "eventType": etype,
            "version": "0",
            "actor": {"id": "0oa-desktop-client", "type": "PublicClientApp", "alternateId": "Desktop client"},
            "client": {"ipAddress": net.ip, "id": "0oa-desktop-client",
                       "geographicalContext": {"city": net.city, "country": net.country, "geolocation": {"lat": net.lat, "lon": net.lon}}},
            "outcome": {"result": if reuse { "FAILURE" } else { "SUCCESS" }},
            "securityContext": {"asNumber": net.asn, "asOrg": net.org, "isProxy": net.proxy},
            "debugContext": {"debugData": {"grantType": "refresh_token"}},
            "target": [{"id": token, "type": "refresh_token"}, {"id": who.okta_id, "type": "User", "alternateId": who.email}],
        }))
    }

    /// Entra ID sign-in, as Azure Monitor diagnostic settings export it (`SignInLogs` for interactive,
    /// `NonInteractiveUserSignInLogs` for the desktop apps' silent token requests).
    #[allow(clippy::too_many_arguments)]
    pub fn entra(
        &mut self,
        t: i64,
        who: &Who<'_>,
        net: &Net,
        session: &str,
        token: &str,
        ua: &str,
        device: Option<&str>,
        app: &str,
        interactive: bool,
    ) -> i64 {
        let id = format!("{:016x}-si", self.uid());
        let (risk_level, risk_state, risk_types) = match self.next_entra_risk.take() {
            Some((level, kind)) => (level, "atRisk", vec![kind]),
            None => ("none", "none", vec![]),
        };
        let category = if interactive {
            "SignInLogs"
        } else {
            "NonInteractiveUserSignInLogs"
        };
        self.push(Src::Entra, t, json!({
            "time": iso(t),
            "resourceId": "/tenants/5f1c/providers/Microsoft.aadiam",
            "operationName": "Sign-in activity",
            "category": category,
            "tenantId": "5f1c",
            "resultType": "0",
            "callerIpAddress": net.ip,
            "properties": {
                "id": id,
                "createdDateTime": iso(t),
                "userDisplayName": who.email,
                "userPrincipalName": who.email,
                "userId": who.oid,
                "appId": format!("app-{}", app.len()),
                "appDisplayName": app,
                "ipAddress": net.ip,
                "isInteractive": interactive,
                "clientAppUsed": if interactive { "Browser" } else { "Mobile Apps and Desktop clients" },
                "userAgent": ua,
                "status": {"errorCode": 0},
                "deviceDetail": {"deviceId": device.unwrap_or(""), "operatingSystem": "Windows10", "browser": "", "isCompliant": device.is_some(), "trustType": if device.is_some() { "Azure AD joined" } else { "" }},
                "location": {"city": net.city, "countryOrRegion": net.cc, "geoCoordinates": {"latitude": net.lat, "longitude": net.lon}},
                "autonomousSystemNumber": net.asn,
                "uniqueTokenIdentifier": token,
                "riskLevelDuringSignIn": risk_level,
                "riskLevelAggregated": risk_level,
                "riskState": risk_state,
                "riskDetail": "none",
                "riskEventTypes_v2": risk_types,
                "sessionId": session,
                "tokenIssuerType": "AzureAD",
                "incomingTokenType": if interactive { "none" } else { "primaryRefreshToken" },
            }
        }))
    }

    /// An M365 unified audit log record.
    #[allow(clippy::too_many_arguments)]
    pub fn m365(
        &mut self,
        t: i64,
        workload: &str,
        op: &str,
        who: &Who<'_>,
        ip: &str,
        client: &str,
        session: &str,
        token: &str,
        object: &str,
    ) -> i64 {
        let id = format!("{:08x}-m365-{:x}", self.uid() & 0xffff_ffff, t);
        let ip = if ip.contains(':') {
            format!("[{ip}]:{}", 50000 + t % 10000)
        } else {
            format!("{ip}:{}", 50000 + t % 10000)
        };
        let mut v = json!({
            "Id": id,
            "CreationTime": iso_m365(t),
            "RecordType": if workload == "Exchange" { 50 } else { 6 },
            "Operation": op,
            "OrganizationId": "5f1c",
            "UserType": 0,
            "UserKey": who.oid,
            "Workload": workload,
            "ResultStatus": "Succeeded",
            "UserId": who.email,
            "ClientIP": ip,
            "AppAccessContext": {"AADSessionId": session, "UniqueTokenId": token, "IssuedAtTime": iso_m365(t - 30 * MIN)},
        });
        if workload == "Exchange" {
            v["ClientInfoString"] = json!(client);
            v["MailboxOwnerUPN"] = json!(who.email);
            v["OperationProperties"] = json!([{"Name": "MailAccessType", "Value": "Bind"}]);
        } else {
            v["UserAgent"] = json!(client);
            v["ObjectId"] = json!(format!(
                "https://corp.sharepoint.com/sites/finance/Shared Documents/{object}"
            ));
            v["SiteUrl"] = json!("https://corp.sharepoint.com/sites/finance/");
            v["SourceFileName"] = json!(object);
        }
        self.push(Src::M365, t, v)
    }

    /// A Google Workspace Reports activity.
    pub fn google(
        &mut self,
        t: i64,
        app: &str,
        name: &str,
        who: &Who<'_>,
        ip: &str,
        params: Value,
    ) -> i64 {
        let q = self.uid();
        self.push(Src::Google, t, json!({
            "kind": "admin#reports#activity",
            "id": {"time": iso(t), "uniqueQualifier": (q >> 1).to_string(), "applicationName": app, "customerId": "C03az79cb"},
            "etag": "\"sim\"",
            "actor": {"callerType": "USER", "email": who.email, "profileId": who.google_id},
            "ipAddress": ip,
            "events": [{"type": if app == "drive" { "access" } else { app }, "name": name, "parameters": params}],
        }))
    }

    /// Salesforce event monitoring: a Bulk API export.
    #[allow(clippy::too_many_arguments)]
    pub fn salesforce_export(
        &mut self,
        t: i64,
        who: &Who<'_>,
        ip: &str,
        session: &str,
        rows: u64,
        app: &str,
    ) -> i64 {
        let q = self.uid();
        self.push(
            Src::Salesforce,
            t,
            json!({
                "attributes": {"type": "BulkApiResultEvent"},
                "EventDate": iso(t),
                "EventIdentifier": format!("{q:016x}"),
                "Username": who.email,
                "UserId": format!("005{}", &who.okta_id[3..]),
                "SourceIp": ip,
                "SessionKey": session,
                "LoginKey": format!("lk-{session}"),
                "RowsProcessed": rows,
                "QueriedEntities": "Account",
                "ConnectedAppId": app,
            }),
        )
    }

    /// Kong http-log.
    #[allow(clippy::too_many_arguments)]
    pub fn kong(
        &mut self,
        t: i64,
        method: &str,
        service: &str,
        consumer: &str,
        credential: &str,
        ip: &str,
        ua: &str,
        bytes: u64,
    ) -> i64 {
        self.push(Src::Kong, t, json!({
            "request": {"method": method, "uri": format!("/v1/{service}/items?page={}", t % 97), "url": format!("https://api.corp.example/v1/{service}/items"),
                        "size": 280, "headers": {"user-agent": ua, "accept": "application/json", "host": "api.corp.example"}},
            "upstream_uri": format!("/v1/{service}/items"),
            "response": {"status": 200, "size": bytes, "headers": {"content-type": "application/json"}},
            "latencies": {"request": 40, "kong": 2, "proxy": 38},
            "client_ip": ip,
            "started_at": t,
            "service": {"name": service, "host": format!("{service}.internal"), "protocol": "http"},
            "route": {"name": format!("{service}-route")},
            "consumer": {"id": format!("c-{consumer}"), "username": consumer},
            "authenticated_entity": {"id": credential},
        }))
    }

    /// One OTel GenAI span of an agent run; `server` is the MCP server a tool call reached.
    #[allow(clippy::too_many_arguments)]
    pub fn span(
        &mut self,
        t: i64,
        agent: &str,
        run: &str,
        token: &str,
        tool: &str,
        server: Option<&str>,
        dest: Option<&str>,
    ) -> i64 {
        let mut attrs = vec![
            json!({"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}}),
            json!({"key": "gen_ai.agent.id", "value": {"stringValue": agent}}),
            json!({"key": "gen_ai.agent.name", "value": {"stringValue": agent}}),
            json!({"key": "gen_ai.conversation.id", "value": {"stringValue": run}}),
            json!({"key": "gen_ai.tool.name", "value": {"stringValue": tool}}),
            json!({"key": "gen_ai.tool.type", "value": {"stringValue": "function"}}),
            json!({"key": "http.request.header.x-token-id", "value": {"arrayValue": {"values": [{"stringValue": token}]}}}),
        ];
        if let Some(s) = server {
            attrs.push(json!({"key": "mcp.method.name", "value": {"stringValue": "tools/call"}}));
            attrs.push(json!({"key": "server.address", "value": {"stringValue": s}}));
            attrs.push(json!({"key": "server.port", "value": {"intValue": "443"}}));
        }
        if let Some(d) = dest {
            attrs.push(json!({"key": "destination.address", "value": {"stringValue": d}}));
        }
        let trace = format!("{:016x}{:016x}", self.uid(), self.uid());
        let span = format!("{:016x}", self.uid());
        self.push(Src::Otel, t, json!({"resourceSpans": [{"resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "agent-runtime"}},
                {"key": "telemetry.sdk.language", "value": {"stringValue": "python"}}]},
            "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.genai", "version": "0.48b0"}, "spans": [{
                "traceId": trace,
                "spanId": span,
                "name": format!("execute_tool {tool}"),
                "kind": 3,
                "startTimeUnixNano": (t as i128 * 1_000_000).to_string(),
                "endTimeUnixNano": ((t + 400) as i128 * 1_000_000).to_string(),
                "attributes": attrs,
                "status": {"code": 1}}]}]}]}))
    }

    /// An MCP proxy's record of one `tools/call`.
    pub fn mcp(&mut self, t: i64, session: &str, server: &str, tool: &str, agent: &str) -> i64 {
        let id = self.uid() % 100_000;
        self.push(Src::Mcp, t, json!({
            "timestamp": iso(t),
            "session_id": session,
            "server": format!("https://{server}/mcp"),
            "user": agent,
            "request": {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}},
            "response": {"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "ok"}], "isError": false}},
        }))
    }

    /// The agent platform's configuration audit (native events): a job's new destination and data domain.
    pub fn agent_config(&mut self, t: i64, agent: &str, dest: &str, domain: &str) -> i64 {
        let q = self.uid();
        self.push(Src::Native, t, json!({
            "event_id": format!("cfg-{agent}-{q:x}"),
            "event_time": iso(t),
            "ingest_time": iso(t),
            "source": {"family": "agent", "vendor": "agent-platform", "format": "native"},
            "category": "admin_change",
            "action": "agent.config.update",
            "outcome": "success",
            "principal": {"id": "platform-admin@example.com", "kind": "human", "email": "platform-admin@example.com"},
            "session": {"job_id": agent},
            "resource": {"app": "agent-platform", "destination": dest, "domains": [domain]},
        }))
    }
}
