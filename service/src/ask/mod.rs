//! Questions in plain language: question → intent → typed plan → execution through the
//! service's own query operations → a sentence or a short table → a fact check that
//! every number said is in the executed result. See `docs/ask.md`.

pub mod catalog;
pub mod dates;
pub mod eval;
mod intent;
pub mod parse;
pub mod plan;
mod when;
mod words;

pub use catalog::Catalog;
pub use parse::{parse, Understood};
pub use plan::{Op, Plan};
pub mod check;
pub mod llm;
mod run;

/// `[service.ask]`.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AskConfig {
    /// An optional language model for understanding questions (`[service.ask.llm]`).
    pub llm: llm::LlmConfig,
}

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::limits::Class;
use crate::rooms::metadata;
use crate::routes::{answer, caller, ApiError, Caller};
use crate::AppState;

/// The longest question, characters.
pub const MAX_QUESTION: usize = 500;

/// The query of `GET /v1/ask`.
#[derive(Deserialize)]
pub struct AskQuery {
    /// The question.
    q: Option<String>,
    /// `builtin` or `llm`: which understands it (default: the configured order).
    parser: Option<String>,
}

/// `GET /v1/ask?q=…`: the question answered from the tenant's own data: the sentence,
/// a short table, the plan, the requests that reproduce each number, a confidence; or
/// a question back when a name fits several places; or what it can answer.
pub async fn ask(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(a): Query<AskQuery>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    let question = a.q.unwrap_or_default();
    if question.trim().is_empty() || question.chars().count() > MAX_QUESTION {
        return Err(ApiError::bad(
            "q",
            format!("ask a question of 1 to {MAX_QUESTION} characters"),
        ));
    }
    let parser = match a.parser.as_deref() {
        None => None,
        Some(p @ ("builtin" | "llm")) => Some(p),
        Some(_) => return Err(ApiError::bad("parser", "must be builtin or llm")),
    };
    if parser == Some("llm") && !state.config.ask.llm.enabled() {
        return Err(ApiError::bad(
            "parser",
            "no language model is configured (service.ask.llm)",
        ));
    }
    caller.limit(&state, Class::Analytics).await?;
    let body = answer_question(&state, &caller, &question, Utc::now(), parser).await?;
    Ok(answer(body))
}

