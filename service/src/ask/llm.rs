//! An optional language model that understands questions, and nothing else: it is sent
//! the question and the tenant's names (offices, regions, countries, floors, kinds of
//! room, the rooms the question names), never a reading or a result, and asked for a
//! plan through a tool call. Its reply is treated as hostile: it must be a tool call,
//! a plan of the allowed operations that passes the same validation as the built-in
//! parser's, and carry no number the question does not say. Its words never reach an
//! answer: answers are worded from the executed result only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::catalog::{normalize, Catalog};
use super::parse::Understood;
use super::plan::{Op, Plan, KINDS, WEEKDAYS};
use rf_sinks::Secret;

/// `[service.ask.llm]`: a provider for understanding questions; off while `provider` is
/// empty.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// `""` (off), `openai` (any OpenAI-compatible chat-completions endpoint: OpenAI,
    /// Azure OpenAI, vLLM, Ollama, …) or `anthropic` (Anthropic's Messages API).
    pub provider: String,
    /// The endpoint, e.g. `https://api.openai.com/v1/chat/completions` or
    /// `https://api.anthropic.com/v1/messages`: https, or http on a loopback host.
    pub url: String,
    /// The model's name.
    pub model: String,
    /// The API key (sent as a bearer token, or as `x-api-key` to Anthropic).
    pub api_key: Secret,
    /// `fallback` (default): asked only when the built-in parser finds no plan;
    /// `first`: asked first, the built-in parser answering when it fails.
    pub mode: String,
    /// The longest a reply may take, seconds (1 to 60).
    pub timeout_secs: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            provider: String::new(),
            url: String::new(),
            model: String::new(),
            api_key: Secret::new(""),
            mode: "fallback".into(),
            timeout_secs: 10,
        }
    }
}

impl LlmConfig {
    /// Whether a provider is configured.
    pub fn enabled(&self) -> bool {
        !self.provider.is_empty()
    }

    /// Checks the settings, naming the field at fault.
    pub fn validate(&self) -> Result<(), crate::InvalidSetting> {
        let invalid = |field: &'static str, problem: &str| crate::InvalidSetting {
            field,
            problem: problem.to_owned(),
        };
        if !self.enabled() {
            return Ok(());
        }
        if !["openai", "anthropic"].contains(&self.provider.as_str()) {
            return Err(invalid(
                "service.ask.llm.provider",
                "must be openai, anthropic or empty (off)",
            ));
        }
        crate::web::url("service.ask.llm.url", &self.url)?;
        if self.model.is_empty() {
            return Err(invalid("service.ask.llm.model", "name the model"));
        }
        if !["fallback", "first"].contains(&self.mode.as_str()) {
            return Err(invalid("service.ask.llm.mode", "must be fallback or first"));
        }
        if !(1..=60).contains(&self.timeout_secs) {
            return Err(invalid(
                "service.ask.llm.timeout_secs",
                "must be between 1 and 60",
            ));
        }
        Ok(())
    }
}

/// Why a provider's reply was not used.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The provider could not be reached or answered an error.
    #[error("the language model is unavailable: {0}")]
    Unavailable(String),
    /// It answered in words, not with a plan.
    #[error("the language model answered instead of making a plan; its numbers would not come from your data")]
    NoPlan,
    /// Its plan is not one of the allowed shapes, or fails validation.
    #[error("the language model's plan is not valid: {0}")]
    Invalid(String),
    /// Its plan holds a number the question does not say (named, not repeated).
    #[error("the language model's plan holds {0} that the question does not say")]
    Invented(&'static str),
}

/// What the model is asked to call.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    outcome: String,
    #[serde(default)]
    plan: Option<Value>,
    #[serde(default)]
    options: Vec<String>,
}

const SYSTEM: &str = "You turn a facilities question into a query plan for roomflow, an office occupancy analytics \
service. Call the tool `plan` exactly once. Use only the ids in `names`. Never answer the question yourself and never \
put a number in the plan that the question does not say (leave optional fields out instead). Periods are today, \
yesterday, this_week, last_week, this_month, last_month, this_quarter, last_quarter, this_year, last_year, days:N, \
weeks:N, months:N or YYYY-MM. A threshold is a share of capacity (80% is 0.8). If a name fits several offices or rooms, \
answer outcome clarify with their ids; if roomflow's operations cannot answer, outcome out_of_scope.";

