//! MCP (Model Context Protocol) calls as gateways and proxies log them: a JSON-RPC request with its response,
//! carried with the MCP session id; or a single JSON-RPC message.
//!
//! In: `{"timestamp", "session_id" | "mcp_session_id", "request": {"jsonrpc":"2.0","method":"tools/call",
//! "params":{"name":…}}, "response": {…}, "user", "client_id", "token_id", "server", "client_ip"}` (all but
//! `request` optional), or a bare `{"jsonrpc":"2.0","method":…}` message. Out: one event: `tools/call` is a
//! tool call (the tool name is the object), `resources/read` and `prompts/get` read data, anything else is
//! `other` with the method as action. Outcome from the response (`error`, or `result.isError`). Without a
//! timestamp the ingest time is used. State: none.

use super::{parse_config, ConfigError, Context, Loose, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::de::IgnoredAny;
use serde::Deserialize;

pub const NAME: &str = "mcp";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &[
    "jsonrpc",
    "request",
    "session_id",
    "mcp_session_id",
    "started_at",
];

/// `[normalize.formats.mcp]`: no settings yet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let _cfg: McpConfig = parse_config(NAME, t)?;
    Ok(Box::new(Mcp))
}

pub struct Mcp;

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default, alias = "time", alias = "@timestamp")]
    timestamp: Loose<'a>,
    #[serde(borrow, default, alias = "mcp_session_id", alias = "Mcp-Session-Id")]
    session_id: Option<Text<'a>>,
    #[serde(borrow)]
    request: Message<'a>,
    #[serde(default)]
    response: Option<Response>,
    #[serde(borrow, default)]
    user: Option<Text<'a>>,
    #[serde(borrow, default)]
    client_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    token_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    server: Option<Text<'a>>,
    #[serde(borrow, default)]
    client_ip: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Loose<'a>,
    #[serde(borrow)]
    method: Text<'a>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    uri: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    error: Option<IgnoredAny>,
    #[serde(default)]
    result: Option<ResultBody>,
}

#[derive(Deserialize)]
struct ResultBody {
    #[serde(default, rename = "isError")]
    is_error: Option<bool>,
}

impl Normalizer for Mcp {
    fn sniff(&self, p: &Probe) -> bool {
        p.has("jsonrpc")
            || (p.has("request")
                && p.has_any(&["session_id", "mcp_session_id"])
                && !p.has("started_at"))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        let r: Record<'a> = if raw.contains("\"request\"") {
            super::parse_json(NAME, raw)?
        } else {
            let m: Message<'a> = super::parse_json(NAME, raw)?;
            Record {
                timestamp: Loose(None),
                session_id: None,
                request: m,
                response: None,
                user: None,
                client_id: None,
                token_id: None,
                server: None,
                client_ip: None,
            }
        };
        let time = match r.timestamp.0 {
            Some(t) => super::ms_or_timestamp(&t).ok_or_else(|| {
                NormalizeError::invalid(
                    NAME,
                    format!("timestamp {:?} is not a timestamp", t.as_str()),
                )
            })?,
            None => ctx.ingest_time,
        };
        let m = r.request;
        let params = m.params.unwrap_or(Params {
            name: None,
            uri: None,
        });
        let cat = match m.method.as_str() {
            "tools/call" => Category::ToolCall,
            "resources/read" | "prompts/get" => Category::DataRead,
            _ => Category::Other,
        };
        let id = match (&r.session_id, &m.id.0) {
            (Some(s), Some(i)) => Text::from(format!("mcp:{s}:{i}")),
            _ => super::fallback_id(ctx, 0),
        };
        let src = SourceInfo {
            family: Family::Agent,
            vendor: "mcp".into(),
            format: NAME.into(),
        };
        let mut ev = SessionEvent::new(src, id, time, cat);
        ev.outcome = match r.response {
            Some(Response { error: Some(_), .. }) => Outcome::Failure,
            Some(Response {
                result:
                    Some(ResultBody {
                        is_error: Some(true),
                    }),
                ..
            }) => Outcome::Failure,
            Some(_) => Outcome::Success,
            None => Outcome::Unknown,
        };
        // The MCP server assigns the session id; the user and token fields are whatever the logging proxy copied
        // from the request, so only the session is vouched for.
        if r.session_id.is_some() {
            ev.session.vouched = ev.session.vouched.with(Keys::SESSION);
        }
        ev.session.session_id = r.session_id;
        ev.session.client_id = r.client_id;
        ev.session.token_id = r.token_id;
        if let Some(u) = r.user {
            if u.contains('@') {
                ev.principal.email = Some(u.clone());
            }
            ev.principal.id = Some(u);
        }
        ev.network.ip = r.client_ip;
        ev.resource.server = r
            .server
            .as_deref()
            .map(|s| Text::from(server_host(s).to_string()));
        ev.resource.app = r.server;
        if cat == Category::ToolCall {
            ev.resource.object_type = Some("tool".into());
            ev.resource.object_id = params.name;
        } else {
            ev.resource.object_id = params.uri.or(params.name);
        }
        ev.action = Some(m.method);
        out.push(ev);
        Ok(())
    }
}

/// `https://mcp.example.com:443/mcp` → `mcp.example.com`: the server as OTel's `server.address` names it.
fn server_host(s: &str) -> &str {
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.starts_with('[') {
        return host.split(']').next().map_or(host, |h| &h[1..]);
    }
    host.split(':').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_server_is_its_host() {
        assert_eq!(
            super::server_host("https://mcp.example.com:443/mcp"),
            "mcp.example.com"
        );
        assert_eq!(super::server_host("mcp.example.com"), "mcp.example.com");
        assert_eq!(
            super::server_host("http://u@[2001:db8::1]:8080/x"),
            "2001:db8::1"
        );
    }

    use crate::event::*;
    use crate::normalize::testutil::normalize_one;

    #[test]
    fn a_tools_call_pair_with_its_session() {
        let raw = r#"{"timestamp":"2026-11-02T08:00:00Z","session_id":"8267461134f2","user":"carol@example.com","token_id":"tok-m1","server":"https://mcp.internal/billing","request":{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"INV-7"}}},"response":{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"…"}],"isError":false}}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            (ev.category, ev.outcome),
            (Category::ToolCall, Outcome::Success)
        );
        assert_eq!(ev.event_id, "mcp:8267461134f2:3");
        assert_eq!(ev.resource.object_id.as_deref(), Some("read_invoice"));
        assert_eq!(ev.session.session_id.as_deref(), Some("8267461134f2"));
        assert_eq!(ev.principal.email.as_deref(), Some("carol@example.com"));
    }

    #[test]
    fn a_tool_error_and_a_bare_message() {
        let raw = r#"{"time":1793606400000,"mcp_session_id":"s2","request":{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}},"response":{"jsonrpc":"2.0","id":"a","result":{"isError":true}}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            (ev.outcome, ev.event_time),
            (Outcome::Failure, Ts(1793606400000))
        );
        let raw = r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///notes/q3.md"}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            (ev.category, ev.resource.object_id.as_deref()),
            (Category::DataRead, Some("file:///notes/q3.md"))
        );
    }
}
