//! OpenTelemetry GenAI spans in OTLP/JSON: `{"resourceSpans":[…]}` batches and single span objects.
//!
//! In: one batch or span. Out: one session event per span. State: none. Attributes read (standard first, then
//! Quench's own for what the conventions do not cover):
//! - operation: `gen_ai.operation.name` (`execute_tool` → `tool_call`, `invoke_agent`/`create_agent` →
//!   `agent_invoke`, `chat`/`text_completion`/`generate_content`/`embeddings` → `model_call`);
//! - principal: `gen_ai.agent.id` (kind agent, name from `gen_ai.agent.name`); `enduser.id` is kept as
//!   `principal.on_behalf_of`, never as the actor (an agent cannot make its own behaviour a person's);
//! - job: the configured attribute (default `gen_ai.conversation.id`);
//! - token id: `quench.token.id`, else `http.request.header.x-token-id`;
//! - tool: `gen_ai.tool.name`; data domains: `quench.data.domain` (string or array);
//! - destination: `quench.destination`, else `destination.address`;
//! - network: `client.address`, `user_agent.original`; app: resource `service.name`;
//! - MCP: `mcp.method.name` (`tools/call` is a tool call), `mcp.session.id` (the session), `server.address` (the
//!   server reached).
//!
//! Spans exported with a flat attribute object (`{"trace_id", "span_id", "span_name", "attributes": {…}}`, as
//! collectors' JSON exporters and the semantic-convention docs write them) are read the same way. A span without a
//! start time takes the ingest time; one without trace/span ids gets an id from where it was read.
//!
//! Trust: a span with `gen_ai.agent.id` vouches for the agent and the job, token and session it names (the runtime
//! is authoritative for its own agents); a span without one vouches for nothing.

use super::{parse_config, ConfigError, Context, NormalizeError, Normalizer, Probe};
use crate::event::*;
use serde::Deserialize;

pub const NAME: &str = "otel_genai";

/// The top-level keys this format's `sniff` asks the probe about (its registry entry).
pub const KEYS: &[&str] = &[
    "resourceSpans",
    "traceId",
    "spanId",
    "attributes",
    "span_name",
    "trace_id",
];

/// `[normalize.formats.otel_genai]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtelConfig {
    /// Span attribute holding the agent job id. Default `"gen_ai.conversation.id"`.
    pub job_id_attribute: String,
}

impl Default for OtelConfig {
    fn default() -> Self {
        OtelConfig {
            job_id_attribute: "gen_ai.conversation.id".into(),
        }
    }
}

pub fn build(t: toml::Table) -> Result<Box<dyn Normalizer>, ConfigError> {
    let cfg: OtelConfig = parse_config(NAME, t)?;
    if cfg.job_id_attribute.is_empty() {
        return Err(ConfigError::Invalid {
            key: "normalize.formats.otel_genai.job_id_attribute".into(),
            value: String::new(),
            why: "must name a span attribute".into(),
        });
    }
    Ok(Box::new(OtelGenAi { cfg }))
}

pub struct OtelGenAi {
    cfg: OtelConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Batch<'a> {
    #[serde(borrow)]
    resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    #[serde(borrow, default)]
    resource: Option<OtelResource<'a>>,
    #[serde(borrow, default)]
    scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Deserialize)]
struct OtelResource<'a> {
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize)]
struct ScopeSpans<'a> {
    #[serde(borrow, default)]
    spans: Vec<Span<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Span<'a> {
    #[serde(borrow, default)]
    trace_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    span_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    start_time_unix_nano: Option<Text<'a>>,
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    code: Option<serde_json::Number>,
}

#[derive(Deserialize)]
struct KeyValue<'a> {
    #[serde(borrow)]
    key: Text<'a>,
    #[serde(borrow)]
    value: AnyValue<'a>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AnyValue<'a> {
    #[serde(borrow, default)]
    string_value: Option<Text<'a>>,
    #[serde(borrow, default)]
    int_value: Option<Text<'a>>,
    #[serde(default)]
    array_value: Option<ArrayValue<'a>>,
}