/// The tool's JSON schema: the plan's shape, every field optional but `op`.
fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "outcome": { "type": "string", "enum": ["plan", "clarify", "out_of_scope"] },
            "options": { "type": "array", "items": { "type": "string" } },
            "plan": {
                "type": "object",
                "properties": {
                    "op": { "type": "string", "enum": Op::ALL.map(Op::name) },
                    "scope": {
                        "type": "object",
                        "properties": {
                            "regions": { "type": "array", "items": { "type": "string" } },
                            "country": { "type": "string" },
                            "offices": { "type": "array", "items": { "type": "string" } },
                            "floor": { "type": "integer" },
                            "kind": { "type": "string", "enum": KINDS },
                            "room": { "type": "string" }
                        },
                        "additionalProperties": false
                    },
                    "period": { "type": "string" },
                    "when": {
                        "type": "object",
                        "properties": {
                            "weekdays": { "type": "array", "items": { "type": "string", "enum": WEEKDAYS } },
                            "hours": { "type": "array", "items": { "type": "integer" }, "minItems": 2, "maxItems": 2 }
                        },
                        "additionalProperties": false
                    },
                    "threshold": { "type": "number" },
                    "order": { "type": "string", "enum": ["most", "least"] },
                    "limit": { "type": "integer" }
                },
                "required": ["op"],
                "additionalProperties": false
            }
        },
        "required": ["outcome"],
        "additionalProperties": false
    })
}

/// What the model is told: the question, today, and the tenant's names, no data.
pub fn prompt(question: &str, catalog: &Catalog, now: DateTime<Utc>) -> Value {
    let mut names = catalog.names();
    // The rooms the question names (a tenant may have 50,000).
    let text = normalize(question);
    let words: Vec<&str> = text.split(' ').collect();
    let mut rooms = Vec::new();
    for n in 1..=4 {
        for w in words.windows(n) {
            for r in catalog.rooms_named(&w.join(" ")) {
                rooms.push(json!({ "id": r.id, "name": r.name, "office": r.office }));
            }
        }
    }
    rooms.truncate(50);
    names["rooms"] = json!(rooms);
    json!({ "question": question, "today": now.date_naive().to_string(), "names": names })
}

