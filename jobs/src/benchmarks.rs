//! The cross-tenant benchmarks' computation (`roomflow benchmarks compute`): the tenants
//! that opted in, each one's figures from its own final room days (and booked-versus-used
//! days), the cohorts the disclosure rule allows (see [`rf_schemas::benchmark`]) written
//! to `rf_platform.benchmarks` under a new run. Tenant ids never leave this function.

use chrono::NaiveDate;
use clickhouse::Row;
use serde::Serialize;

use rf_pipelines::Settings;
use rf_schemas::benchmark::{self, Member};

use crate::JobError;

/// What a computation did.
#[derive(Debug, Serialize)]
pub struct Run {
    /// Its id: when it ran, ms.
    pub run: u64,
    /// The local days it covered, `[from, to)`.
    pub from: NaiveDate,
    /// The end (exclusive).
    pub to: NaiveDate,
    /// Tenants that opted in and had final days in the period.
    pub contributors: usize,
    /// (cohort, metric) pairs published.
    pub published: usize,
    /// (cohort, metric) pairs held back by the disclosure rule.
    pub suppressed: usize,
}

#[derive(Row, Serialize)]
struct CohortRow<'a> {
    run: u64,
    industry: &'a str,
    region: &'a str,
    kind: &'a str,
    metric: &'a str,
    tenants: u32,
    p25: f64,
    p50: f64,
    p75: f64,
}

/// Computes the benchmarks over the `days` local days before `today` and publishes them
/// as a new run.
pub async fn compute(settings: &Settings, days: u32, today: NaiveDate) -> Result<Run, JobError> {
    if !(7..=366).contains(&days) {
        return Err(JobError::Invalid(
            "--days: must be between 7 and 366".into(),
        ));
    }
    let from = today - chrono::Days::new(u64::from(days));
    let registry = crate::tenant::registry(&settings.kafka)?;
    let mut members = Vec::new();
    for (tenant, config) in &registry {
        if config.is_deleted() || config.benchmarks_opt_in_ms.is_none() {
            continue;
        }
        let Some(region) = settings.region(&config.region) else {
            tracing::warn!(%tenant, region = %config.region, "benchmarks: the tenant's region is not configured; left out");
            continue;
        };
        let client = rf_sinks::clickhouse::client(&region.clickhouse);
        match rf_sinks::clickhouse::benchmark::slices(&client, tenant, (from, today)).await {
            Ok(slices) if !slices.is_empty() => members.push(Member {
                industry: benchmark::industry(&config.industry),
                slices,
            }),
            Ok(_) => {}
            // A tenant whose tables cannot be read is left out, not guessed.
            Err(error) => {
                tracing::warn!(%tenant, %error, "benchmarks: the tenant's days cannot be read; left out")
            }
        }
    }
    let published = benchmark::cohorts(&members, &format!("{from}/{today}"));
    let run = rf_schemas::unix_ms().max(0) as u64;
    let client = crate::platform(&settings.clickhouse).await?;
    let mut insert = client
        .clone()
        .with_database("rf_platform")
        .insert::<CohortRow>("benchmarks")
        .await?;
    for c in &published.cohorts {
        insert
            .write(&CohortRow {
                run,
                industry: &c.industry,
                region: &c.region,
                kind: &c.kind,
                metric: c.metric,
                tenants: c.tenants,
                p25: c.p25,
                p50: c.p50,
                p75: c.p75,
            })
            .await?;
    }
    insert.end().await?;
    // The run last: readers take the latest run, whose rows are all in by then.
    client
        .query(
            "INSERT INTO rf_platform.benchmark_runs \
             (run, computed_at, from_day, to_day, contributors, published, suppressed) \
             VALUES (?, toDateTime(?), toDate(?), toDate(?), ?, ?, ?)",
        )
        .bind(run)
        .bind(run / 1000)
        .bind(from.to_string())
        .bind(today.to_string())
        .bind(members.len() as u32)
        .bind(published.cohorts.len() as u32)
        .bind(published.suppressed as u32)
        .execute()
        .await?;
    Ok(Run {
        run,
        from,
        to: today,
        contributors: members.len(),
        published: published.cohorts.len(),
        suppressed: published.suppressed,
    })
}