#[derive(Deserialize, Default)]
struct ArrayValue<'a> {
    #[serde(borrow, default)]
    values: Vec<AnyValue<'a>>,
}

impl<'a> AnyValue<'a> {
    fn text(&self) -> Option<Text<'a>> {
        self.string_value.clone().or_else(|| self.int_value.clone())
    }
    /// A string, or the strings of an array.
    fn texts(&self) -> impl Iterator<Item = Text<'a>> + '_ {
        self.text().into_iter().chain(
            self.array_value
                .iter()
                .flat_map(|a| a.values.iter().filter_map(AnyValue::text)),
        )
    }
}

/// A span with a flat attribute object.
#[derive(Deserialize)]
struct FlatSpan<'a> {
    #[serde(borrow, default, alias = "traceId")]
    trace_id: Option<Text<'a>>,
    #[serde(borrow, default, alias = "spanId")]
    span_id: Option<Text<'a>>,
    #[serde(borrow, default, alias = "name")]
    span_name: Option<Text<'a>>,
    #[serde(borrow, default, alias = "startTimeUnixNano")]
    start_time_unix_nano: Option<Text<'a>>,
    #[serde(borrow, default)]
    attributes: std::collections::HashMap<Text<'a>, FlatValue<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FlatValue<'a> {
    #[serde(borrow)]
    One(Text<'a>),
    Many(Vec<Text<'a>>),
    Other(serde::de::IgnoredAny),
}

impl<'a> FlatSpan<'a> {
    fn into_span(self) -> Span<'a> {
        let attributes = self
            .attributes
            .into_iter()
            .map(|(key, v)| {
                let value = match v {
                    FlatValue::One(t) => AnyValue {
                        string_value: Some(t),
                        ..Default::default()
                    },
                    FlatValue::Many(v) => AnyValue {
                        array_value: Some(ArrayValue {
                            values: v
                                .into_iter()
                                .map(|t| AnyValue {
                                    string_value: Some(t),
                                    ..Default::default()
                                })
                                .collect(),
                        }),
                        ..Default::default()
                    },
                    FlatValue::Other(_) => AnyValue::default(),
                };
                KeyValue { key, value }
            })
            .collect();
        Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            name: self.span_name,
            start_time_unix_nano: self.start_time_unix_nano,
            attributes,
            status: None,
        }
    }
}