/// Understands, runs and checks `question` for `caller`, records it for the audit row.
pub(crate) async fn answer_question(
    state: &AppState,
    caller: &Caller<'_>,
    question: &str,
    now: DateTime<Utc>,
    parser: Option<&str>,
) -> Result<serde_json::Value, ApiError> {
    let metadata = metadata(state, caller).await?;
    let catalog = metadata.catalog();
    let (understood, parser) = match understand(state, question, catalog, now, parser).await {
        Ok(understood) => understood,
        Err(refused) => {
            state.asked.with_label_values(&["llm", "refused"]).inc();
            tracing::warn!(%refused, "the language model's reply was refused");
            crate::audit::remember_detail(
                json!({ "q": question, "outcome": "refused", "refused": refused.to_string() })
                    .to_string(),
            );
            return Ok(json!({
                "question": question,
                "outcome": "refused",
                "answer": format!("I cannot answer that: {refused}."),
                "understood_by": "llm",
            }));
        }
    };
    let (outcome, body, plan, references) = match understood {
        Understood::Plan {
            plan,
            confidence,
            notes,
        } => {
            let mut run = run::Run {
                state,
                caller,
                metadata: &metadata,
                now,
                references: Vec::new(),
            };
            match run.plan(&plan).await {
                Ok(done) => {
                    let mut said = done.text.clone();
                    for row in done.table.iter().flat_map(|t| &t.rows) {
                        said.push('\n');
                        said.push_str(&row.join(" | "));
                    }
                    let unsupported = check::unsupported(&said, &done.result);
                    if unsupported.is_empty() {
                        let body = json!({
                            "question": question,
                            "outcome": "answer",
                            "answer": done.text,
                            "table": done.table,
                            "plan": plan,
                            "understood_by": parser,
                            "confidence": confidence,
                            "notes": notes,
                            "references": done.references,
                            "result": done.result,
                        });
                        ("answer", body, Some(plan), done.references)
                    } else {
                        tracing::error!(
                            question,
                            ?unsupported,
                            "an answer said numbers its result does not hold; not given"
                        );
                        let body = json!({
                            "question": question,
                            "outcome": "refused",
                            "answer": "I could not check every number of this answer against the data it came from, so I do not give it. The references hold the data.",
                            "plan": plan,
                            "understood_by": parser,
                            "references": done.references,
                        });
                        ("refused", body, Some(plan), done.references)
                    }
                }
                // The operation refused the plan's parameters (a range too long, a role
                // too weak, nothing found): said as the answer.
                Err(e) if e.is_refusal() => {
                    let body = json!({
                        "question": question,
                        "outcome": "refused",
                        "answer": format!("I cannot answer that: {}", e.message()),
                        "plan": plan,
                        "understood_by": parser,
                        "references": run.references,
                    });
                    ("refused", body, Some(plan), Vec::new())
                }
                Err(e) => return Err(e),
            }
        }
        Understood::Clarify {
            question: back,
            options,
            name: said,
        } => {
            let named: Vec<serde_json::Value> = options
                .iter()
                .map(|id| {
                    // An office by its name, a room by its name in its office.
                    let (name, instead) = match (catalog.office(id), catalog.room(id)) {
                        (Some(o), _) => (o.name.clone(), o.name.clone()),
                        (None, Some(r)) => {
                            let office = catalog.office(&r.office).map_or(r.office.as_str(), |o| o.name.as_str());
                            (format!("{} ({office})", r.name), format!("{} in {office}", r.name))
                        }
                        (None, None) => (id.clone(), id.clone()),
                    };
                    json!({ "id": id, "name": name, "ask_instead": replaced(question, &said, &instead) })
                })
                .collect();
            let body = json!({ "question": question, "outcome": "clarify", "answer": back, "options": named, "understood_by": parser });
            ("clarify", body, None, Vec::new())
        }
        Understood::OutOfScope { message, .. } => {
            let body = json!({ "question": question, "outcome": "out_of_scope", "answer": message, "understood_by": parser });
            ("out_of_scope", body, None, Vec::new())
        }
    };
    state.asked.with_label_values(&[parser, outcome]).inc();
    crate::audit::remember_detail(
        json!({
            "q": question,
            "outcome": outcome,
            "plan": plan,
            "references": references.iter().map(|r| &r.endpoint).collect::<Vec<_>>(),
        })
        .to_string(),
    );
    Ok(body)
}

/// `question` with the words `said` (any case) replaced by `instead`, when it holds them.
fn replaced(question: &str, said: &str, instead: &str) -> Option<String> {
    if said.is_empty() || !question.is_ascii() {
        return None;
    }
    let at = question
        .to_ascii_lowercase()
        .find(&said.to_ascii_lowercase())?;
    Some(format!(
        "{}{instead}{}",
        &question[..at],
        &question[at + said.len()..]
    ))
}

