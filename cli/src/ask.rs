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
    let report = rf_service::ask::eval::evaluate(file).map_err(|e| anyhow::anyhow!("--eval: {e}"))?;
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
    let _ = (config, args.json, args.tenant, args.question);
    anyhow::bail!("not yet")
}
