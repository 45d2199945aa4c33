//! `roomflow forecast` and `roomflow detect`: the pipeline's forecaster and anomaly
//! baseline (`rf_operators::forecast`, `rf_operators::analyze::baseline`) over a CSV
//! series, learning exactly as the pipeline does; and `roomflow simulate --series`: a
//! simulated office's hourly occupancy as such a series.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use chrono::{DateTime, FixedOffset};

use rf_jobs::simulate::{Fleet, FleetSpec};
use rf_operators::analyze::baseline;
use rf_operators::forecast::{mase, Forecaster};

/// What `roomflow forecast` was asked.
pub struct ForecastOptions<'a> {
    pub input: &'a Path,
    pub horizon: usize,
    pub period: usize,
    pub step_secs: i64,
    pub holdout: usize,
    /// The least spread an outlier is clipped at, as the pipeline's (see `detect`).
    pub floor: f64,
}

/// One row: its slot (steps since the epoch, in the row's own wall-clock time) and value.
struct Row {
    slot: i64,
    value: f64,
    /// The timestamp as written.
    at: String,
}

/// Reads `timestamp,value` rows (a header line is skipped); timestamps are RFC 3339 with
/// a zone, their wall-clock time places them in the season.
fn read(path: &Path, step_secs: i64) -> anyhow::Result<(Vec<Row>, FixedOffset)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--input {}", path.display()))?;
    let mut rows = Vec::new();
    let mut offset = FixedOffset::east_opt(0).expect("UTC");
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.starts_with("timestamp")) {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let (ts, value) = line
            .split_once(',')
            .with_context(|| format!("{}: expected timestamp,value", at()))?;
        let ts = DateTime::parse_from_rfc3339(ts.trim())
            .with_context(|| format!("{}: timestamp {ts:?} is not RFC 3339 with a zone", at()))?;
        let value: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .with_context(|| format!("{}: value {value:?} is not a number", at()))?;
        offset = *ts.offset();
        let wall = ts.naive_local().and_utc().timestamp();
        rows.push(Row {
            slot: wall.div_euclid(step_secs),
            value,
            at: ts.to_rfc3339(),
        });
    }
    rows.sort_by_key(|r| r.slot);
    if rows.is_empty() {
        bail!("--input {}: no rows", path.display());
    }
    Ok((rows, offset))
}

/// Prints the forecast of the `horizon` steps after the series, or with `holdout`, how
/// well the forecaster and the seasonal-naive forecast did on the last seasons.
pub fn forecast(o: &ForecastOptions<'_>) -> anyhow::Result<()> {
    if o.horizon == 0 || o.period < 2 || o.step_secs <= 0 {
        bail!("--horizon must be at least 1, --period at least 2 and --step positive");
    }
    let (rows, offset) = read(o.input, o.step_secs)?;
    let mut out = std::io::stdout().lock();
    if o.holdout > 0 {
        let (model, naive) = evaluate(&rows, o)?;
        writeln!(
            out,
            "held out {} seasons of {} steps, each forecast from everything before it",
            o.holdout, o.period
        )?;
        writeln!(out, "MASE forecaster      {model:.3}")?;
        writeln!(out, "MASE seasonal naive  {naive:.3}")?;
        return Ok(());
    }
    let mut model = Forecaster::new(o.period);
    for r in &rows {
        model.observe_robust(r.slot, r.value, o.floor);
    }
    writeln!(out, "timestamp,forecast,low,high")?;
    for f in model.forecast(o.horizon) {
        let wall = DateTime::from_timestamp(f.slot * o.step_secs, 0)
            .context("a time out of range")?
            .naive_utc();
        let ts = wall
            .and_local_timezone(offset)
            .single()
            .context("a time out of range")?;
        writeln!(
            out,
            "{},{:.3},{:.3},{:.3}",
            ts.to_rfc3339(),
            f.mean,
            f.low,
            f.high
        )?;
    }
    Ok(())
}

/// What `roomflow detect` was asked.
pub struct DetectOptions<'a> {
    pub input: &'a Path,
    pub period: usize,
    pub step_secs: i64,
    pub floor: f64,
}

/// Prints each row judged against what the series had shown before it, as the pipeline
/// judges a closed hour: `timestamp,value,expected,low,high,score,label`, the label
/// `warmup` (no whole season seen yet), `normal`, or the severity of an anomaly.
pub fn detect(o: &DetectOptions<'_>) -> anyhow::Result<()> {
    if o.period < 2 || o.step_secs <= 0 || o.floor.is_nan() || o.floor <= 0.0 {
        bail!("--period must be at least 2, --step and --floor positive");
    }
    let (rows, _) = read(o.input, o.step_secs)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "timestamp,value,expected,low,high,score,label")?;
    for (r, judged) in rows.iter().zip(judge(&rows, o.period, o.floor)) {
        match judged {
            None => writeln!(out, "{},{},,,,,warmup", r.at, r.value)?,
            Some(j) => writeln!(
                out,
                "{},{},{:.3},{:.3},{:.3},{:.3},{}",
                r.at,
                r.value,
                j.expected,
                j.low,
                j.high,
                j.score,
                j.severity.map_or("normal", |s| s.label())
            )?,
        }
    }
    Ok(())
}

/// Each row judged against the rows before it, then learnt from.
fn judge(rows: &[Row], period: usize, floor: f64) -> Vec<Option<baseline::Judgement>> {
    let mut model = Forecaster::new(period);
    rows.iter()
        .map(|r| baseline::judge_and_learn(&mut model, r.slot, r.value, floor))
        .collect()
}