/// The question understood: by the built-in parser, the language model, or both in the
/// configured order (`parser` forces one). A forced model's refused reply is the error.
async fn understand(
    state: &AppState,
    question: &str,
    catalog: &Catalog,
    now: DateTime<Utc>,
    parser: Option<&str>,
) -> Result<(Understood, &'static str), llm::Refused> {
    let config = &state.config.ask.llm;
    let builtin = || parse(question, catalog, now);
    // Who someone is, or data roomflow does not have: no model is asked.
    let settled = matches!(builtin(), Understood::OutOfScope { settled: true, .. });
    if parser == Some("builtin") || !config.enabled() || settled {
        return Ok((builtin(), "builtin"));
    }
    let with_note = |mut understood: Understood, note: String| {
        if let Understood::Plan { notes, .. } = &mut understood {
            notes.push(note);
        }
        understood
    };
    if parser == Some("llm") || config.mode == "first" {
        let asked = llm::understand(config, question, catalog, now).await;
        return match (asked, parser) {
            (Ok(Understood::Plan { plan, notes, .. }), _) => {
                // As sure as the built-in parser when it makes the same plan.
                let agreed =
                    matches!(builtin(), Understood::Plan { plan: ref p, .. } if *p == plan);
                let confidence = if agreed { 0.95 } else { 0.7 };
                Ok((
                    Understood::Plan {
                        plan,
                        confidence,
                        notes,
                    },
                    "llm",
                ))
            }
            (Ok(other), _) => Ok((other, "llm")),
            (Err(refused), Some("llm")) => Err(refused),
            (Err(refused), _) => {
                state.asked.with_label_values(&["llm", "refused"]).inc();
                Ok((
                    with_note(
                        builtin(),
                        format!("{refused}; the built-in parser answered"),
                    ),
                    "builtin",
                ))
            }
        };
    }
    // Fallback: the model only when the built-in parser finds no plan.
    match builtin() {
        kept @ Understood::OutOfScope { .. } => {
            match llm::understand(config, question, catalog, now).await {
                Ok(u @ (Understood::Plan { .. } | Understood::Clarify { .. })) => Ok((u, "llm")),
                Ok(Understood::OutOfScope { .. }) => Ok((kept, "builtin")),
                Err(refused) => {
                    state.asked.with_label_values(&["llm", "refused"]).inc();
                    tracing::warn!(%refused, "the language model's reply was refused");
                    Ok((kept, "builtin"))
                }
            }
        }
        understood => Ok((understood, "builtin")),
    }
}

/// Runs one of the service's read operations, `endpoint` being its path and query, as
/// `caller`: what a plan is made of, and what its references repeat.
pub(crate) async fn fetch(
    state: &AppState,
    caller: &Caller<'_>,
    endpoint: &str,
) -> Result<serde_json::Value, ApiError> {
    let uri: Uri = endpoint
        .parse()
        .map_err(|_| ApiError::bad("q", "the plan made an invalid request"))?;
    fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
        Query::<T>::try_from_uri(uri)
            .map(|Query(q)| q)
            .map_err(|e| ApiError::bad("q", format!("the plan made an invalid request: {e}")))
    }
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "offices", "ranking"] => {
            crate::insights::ranking_for(state, caller, &query(&uri)?).await
        }
        ["v1", "offices", id, "utilization"] => {
            crate::series::office_series(state, caller, id, &query(&uri)?).await
        }
        ["v1", "rooms", id, "utilization"] => {
            crate::series::room_series(state, caller, id, &query(&uri)?).await
        }
        ["v1", "portfolio", "utilization"] => {
            crate::portfolio::portfolio_series(state, caller, &query(&uri)?).await
        }
        ["v1", "insights", "underused"] => {
            crate::insights::underused_for(state, caller, &query(&uri)?).await
        }
        ["v1", "offices", id, "heatmap"] => {
            crate::insights::heatmap_for(state, caller, id, &query(&uri)?).await
        }
        ["v1", "offices", id, "forecast"] => {
            crate::analytics::forecast_for(
                state,
                caller,
                ("office", "office_id", id),
                &query(&uri)?,
            )
            .await
        }
        ["v1", "rooms", id, "forecast"] => {
            crate::analytics::forecast_for(state, caller, ("room", "room_id", id), &query(&uri)?)
                .await
        }
        ["v1", "anomalies"] => crate::analytics::anomalies_for(state, caller, &query(&uri)?).await,
        ["v1", "insights", "ghost-bookings"] => {
            crate::bookings::ghosts_for(state, caller, &query(&uri)?).await
        }
        ["v1", "insights", "seats"] => crate::seats::seats_for(state, caller, &query(&uri)?).await,
        _ => Err(ApiError::bad(
            "q",
            "the plan asked for an operation that is not allowed",
        )),
    }
}