impl OtelGenAi {
    fn span_event<'a>(
        &self,
        s: Span<'a>,
        app: Option<Text<'a>>,
        ctx: &Context<'a>,
        idx: usize,
    ) -> Result<SessionEvent<'a>, NormalizeError> {
        let time = match &s.start_time_unix_nano {
            // nanoseconds by the spec; another epoch unit or a timestamp string when a pipeline rewrote it
            Some(t) => Ts::parse(t.trim()).ok_or_else(|| {
                NormalizeError::invalid(
                    NAME,
                    format!("startTimeUnixNano {:?} is not a time", t.as_str()),
                )
            })?,
            None => ctx.ingest_time,
        };
        let mut mcp_method: Option<Text<'a>> = None;
        let mut op: Option<Text<'a>> = None;
        let mut agent_name = None;
        let mut enduser = None;
        let mut token_hdr = None;
        let mut dest_std = None;
        let src = SourceInfo {
            family: Family::Agent,
            vendor: "opentelemetry".into(),
            format: NAME.into(),
        };
        let id = match (&s.trace_id, &s.span_id) {
            (Some(t), Some(sp)) => Text::from(format!("{t}:{sp}")),
            _ => super::fallback_id(ctx, idx),
        };
        let mut ev = SessionEvent::new(src, id, time, Category::Other);
        ev.resource.app = app;
        for kv in s.attributes {
            let v = kv.value;
            match kv.key.as_str() {
                "gen_ai.operation.name" => op = v.text(),
                "gen_ai.agent.id" => ev.principal.id = v.text(),
                "gen_ai.agent.name" => agent_name = v.text(),
                "enduser.id" => enduser = v.text(),
                "quench.token.id" => ev.session.token_id = v.text(),
                "http.request.header.x-token-id" => token_hdr = v.texts().next(),
                "gen_ai.tool.name" => {
                    ev.resource.object_type = Some("tool".into());
                    ev.resource.object_id = v.text();
                }
                "quench.data.domain" => ev.resource.domains.extend(v.texts()),
                "quench.destination" => ev.resource.destination = v.text(),
                "destination.address" => dest_std = v.text(),
                "client.address" => ev.network.ip = v.text(),
                "user_agent.original" => ev.network.user_agent = v.text(),
                "mcp.method.name" => mcp_method = v.text(),
                "mcp.session.id" => ev.session.session_id = v.text(),
                "server.address" => ev.resource.server = v.text(),
                k if k == self.cfg.job_id_attribute => ev.session.job_id = v.text(),
                _ => {}
            }
        }
        if ev.session.token_id.is_none() {
            ev.session.token_id = token_hdr;
        }
        // The agent runtime vouches for the agent and its own job, token and session; `enduser.id` is only whom it
        // says it acts for, so a span can never make a person the actor.
        ev.principal.on_behalf_of = enduser;
        if ev.principal.id.is_some() {
            ev.principal.kind = PrincipalKind::Agent;
            ev.principal.display_name = agent_name;
            ev.vouch_all();
        }
        if ev.resource.destination.is_none() {
            ev.resource.destination = dest_std;
        }
        ev.category = match op.as_deref() {
            Some("execute_tool") => Category::ToolCall,
            Some("invoke_agent") | Some("create_agent") => Category::AgentInvoke,
            Some("chat" | "text_completion" | "generate_content" | "embeddings") => {
                Category::ModelCall
            }
            _ if mcp_method.as_deref() == Some("tools/call") => Category::ToolCall,
            _ => Category::Other,
        };
        ev.outcome = match s.status.and_then(|st| st.code).and_then(|c| c.as_u64()) {
            Some(2) => Outcome::Failure,
            Some(_) => Outcome::Success,
            None => Outcome::Unknown,
        };
        ev.action = op.or(mcp_method).or(s.name);
        Ok(ev)
    }
}

impl Normalizer for OtelGenAi {
    fn hint(&self, raw: &str) -> bool {
        raw.starts_with("{\"resourceSpans\"")
    }

    fn sniff(&self, p: &Probe) -> bool {
        p.has("resourceSpans")
            || (p.has("traceId") && p.has("spanId"))
            || (p.has("attributes") && (p.has("span_name") || p.has("trace_id")))
    }