/// Splits the last `holdout` seasons off and forecasts each from everything before it;
/// returns the MASE of the forecaster and of the seasonal-naive forecast.
fn evaluate(rows: &[Row], o: &ForecastOptions<'_>) -> anyhow::Result<(f64, f64)> {
    let (first, last) = (rows[0].slot, rows[rows.len() - 1].slot);
    // A dense series: a missing step counts as the step before.
    let mut values = vec![0.0; (last - first + 1) as usize];
    let mut at = rows.iter().peekable();
    let mut carried = rows[0].value;
    for (i, v) in values.iter_mut().enumerate() {
        while let Some(r) = at.next_if(|r| r.slot <= first + i as i64) {
            carried = r.value;
        }
        *v = carried;
    }
    let held = o.holdout * o.period;
    if values.len() < held + 2 * o.period {
        bail!(
            "--holdout {}: the series has {} steps; it needs at least {} (two seasons to learn from)",
            o.holdout,
            values.len(),
            held + 2 * o.period
        );
    }
    let train = values.len() - held;
    let mut model = Forecaster::new(o.period);
    let (mut predicted, mut naive) = (Vec::new(), Vec::new());
    for (i, v) in values[..train].iter().enumerate() {
        model.observe_robust(first + i as i64, *v, o.floor);
    }
    for season in 0..o.holdout {
        let start = train + season * o.period;
        predicted.extend(model.forecast(o.period).iter().map(|f| f.mean));
        naive.extend_from_slice(&values[start - o.period..start]);
        for (i, v) in values[start..start + o.period].iter().enumerate() {
            model.observe_robust(first + (start + i) as i64, *v, o.floor);
        }
    }
    let actual = &values[train..];
    let history = &values[..train];
    let score = |f: &[f64]| {
        mase(actual, f, history, o.period)
            .context("the history does not change from one season to the next")
    };
    Ok((score(&predicted)?, score(&naive)?))
}

/// Writes the first tenant's first office's occupancy, people averaged over each hour
/// (sampled every 15 minutes) from `from` to `to` (ms), as `timestamp,value` in the
/// office's time zone.
pub fn series(spec: &FleetSpec, from: i64, to: i64, path: &Path) -> anyhow::Result<()> {
    let fleet = Fleet::new(spec);
    let Some((_, rooms)) = fleet.tenants.first() else {
        bail!("--tenants: none given");
    };
    let office = &rooms[0].version.office_id;
    let rooms: Vec<_> = rooms
        .iter()
        .filter(|r| &r.version.office_id == office)
        .collect();
    let zone = rooms[0].version.timezone;
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("--series {}", path.display()))?,
    );
    writeln!(file, "timestamp,value")?;
    let hour = 3_600_000;
    let mut t = from - from.rem_euclid(hour);
    while t < to {
        let people: i64 = (0..4)
            .flat_map(|q| rooms.iter().map(move |r| (r, t + q * 900_000)))
            .map(|(r, at)| i64::from(fleet.people(r, at)))
            .sum();
        let local = DateTime::from_timestamp_millis(t)
            .context("a time out of range")?
            .with_timezone(&zone);
        writeln!(file, "{},{:.2}", local.to_rfc3339(), people as f64 / 4.0)?;
        t += hour;
    }
    file.flush()?;
    println!(
        "wrote {} hours of office {office} ({} rooms, {zone}) to {}",
        (to - from) / hour,
        rooms.len(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{evaluate, judge, read, series, ForecastOptions, Row};
    use rf_jobs::simulate::FleetSpec;
    use rf_operators::Severity;

    /// Twelve weeks (2026-06-01 to 2026-08-24) of a simulated office, hourly.
    fn office(name: &str) -> Vec<Row> {
        let path = std::env::temp_dir().join(format!("rf-{name}-{}.csv", std::process::id()));
        let spec = FleetSpec {
            tenants: vec!["acme".parse().unwrap()],
            offices: 2,
            rooms: 120,
            seed: 4,
        };
        series(&spec, 1_780_272_000_000, 1_787_529_600_000, &path).unwrap();
        let (rows, _) = read(&path, 3600).unwrap();
        std::fs::remove_file(&path).unwrap();
        rows
    }

    #[test]
    fn an_empty_office_on_a_weekday_morning_stands_out_and_usual_hours_do_not() {
        let mut rows = office("detect");
        // Tuesday of week 11, 10:00 and 11:00: nobody came.
        let outage = [10 * 168 + 24 + 10, 10 * 168 + 24 + 11];
        for i in outage {
            assert!(rows[i].value > 20.0, "a busy hour: {}", rows[i].at);
            rows[i].value = 0.0;
        }
        let judged = judge(&rows, 168, 0.5);
        assert!(
            judged[..168].iter().all(Option::is_none),
            "a week of warm-up"
        );
        for i in outage {
            let j = judged[i].unwrap();
            assert_eq!(j.severity, Some(Severity::High), "{}: {j:?}", rows[i].at);
        }
        let others = judged
            .iter()
            .enumerate()
            .filter(|(i, j)| !outage.contains(i) && j.is_some_and(|j| j.severity.is_some()))
            .count();
        assert!(
            others * 100 <= 3 * (rows.len() - 168),
            "{others} other anomalies"
        );
    }

    #[test]
    fn the_forecaster_beats_last_week_on_a_simulated_office() {
        let path = std::env::temp_dir().join(format!("rf-series-{}.csv", std::process::id()));
        let options = ForecastOptions {
            input: &path,
            horizon: 168,
            period: 168,
            step_secs: 3600,
            holdout: 4,
            floor: 0.5,
        };
        let rows = office("series");
        assert_eq!(rows.len(), 12 * 168);
        let (model, naive) = evaluate(&rows, &options).unwrap();
        assert!(
            model < 0.9 * naive,
            "forecaster {model}, seasonal naive {naive}"
        );
    }
}
