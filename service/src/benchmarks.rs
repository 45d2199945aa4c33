//! `GET /v1/benchmarks`: where the tenant stands against the cohorts of other tenants'
//! rooms it belongs to, from the latest published run (see `rf_schemas::benchmark` for
//! the disclosure rule). Only a tenant that contributes sees them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::NaiveDate;
use clickhouse::Row;
use serde::Deserialize;
use serde_json::json;

use rf_schemas::benchmark::{self, Cohort};

use crate::cache::cached;
use crate::limits::Class;
use crate::routes::{answer, caller, iso, ApiError, Caller};
use crate::AppState;

/// The rule, as the answer states it.
const RULE: &str = "A cohort is shown only when at least 5 tenants contribute to it and none \
     holds more than half of its rooms; its quartiles carry noise scaled to what one tenant \
     could change and are rounded to a percentage point. No tenant's own figures are shown.";

#[derive(Row, Deserialize)]
struct Consent {
    opted_in: u8,
}

#[derive(Row, Deserialize)]
struct RunRow {
    run: u64,
    computed_at: u32,
    from_day: u16,
    to_day: u16,
}

#[derive(Row, Deserialize)]
struct CohortRow {
    industry: String,
    region: String,
    kind: String,
    metric: String,
    tenants: u32,
    p25: f64,
    p50: f64,
    p75: f64,
}

/// `GET /v1/benchmarks`.
pub async fn benchmarks(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    caller.limit(&state, Class::Analytics).await?;
    let platform = &state.platform;
    let unavailable = |e: clickhouse::error::Error| {
        tracing::warn!(error = %e, "benchmarks: the platform tables cannot be read");
        ApiError::unavailable("the benchmarks cannot be read now; retry later")
    };
    let consent: Option<Consent> = platform
        .query(
            "SELECT toUInt8(argMax(opted_in, version)) FROM rf_platform.benchmark_consent \
             WHERE tenant = ? GROUP BY tenant",
        )
        .bind(caller.tenant.as_str())
        .fetch_optional()
        .await
        .map_err(unavailable)?;
    if consent.is_none_or(|c| c.opted_in != 1) {
        return Ok(answer(json!({
            "opted_in": false,
            "cohorts": [],
            "rule": RULE,
            "message": "Benchmarks are shown to tenants that contribute to them. A tenant admin opts in with `roomflow tenant update <tenant> --benchmarks on`; the next computation counts the tenant.",
        })));
    }
    let industry: Option<String> = platform
        .query(
            "SELECT argMax(industry, version) FROM rf_platform.tenants \
             WHERE tenant = ? GROUP BY tenant",
        )
        .bind(caller.tenant.as_str())
        .fetch_optional()
        .await
        .map_err(unavailable)?;
    let run: Option<RunRow> = platform
        .query(
            "SELECT run, toUInt32(computed_at), toUInt16(from_day), toUInt16(to_day) \
             FROM rf_platform.benchmark_runs ORDER BY run DESC LIMIT 1",
        )
        .fetch_optional()
        .await
        .map_err(unavailable)?;
    let industry = industry.as_deref().and_then(benchmark::industry);
    let Some(run) = run else {
        return Ok(answer(json!({
            "opted_in": true,
            "industry": industry,
            "run": null,
            "cohorts": [],
            "rule": RULE,
        })));
    };
    let cohorts: Vec<CohortRow> = platform
        .query(
            "SELECT industry, region, kind, metric, tenants, p25, p50, p75 \
             FROM rf_platform.benchmarks WHERE run = ? AND (industry = ? OR industry = ?) \
             ORDER BY industry, region, kind, metric",
        )
        .bind(run.run)
        .bind(benchmark::ALL)
        .bind(industry.as_deref().unwrap_or(benchmark::ALL))
        .fetch_all()
        .await
        .map_err(unavailable)?;
    let day = |d: u16| NaiveDate::default() + chrono::Days::new(u64::from(d));
    let (from, to) = (day(run.from_day), day(run.to_day));
    let request = format!("benchmarks:{}", run.run);
    let ttl = state.config.cache_ttl_secs;
    let body = cached(
        &caller,
        ttl,
        &request,
        position(&caller, (from, to), &cohorts),
    )
    .await?;
    Ok(answer(json!({
        "opted_in": true,
        "industry": industry,
        "run": {
            "computed_at": iso(i64::from(run.computed_at) * 1000),
            "from_date": from.to_string(),
            "to_date": to.to_string(),
        },
        "cohorts": body["cohorts"],
        "rule": RULE,
    })))
}

/// The tenant's own figures over the run's days against each cohort it belongs to.
async fn position(
    caller: &Caller<'_>,
    days: (NaiveDate, NaiveDate),
    rows: &[CohortRow],
) -> Result<serde_json::Value, ApiError> {
    let slices = crate::portfolio::no_database_is_empty(
        rf_sinks::clickhouse::benchmark::slices(caller.clickhouse(), &caller.tenant, days).await,
    )?;
    let mut listed = Vec::new();
    for row in rows {
        let Some(i) = benchmark::METRICS.iter().position(|m| *m == row.metric) else {
            continue;
        };
        let Some(yours) =
            benchmark::figures(&slices, &row.region, &row.kind).and_then(|f| f.values[i])
        else {
            continue;
        };
        let cohort = Cohort {
            industry: row.industry.clone(),
            region: row.region.clone(),
            kind: row.kind.clone(),
            metric: benchmark::METRICS[i],
            tenants: row.tenants,
            p25: row.p25,
            p50: row.p50,
            p75: row.p75,
        };
        listed.push(json!({
            "industry": row.industry,
            "region": row.region,
            "kind": row.kind,
            "metric": row.metric,
            "tenants": row.tenants,
            "p25": row.p25,
            "p50": row.p50,
            "p75": row.p75,
            "yours": yours,
            "position": benchmark::position(yours, &cohort),
            "against_median": (row.p50 > 0.0).then(|| yours / row.p50 - 1.0),
        }));
    }
    Ok(json!({ "cohorts": listed }))
}
