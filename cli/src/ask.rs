//! `roomflow ask`: a question in plain language, answered from the tenant's own numbers;
//! `--eval FILE` scores the built-in parser on a file of questions and expected plans.

use std::path::PathBuf;

use clap::Args;

/// The arguments of `roomflow ask`.
#[derive(Args)]
pub struct AskArgs {
    /// The question, e.g. "Which meeting rooms in EMEA were under 20% last month?".
    question: Option<String>,
    /// The tenant whose data answers it.
    #[arg(long)]
    tenant: Option<String>,
    /// Score the built-in parser on a file of questions and expected plans (JSON lines,
    /// see testdata/ask/questions.jsonl); prints plan accuracy and every failed case.
    /// Needs no stack.
    #[arg(long, conflicts_with_all = ["question", "tenant"])]
    eval: Option<PathBuf>,
    /// With --eval: exit non-zero when fewer than this share of plans is right.
    #[arg(long, default_value_t = 0.95, requires = "eval")]
    min_accuracy: f64,
    /// Print the whole answer (plan, result, references) as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `roomflow ask --eval`.
fn eval(file: &std::path::Path, min_accuracy: f64) -> anyhow::Result<()> {
    let report =
        rf_service::ask::eval::evaluate(file).map_err(|e| anyhow::anyhow!("--eval: {e}"))?;
    for f in &report.failures {
        println!("FAILED line {}: {}", f.line, f.question);
        println!("  expected {}", f.expected);
        println!("  got      {}", f.got);
    }
    println!();
    for (tag, (right, cases)) in &report.by_tag {
        println!("  {tag:<16} {right:>3} / {cases:<3} right");
    }
    println!(
        "plan accuracy: {} of {} questions ({:.1}%); parse time mean {:.0} µs, max {:.0} µs",
        report.right,
        report.cases,
        report.accuracy() * 100.0,
        report.parse_micros.0,
        report.parse_micros.1
    );
    if report.accuracy() < min_accuracy {
        anyhow::bail!(
            "plan accuracy {:.1}% is under --min-accuracy {:.1}%",
            report.accuracy() * 100.0,
            min_accuracy * 100.0
        );
    }
    Ok(())
}

/// Runs `roomflow ask`.
pub fn run(config: &crate::config::Config, args: AskArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.eval {
        return eval(file, args.min_accuracy);
    }
    let tenant = args.tenant.as_deref().ok_or_else(|| {
        anyhow::anyhow!("--tenant: name the tenant whose data answers the question")
    })?;
    let tenant =
        rf_schemas::TenantId::parse(tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    let question = args
        .question
        .as_deref()
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("QUESTION: ask something, e.g. \"How busy is London on Tuesdays?\"")
        })?;
    if question.chars().count() > rf_service::ask::MAX_QUESTION {
        anyhow::bail!(
            "QUESTION: at most {} characters",
            rf_service::ask::MAX_QUESTION
        );
    }
    let subject = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    let body = crate::runtime()?
        .block_on(rf_service::ask_once(
            &config.service,
            &config.service_stores(),
            &tenant,
            &subject,
            question,
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    print!("{}", render(&body));
    Ok(())
}

/// The answer for a terminal: the sentence, the table, then how it was found.
fn render(body: &serde_json::Value) -> String {
    let mut out = format!("{}\n", body["answer"].as_str().unwrap_or(""));
    for option in body["options"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  - {} ({})\n",
            option["name"].as_str().unwrap_or(""),
            option["id"].as_str().unwrap_or("")
        ));
    }
    if let Some(table) = body["table"].as_object() {
        let columns: Vec<&str> = table["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        let rows: Vec<Vec<&str>> = table["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str())
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = (0..columns.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .chain([columns[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[&str]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        out.push('\n');
        out.push_str(&line(&columns));
        out.push('\n');
        for row in &rows {
            out.push_str(&line(row));
            out.push('\n');
        }
    }
    if let Some(plan) = body.get("plan").filter(|p| !p.is_null()) {
        out.push_str(&format!("\nplan: {plan}\n"));
    }
    if let Some(c) = body["confidence"].as_f64() {
        out.push_str(&format!("confidence: {c}\n"));
    }
    for note in body["notes"].as_array().into_iter().flatten() {
        out.push_str(&format!("note: {}\n", note.as_str().unwrap_or("")));
    }
    for r in body["references"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "from: GET {} ({})\n",
            r["endpoint"].as_str().unwrap_or(""),
            r["gives"].as_str().unwrap_or("")
        ));
    }
    out
}
