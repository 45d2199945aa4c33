//! A series from a CSV file of `timestamp,value` rows, as `roomflow forecast` and
//! `roomflow detect` read it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::{DateTime, FixedOffset};

use rf_models::seasons;

/// One row as written.
pub struct Row {
    /// Its slot: steps since the epoch in the row's own wall-clock time (or its index,
    /// for months and quarters, whose lengths vary).
    pub slot: i64,
    pub value: f64,
    /// The timestamp as written.
    pub at: String,
}

/// A series read from a file.
pub struct Series {
    pub name: String,
    pub rows: Vec<Row>,
    /// The step, seconds (a month is 31 days, a quarter 92).
    pub step: i64,
    /// The zone of the last row, for forecast timestamps.
    pub offset: FixedOffset,
    /// The wall-clock seconds of the last row.
    pub last_wall: i64,
}

/// A step of at least this is a calendar step: rows are counted, not timed.
const CALENDAR: i64 = 28 * 86_400;

impl Series {
    /// Reads `timestamp,value` rows (a header line is skipped); timestamps are RFC 3339
    /// with a zone, their wall-clock time places them in the seasons. The step is
    /// `step` when given, else the commonest gap between rows.
    pub fn read(path: &Path, step: Option<i64>) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("--input {}", path.display()))?;
        let mut timed = Vec::new();
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
            let ts = DateTime::parse_from_rfc3339(ts.trim()).with_context(|| {
                format!("{}: timestamp {ts:?} is not RFC 3339 with a zone", at())
            })?;
            let value: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .with_context(|| format!("{}: value {value:?} is not a number", at()))?;
            offset = *ts.offset();
            let wall = ts.naive_local().and_utc().timestamp();
            timed.push((wall, value, ts.to_rfc3339()));
        }
        timed.sort_by_key(|r| r.0);
        timed.dedup_by_key(|r| r.0);
        if timed.is_empty() {
            bail!("--input {}: no rows", path.display());
        }
        let walls: Vec<i64> = timed.iter().map(|r| r.0).collect();
        let step = match step {
            Some(s) if s > 0 => s,
            Some(_) => bail!("--step must be positive"),
            None => seasons::step(&walls).with_context(|| {
                format!(
                    "--input {}: one row has no step; give --step",
                    path.display()
                )
            })?,
        };
        let last_wall = *walls.last().expect("not empty");
        let rows = timed
            .into_iter()
            .enumerate()
            .map(|(i, (wall, value, at))| Row {
                slot: if step >= CALENDAR {
                    i as i64
                } else {
                    wall.div_euclid(step)
                },
                value,
                at,
            })
            .collect();
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into(),
        );
        Ok(Self {
            name,
            rows,
            step,
            offset,
            last_wall,
        })
    }

    /// Every step from the first row to the last; a missing step carries the value
    /// before it.
    pub fn dense(&self) -> Vec<f64> {
        let (first, last) = (self.rows[0].slot, self.rows[self.rows.len() - 1].slot);
        let mut values = Vec::with_capacity((last - first + 1) as usize);
        let mut rows = self.rows.iter().peekable();
        let mut carried = self.rows[0].value;
        for slot in first..=last {
            while let Some(r) = rows.next_if(|r| r.slot <= slot) {
                carried = r.value;
            }
            values.push(carried);
        }
        values
    }

    /// The wall-clock seconds `steps` steps after the last row (months and quarters by
    /// calendar).
    pub fn wall_after(&self, steps: i64) -> Option<DateTime<FixedOffset>> {
        let last = DateTime::from_timestamp(self.last_wall, 0)?.naive_utc();
        let wall = if self.step >= CALENDAR {
            let months = if self.step >= 89 * 86_400 { 3 } else { 1 };
            last.checked_add_months(chrono::Months::new((months * steps) as u32))?
        } else {
            last + chrono::Duration::seconds(self.step * steps)
        };
        wall.and_local_timezone(self.offset).single()
    }
}

/// The CSV files of a folder, by name; or the one file given.
pub fn files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("--input {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "csv"));
    files.sort();
    if files.is_empty() {
        bail!("--input {}: no .csv files", path.display());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::Series;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("rf-{name}-{}.csv", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn steps_gaps_and_months() {
        let hourly = write(
            "hours",
            "timestamp,value\n2026-01-01T00:00:00+01:00,1\n2026-01-01T01:00:00+01:00,2\n2026-01-01T03:00:00+01:00,4\n",
        );
        let s = Series::read(&hourly, None).unwrap();
        assert_eq!(s.step, 3600);
        assert_eq!(s.dense(), vec![1.0, 2.0, 2.0, 4.0]);
        assert_eq!(
            s.wall_after(1).unwrap().to_rfc3339(),
            "2026-01-01T04:00:00+01:00"
        );
        let monthly = write(
            "months",
            "timestamp,value\n2026-01-01T00:00:00Z,1\n2026-02-01T00:00:00Z,2\n2026-03-01T00:00:00Z,3\n",
        );
        let s = Series::read(&monthly, None).unwrap();
        assert_eq!(s.dense(), vec![1.0, 2.0, 3.0]);
        assert_eq!(
            s.wall_after(2).unwrap().to_rfc3339(),
            "2026-05-01T00:00:00+00:00"
        );
        let bad = write("bad", "timestamp,value\n2026-01-01,1\n");
        let error = Series::read(&bad, None).err().unwrap().to_string();
        assert!(
            error.contains("line 2") && error.contains("RFC 3339"),
            "{error}"
        );
        for p in [hourly, monthly, bad] {
            std::fs::remove_file(p).unwrap();
        }
    }
}