/// Asks the provider of `config` to understand `question`.
pub async fn understand(
    config: &LlmConfig,
    question: &str,
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Result<Understood, Refused> {
    let user = prompt(question, catalog, now).to_string();
    let body = match config.provider.as_str() {
        "anthropic" => json!({
            "model": config.model,
            "max_tokens": 1024,
            "system": SYSTEM,
            "messages": [{ "role": "user", "content": user }],
            "tools": [{ "name": "plan", "description": "The query plan of the question.", "input_schema": schema() }],
            "tool_choice": { "type": "tool", "name": "plan" },
        }),
        _ => json!({
            "model": config.model,
            "temperature": 0,
            "messages": [{ "role": "system", "content": SYSTEM }, { "role": "user", "content": user }],
            "tools": [{ "type": "function", "function": {
                "name": "plan", "description": "The query plan of the question.", "parameters": schema(),
            }}],
            "tool_choice": { "type": "function", "function": { "name": "plan" } },
        }),
    };
    let reply = post(config, body).await?;
    let arguments = match config.provider.as_str() {
        "anthropic" => reply["content"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "tool_use" && c["name"] == "plan")
            .map(|c| c["input"].clone()),
        _ => reply["choices"][0]["message"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["function"]["name"] == "plan")
            .and_then(|c| match &c["function"]["arguments"] {
                Value::String(s) => serde_json::from_str(s).ok(),
                v @ Value::Object(_) => Some(v.clone()),
                _ => None,
            }),
    };
    let arguments = arguments.ok_or(Refused::NoPlan)?;
    checked(arguments, question, catalog)
}

/// The reply's plan, if it is one of the allowed shapes, valid for the tenant, and
/// holds no number the question does not say.
pub fn checked(arguments: Value, question: &str, catalog: &Catalog) -> Result<Understood, Refused> {
    let reply: Reply =
        serde_json::from_value(arguments).map_err(|e| Refused::Invalid(e.to_string()))?;
    match reply.outcome.as_str() {
        "plan" => {
            let plan: Plan = serde_json::from_value(
                reply
                    .plan
                    .ok_or_else(|| Refused::Invalid("no plan".into()))?,
            )
            .map_err(|e| Refused::Invalid(e.to_string()))?;
            plan.validate(catalog)
                .map_err(|e| Refused::Invalid(e.to_string()))?;
            grounded(&plan, question)?;
            Ok(Understood::Plan {
                plan,
                confidence: 0.7,
                notes: vec!["understood by the language model; its plan was checked like the built-in parser's".into()],
            })
        }
        "clarify" => {
            let known = |id: &String| catalog.office(id).is_some() || catalog.room(id).is_some();
            if reply.options.len() < 2 || !reply.options.iter().all(known) {
                return Err(Refused::Invalid(
                    "a question back must offer two or more of the tenant's offices or rooms"
                        .into(),
                ));
            }
            let names: Vec<String> = reply
                .options
                .iter()
                .map(|id| {
                    catalog.office(id).map_or_else(
                        || catalog.room(id).map_or(id.clone(), |r| r.name.clone()),
                        |o| o.name.clone(),
                    )
                })
                .collect();
            Ok(Understood::Clarify {
                question: format!("Which one: {}?", names.join(" or ")),
                options: reply.options,
                name: String::new(),
            })
        }
        "out_of_scope" => Ok(Understood::OutOfScope {
            message: super::parse::CAN_ANSWER.into(),
            settled: false,
        }),
        other => Err(Refused::Invalid(format!("outcome {other:?}"))),
    }
}

/// Every number of the plan must be said by the question: a threshold, a list's
/// length, a floor, a count of days, weeks or months, an hour.
fn grounded(plan: &Plan, question: &str) -> Result<(), Refused> {
    let said: Vec<f64> = numbers(question);
    let words = normalize(question);
    let has = |x: f64| said.iter().any(|&n| (n - x).abs() < 1e-9);
    if let Some(t) = plan.threshold {
        let full = t == 1.0 && (words.contains("capacity") || words.contains("full"));
        if !has((t * 100.0 * 1e6).round() / 1e6) && !has(t) && !full {
            return Err(Refused::Invented("a threshold"));
        }
    }
    if let Some(limit) = plan.limit {
        if !has(f64::from(limit)) && !super::words::says_number(&words, limit) {
            return Err(Refused::Invented("a list length"));
        }
    }
    if let Some(floor) = plan.scope.floor {
        let said = has(f64::from(floor))
            || (floor == 0 && words.contains("ground"))
            || super::words::says_number(&words, floor.max(0) as u32);
        if !said {
            return Err(Refused::Invented("a floor"));
        }
    }
    if let Some(period) = plan.period {
        use super::dates::Period;
        if let Period::Days(n) | Period::Weeks(n) | Period::Months(n) = period {
            let idiom =
                matches!((period, n), (Period::Days(7 | 30 | 365), _)) && words.contains("past");
            if !has(f64::from(n)) && !super::words::says_number(&words, n) && !idiom {
                return Err(Refused::Invented("a number of days, weeks or months"));
            }
        }
    }
    if let Some([a, b]) = plan.when.hours {
        let part = [
            ("morning", [8, 12]),
            ("afternoon", [12, 17]),
            ("evening", [17, 21]),
            ("lunch", [12, 14]),
        ]
        .iter()
        .any(|(w, h)| words.contains(w) && *h == [a, b]);
        let hour = |h: u8| has(f64::from(h)) || (h > 12 && has(f64::from(h - 12)));
        if !(part || hour(a) && hour(b)) {
            return Err(Refused::Invented("hours"));
        }
    }
    Ok(())
}

/// The numbers written in `text` (digits; "80%" is 80).
fn numbers(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.trim_matches('.').parse().ok())
        .collect()
}