    fn normalize<'a>(
        &self,
        raw: &'a str,
        ctx: &Context<'a>,
        out: &mut Vec<SessionEvent<'a>>,
    ) -> Result<(), NormalizeError> {
        if raw.contains("\"resourceSpans\"") {
            let b: Batch<'a> = super::parse_json(NAME, raw)?;
            for rs in b.resource_spans {
                let app = rs.resource.and_then(|r| {
                    r.attributes
                        .into_iter()
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.text())
                });
                for ss in rs.scope_spans {
                    for s in ss.spans {
                        let idx = out.len();
                        out.push(self.span_event(s, app.clone(), ctx, idx)?);
                    }
                }
            }
        } else if raw.contains("\"attributes\":{") || raw.contains("\"attributes\": {") {
            let f: FlatSpan<'a> = super::parse_json(NAME, raw)?;
            out.push(self.span_event(f.into_span(), None, ctx, 0)?);
        } else {
            let s: Span<'a> = super::parse_json(NAME, raw)?;
            out.push(self.span_event(s, None, ctx, 0)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::event::*;
    use crate::normalize::testutil::normalize_one;

    const BATCH: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"crm-sync-agent"}}]},"scopeSpans":[{"scope":{"name":"agent"},"spans":[
      {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"execute_tool read_billing_notes","kind":3,"startTimeUnixNano":"1793606400000000000","endTimeUnixNano":"1793606400500000000","attributes":[
        {"key":"gen_ai.operation.name","value":{"stringValue":"execute_tool"}},
        {"key":"gen_ai.agent.id","value":{"stringValue":"agent-crm"}},
        {"key":"gen_ai.agent.name","value":{"stringValue":"CRM sync"}},
        {"key":"gen_ai.conversation.id","value":{"stringValue":"job-42"}},
        {"key":"gen_ai.tool.name","value":{"stringValue":"read_billing_notes"}},
        {"key":"http.request.header.x-token-id","value":{"arrayValue":{"values":[{"stringValue":"tok-9"}]}}},
        {"key":"quench.data.domain","value":{"arrayValue":{"values":[{"stringValue":"billing"}]}}}],"status":{"code":1}},
      {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"fff19b7ec3c1b175","name":"chat gpt-4","startTimeUnixNano":1793606401000000000,"attributes":[
        {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
        {"key":"enduser.id","value":{"stringValue":"carol@example.com"}},
        {"key":"destination.address","value":{"stringValue":"s3://drop"}}]}]}]}]}"#;

    #[test]
    fn batch_splits_into_spans_with_agent_job_token_and_domain() {
        let evs = normalize_one(BATCH);
        assert_eq!(evs.len(), 2);
        let t = &evs[0];
        assert_eq!(t.category, Category::ToolCall);
        assert_eq!(t.principal.id.as_deref(), Some("agent-crm"));
        assert_eq!(t.principal.kind, PrincipalKind::Agent);
        assert_eq!(t.session.job_id.as_deref(), Some("job-42"));
        assert_eq!(t.session.token_id.as_deref(), Some("tok-9"));
        assert_eq!(t.resource.object_id.as_deref(), Some("read_billing_notes"));
        assert_eq!(t.resource.domains, vec![Text::from("billing")]);
        assert_eq!(t.resource.app.as_deref(), Some("crm-sync-agent"));
        assert_eq!(t.event_time, Ts(1793606400000));
        assert!(t.principal.vouched_by.is_some() && t.vouches(Keys::JOB));
        let c = &evs[1];
        assert_eq!(c.category, Category::ModelCall);
        assert_eq!(
            c.principal.on_behalf_of.as_deref(),
            Some("carol@example.com")
        );
        assert_eq!(c.resource.destination.as_deref(), Some("s3://drop"));
    }

    #[test]
    fn an_agent_span_naming_an_end_user_never_makes_the_person_the_actor() {
        let evs = normalize_one(BATCH);
        let c = &evs[1];
        assert_eq!(c.principal.id, None);
        assert_eq!(c.principal.kind, PrincipalKind::Unknown);
        assert!(c.principal.vouched_by.is_none());
        let t = &evs[0];
        assert_eq!(t.principal.id.as_deref(), Some("agent-crm"));
    }

    #[test]
    fn flat_attribute_spans_and_mcp_tool_calls() {
        let raw = r#"{"span_name":"tools/call get-weather","span_kind":"CLIENT","attributes":{"gen_ai.operation.name":"execute_tool","gen_ai.tool.call.arguments":{"location":"SF"},"gen_ai.tool.name":"get-weather","jsonrpc.request.id":"3","mcp.method.name":"tools/call","mcp.session.id":"8267461134f2"}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::ToolCall);
        assert_eq!(ev.session.session_id.as_deref(), Some("8267461134f2"));
        assert_eq!(ev.resource.object_id.as_deref(), Some("get-weather"));
        assert_eq!(ev.event_time, Ts(0), "no start time: the ingest time");
        let raw = r#"{"trace_id":"4bf9","span_id":"00f0","span_name":"chat gpt-4","attributes":{"gen_ai.operation.name":"chat","gen_ai.request.max_tokens":200,"gen_ai.request.top_p":1.0,"gen_ai.response.finish_reasons":["stop"]}}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(
            (ev.category, ev.event_id.as_str()),
            (Category::ModelCall, "4bf9:00f0")
        );
    }

    #[test]
    fn single_span_object_is_accepted() {
        let raw = r#"{"traceId":"a1","spanId":"b2","name":"invoke_agent","startTimeUnixNano":"1793606400000000000","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"invoke_agent"}},{"key":"gen_ai.agent.id","value":{"stringValue":"ag"}}]}"#;
        let ev = &normalize_one(raw)[0];
        assert_eq!(ev.category, Category::AgentInvoke);
        assert_eq!(ev.event_id, "a1:b2");
    }
}
