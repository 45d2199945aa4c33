//! `roomflow ask --eval FILE`: how often the built-in parser gets the plan exactly right.
//! The file holds JSON lines: first `{"now": …, "catalog": "catalog.json"}` (the time the
//! questions are asked at and the tenant's names, a path next to the file), then one
//! case a line: `{"q": …, "expect": <plan> | {"clarify": [ids]} | "out_of_scope",
//! "tags": [...]}`.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::catalog::Catalog;
use super::parse::{parse, Understood};
use super::plan::Plan;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    now: DateTime<Utc>,
    catalog: String,
}

/// What a case expects.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Expect {
    /// Exactly this plan.
    Plan(Box<Plan>),
    /// A question back offering exactly these ids.
    Clarify {
        /// The ids offered, in any order.
        clarify: Vec<String>,
    },
    /// `"out_of_scope"`.
    Refused(String),
}

/// One question and what it should become.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The question.
    pub q: String,
    /// The expected outcome.
    pub expect: Expect,
    /// What the case exercises: `typo`, `relative-date`, `ambiguous`, …
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A case the parser got wrong.
#[derive(Debug)]
pub struct Failure {
    /// Its line in the file.
    pub line: usize,
    /// The question.
    pub question: String,
    /// What was expected, as JSON.
    pub expected: String,
    /// What the parser made of it, as JSON.
    pub got: String,
}

/// The evaluation's result.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases.
    pub cases: usize,
    /// Cases right.
    pub right: usize,
    /// Per tag: (right, cases).
    pub by_tag: BTreeMap<String, (usize, usize)>,
    /// What went wrong.
    pub failures: Vec<Failure>,
    /// Mean and largest parse time, microseconds.
    pub parse_micros: (f64, f64),
}

impl Report {
    /// The share of cases right.
    pub fn accuracy(&self) -> f64 {
        if self.cases == 0 {
            0.0
        } else {
            self.right as f64 / self.cases as f64
        }
    }
}

/// Whether `got` is what `expect` asks for.
pub fn matches(expect: &Expect, got: &Understood) -> bool {
    match (expect, got) {
        (Expect::Plan(e), Understood::Plan { plan, .. }) => **e == *plan,
        (Expect::Clarify { clarify }, Understood::Clarify { options, .. }) => {
            let (mut a, mut b) = (clarify.clone(), options.clone());
            a.sort();
            b.sort();
            a == b
        }
        (Expect::Refused(s), Understood::OutOfScope { .. }) => s == "out_of_scope",
        _ => false,
    }
}

/// An evaluation file: when its questions are asked, the tenant's names, the cases
/// with their lines.
pub type Loaded = (DateTime<Utc>, Catalog, Vec<(usize, Case)>);

/// Reads an evaluation file and its catalog.
pub fn load(file: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("//"));
    let (_, first) = lines
        .next()
        .ok_or_else(|| format!("{}: empty", file.display()))?;
    let header: Header = serde_json::from_str(first).map_err(|e| {
        format!(
            "{} line 1: the header {{\"now\", \"catalog\"}}: {e}",
            file.display()
        )
    })?;
    let catalog_path = file
        .parent()
        .unwrap_or(Path::new("."))
        .join(&header.catalog);
    let catalog_text = std::fs::read_to_string(&catalog_path)
        .map_err(|e| format!("{}: {e}", catalog_path.display()))?;
    let mut catalog: Catalog = serde_json::from_str(&catalog_text)
        .map_err(|e| format!("{}: {e}", catalog_path.display()))?;
    catalog.index();
    let mut cases = Vec::new();
    for (i, line) in lines {
        let case: Case = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: {e}", file.display(), i + 1))?;
        if let Expect::Plan(plan) = &case.expect {
            plan.validate(&catalog).map_err(|e| {
                format!(
                    "{} line {}: the expected plan is invalid: {e}",
                    file.display(),
                    i + 1
                )
            })?;
        }
        if let Expect::Refused(s) = &case.expect {
            if s != "out_of_scope" {
                return Err(format!(
                    "{} line {}: expect a plan, {{\"clarify\": […]}} or \"out_of_scope\"",
                    file.display(),
                    i + 1
                ));
            }
        }
        cases.push((i + 1, case));
    }
    Ok((header.now, catalog, cases))
}

/// Parses every case of `file` and compares.
pub fn evaluate(file: &Path) -> Result<Report, String> {
    let (now, catalog, cases) = load(file)?;
    let mut report = Report::default();
    let (mut total, mut most) = (0.0_f64, 0.0_f64);
    for (line, case) in cases {
        let started = std::time::Instant::now();
        let got = parse(&case.q, &catalog, now);
        let micros = started.elapsed().as_secs_f64() * 1e6;
        total += micros;
        most = most.max(micros);
        let right = matches(&case.expect, &got);
        report.cases += 1;
        report.right += usize::from(right);
        for tag in &case.tags {
            let entry = report.by_tag.entry(tag.clone()).or_default();
            entry.0 += usize::from(right);
            entry.1 += 1;
        }
        if !right {
            let expected = match &case.expect {
                Expect::Plan(p) => serde_json::to_string(p),
                Expect::Clarify { clarify } => {
                    serde_json::to_string(&serde_json::json!({ "clarify": clarify }))
                }
                Expect::Refused(s) => serde_json::to_string(s),
            }
            .unwrap_or_default();
            report.failures.push(Failure {
                line,
                question: case.q.clone(),
                expected,
                got: serde_json::to_string(&got).unwrap_or_default(),
            });
        }
    }
    if report.cases > 0 {
        report.parse_micros = (total / report.cases as f64, most);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_parser_gets_95_percent_of_the_plans_right() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/ask"));
        let mut cases = 0;
        for file in [
            "questions.jsonl",
            "heldout.jsonl",
            "round2.jsonl",
            "round3.jsonl",
            "round4.jsonl",
        ] {
            let report = evaluate(&dir.join(file)).unwrap();
            cases += report.cases;
            assert!(
                report.accuracy() >= 0.95,
                "{file}: {:.1}% right; failed: {:#?}",
                report.accuracy() * 100.0,
                report.failures
            );
            if file == "questions.jsonl" {
                for tag in [
                    "typo",
                    "relative-date",
                    "ambiguous",
                    "out-of-scope",
                    "compare",
                ] {
                    assert!(
                        report.by_tag.get(tag).is_some_and(|(_, n)| *n >= 5),
                        "{file}: few {tag} cases"
                    );
                }
            }
        }
        assert!(cases >= 150, "{cases} questions");
    }

    #[test]
    fn a_case_counts_only_when_its_whole_plan_is_right() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/ask"));
        let (now, catalog, cases) = load(&dir.join("questions.jsonl")).unwrap();
        let (_, case) = &cases[0];
        let got = parse(&case.q, &catalog, now);
        assert!(matches(&case.expect, &got));
        let Understood::Plan {
            mut plan,
            confidence,
            notes,
        } = got
        else {
            panic!("a plan")
        };
        plan.period = Some(super::super::dates::Period::LastWeek);
        assert!(!matches(
            &case.expect,
            &Understood::Plan {
                plan,
                confidence,
                notes
            }
        ));
        assert!(!matches(
            &case.expect,
            &Understood::OutOfScope {
                message: String::new(),
                settled: false
            }
        ));
    }
}