/// POSTs `body` to the provider: no redirects, the configured timeout, 256 KiB at most.
async fn post(config: &LlmConfig, body: Value) -> Result<Value, Refused> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(config.timeout_secs)))
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .new_agent();
        let request = agent
            .post(&config.url)
            .header("content-type", "application/json");
        let request = match config.provider.as_str() {
            "anthropic" => request
                .header("x-api-key", config.api_key.expose())
                .header("anthropic-version", "2023-06-01"),
            _ => request.header(
                "authorization",
                format!("Bearer {}", config.api_key.expose()),
            ),
        };
        let mut response = request
            .send(body.to_string())
            .map_err(|e| Refused::Unavailable(e.to_string()))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 << 10)
            .read_to_string()
            .map_err(|e| Refused::Unavailable(e.to_string()))?;
        if !status.is_success() {
            return Err(Refused::Unavailable(format!("status {}", status.as_u16())));
        }
        serde_json::from_str(&text)
            .map_err(|_| Refused::Unavailable("the reply is not JSON".into()))
    })
    .await
    .map_err(|e| Refused::Unavailable(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/ask/catalog.json");
        let mut c: Catalog = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        c.index();
        c
    }

    fn reply(plan: Value) -> Value {
        json!({ "outcome": "plan", "plan": plan })
    }

    #[test]
    fn a_plan_is_taken_only_when_valid_and_grounded_in_the_question() {
        let c = catalog();
        let q = "Which meeting rooms in EMEA were under 20% last month?";
        let good = json!({ "op": "underused", "scope": { "regions": ["EMEA"], "kind": "MEETING" }, "period": "last_month", "threshold": 0.2 });
        assert!(matches!(
            checked(reply(good), q, &c),
            Ok(Understood::Plan { .. })
        ));
        // A threshold the question does not say is invented.
        let invented =
            json!({ "op": "underused", "scope": {}, "period": "last_month", "threshold": 0.35 });
        assert!(matches!(
            checked(reply(invented), q, &c),
            Err(Refused::Invented(_))
        ));
        let days = json!({ "op": "underused", "scope": {}, "period": "days:45", "threshold": 0.2 });
        assert!(matches!(
            checked(reply(days), q, &c),
            Err(Refused::Invented(_))
        ));
        // Unknown operations, fields, offices and SQL are not plans.
        for bad in [
            json!({ "op": "sql", "query": "SELECT * FROM other.rooms" }),
            json!({ "op": "ranking", "scope": {}, "period": "last_month", "order": "most", "sql": "1" }),
            json!({ "op": "utilization", "scope": { "offices": ["other-tenant-office"] }, "period": "last_month" }),
            json!({ "op": "heatmap", "scope": { "regions": ["EMEA"] }, "period": "weeks:4" }),
        ] {
            assert!(
                matches!(checked(reply(bad.clone()), q, &c), Err(Refused::Invalid(_))),
                "{bad}"
            );
        }
        // A question back offers only the tenant's own places.
        let back = json!({ "outcome": "clarify", "options": ["ber-mitte", "ber-xberg"] });
        assert!(matches!(
            checked(back, "How busy is Berlin?", &c),
            Ok(Understood::Clarify { .. })
        ));
        let foreign = json!({ "outcome": "clarify", "options": ["ber-mitte", "someone-elses"] });
        assert!(checked(foreign, "How busy is Berlin?", &c).is_err());
        // Words of its own are refused.
        let prose = json!({ "outcome": "plan", "answer": "Berlin is at 73%" });
        assert!(checked(prose, "How busy is Berlin?", &c).is_err());
    }

    #[test]
    fn the_prompt_holds_names_and_no_data() {
        let c = catalog();
        let p = prompt("How busy is the Everest room?", &c, Utc::now());
        assert_eq!(p["names"]["rooms"][0]["id"], "lon-everest");
        assert_eq!(p["names"]["rooms"].as_array().unwrap().len(), 1);
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["names", "question", "today"]);
    }
}
