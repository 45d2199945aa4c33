//! A report as CSV (every office's days) and as one self-contained HTML page with SVG
//! charts, fit to open from an email: no script, no external file.

use std::fmt::Write;

use chrono::DateTime;

use super::{Report, RoomUse};

fn day(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Quotes a CSV field when it needs it.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per office and day:
/// `date,office_id,office_name,rooms_reporting,capacity,avg_people,peak_people,utilization`.
pub fn csv(report: &Report) -> String {
    let mut out = String::from(
        "date,office_id,office_name,rooms_reporting,capacity,avg_people,peak_people,utilization\n",
    );
    for d in &report.days {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.3},{:.3},{:.4}",
            day(d.day),
            field(&d.office_id),
            field(report.office_name(&d.office_id)),
            d.rooms_reporting,
            d.capacity,
            d.avg_people,
            d.peak_people,
            d.utilization
        );
    }
    out
}

const WIDTH: f64 = 640.0;

/// The weekly utilization trend: a line over the weeks, with a labelled axis.
fn trend_svg(weeks: &[(i64, f64)]) -> String {
    let height = 180.0;
    let (left, bottom, top) = (40.0, 24.0, 10.0);
    let max = weeks.iter().map(|w| w.1).fold(0.0_f64, f64::max).max(0.05);
    let step = if weeks.len() > 1 {
        (WIDTH - left - 10.0) / (weeks.len() - 1) as f64
    } else {
        0.0
    };
    let y = |v: f64| top + (height - top - bottom) * (1.0 - v / max);
    let points: Vec<String> = weeks
        .iter()
        .enumerate()
        .map(|(i, (_, v))| format!("{:.1},{:.1}", left + i as f64 * step, y(*v)))
        .collect();
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" aria-label="Weekly utilization">"##
    );
    for v in [0.0, max / 2.0, max] {
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{WIDTH}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{x}" y="{ty:.1}" font-size="10" text-anchor="end" fill="#555">{label}</text>"##,
            y = y(v),
            x = left - 4.0,
            ty = y(v) + 3.0,
            label = pct(v)
        );
    }
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="#2b6cb0" stroke-width="2" points="{}"/>"##,
        points.join(" ")
    );
    for (i, (start, v)) in weeks.iter().enumerate() {
        let x = left + i as f64 * step;
        let _ = write!(
            svg,
            r##"<circle cx="{x:.1}" cy="{:.1}" r="3" fill="#2b6cb0"><title>week of {}: {}</title></circle>"##,
            y(*v),
            day(*start),
            pct(*v)
        );
    }
    if let (Some(first), Some(last)) = (weeks.first(), weeks.last()) {
        let _ = write!(
            svg,
            r##"<text x="{left}" y="{}" font-size="10" fill="#555">{}</text><text x="{WIDTH}" y="{}" font-size="10" text-anchor="end" fill="#555">{}</text>"##,
            height - 6.0,
            day(first.0),
            height - 6.0,
            day(last.0)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The hour-of-week heatmap: 7 rows (Monday first) of 24 hours, darker when busier.
fn heatmap_svg(cells: &[[Option<f64>; 24]; 7]) -> String {
    let (left, top, cell) = (36.0, 16.0, 24.0);
    let max = cells
        .iter()
        .flatten()
        .flatten()
        .fold(0.0_f64, |a, b| a.max(*b))
        .max(0.01);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" aria-label="Utilization by hour of the week">"##,
        left + 24.0 * cell,
        top + 7.0 * cell
    );
    for h in (0..24).step_by(3) {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="11" font-size="10" fill="#555">{h:02}</text>"##,
            left + h as f64 * cell + 4.0
        );
    }
    for (d, name) in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .iter()
        .enumerate()
    {
        let y = top + d as f64 * cell;
        let _ = write!(
            svg,
            r##"<text x="0" y="{:.1}" font-size="10" fill="#555">{name}</text>"##,
            y + 15.0
        );
        for (h, value) in cells[d].iter().enumerate() {
            let x = left + h as f64 * cell;
            let (fill, title) = match *value {
                Some(v) => {
                    // From a pale to a deep blue as the hour fills.
                    let t = (v / max).clamp(0.0, 1.0);
                    let c = |pale: f64, deep: f64| (pale + (deep - pale) * t).round() as u8;
                    (
                        format!(
                            "#{:02x}{:02x}{:02x}",
                            c(235.0, 26.0),
                            c(244.0, 82.0),
                            c(255.0, 160.0)
                        ),
                        format!("{name} {h:02}:00 {}", pct(v)),
                    )
                }
                None => ("#f5f5f5".to_string(), format!("{name} {h:02}:00 no data")),
            };
            let _ = write!(
                svg,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{w}" height="{w}" fill="{fill}"><title>{title}</title></rect>"##,
                w = cell - 2.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn rooms_table(rooms: &[RoomUse], savings: f64) -> String {
    let mut t = String::from(
        "<table><tr><th>Room</th><th>Office</th><th>Capacity</th><th>Utilization</th><th>Monthly cost</th></tr>",
    );
    for r in rooms {
        let cost = r
            .monthly_cost
            .map_or_else(|| "–".to_string(), |c| format!("{c:.0}"));
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{cost}</td></tr>",
            esc(&r.name),
            esc(&r.office_id),
            r.capacity,
            pct(r.utilization)
        );
    }
    t.push_str("</table>");
    if savings > 0.0 {
        let _ = write!(
            t,
            "<p>Releasing or repurposing the rooms under {} would save about <b>{savings:.0}</b> a month.</p>",
            pct(super::UNDER_USED)
        );
    }
    t
}

/// The one-page HTML report.
pub fn html(report: &Report) -> String {
    let offices = match report.offices.len() {
        1 => "1 office".to_string(),
        n => format!("{n} offices"),
    };
    let (under_used, savings) = report.under_used();
    let busiest = report
        .days
        .iter()
        .map(|d| d.peak_people / d.capacity.max(1) as f64)
        .fold(0.0_f64, f64::max);
    format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:720px;margin:24px auto;color:#222}}
h1{{font-size:22px;margin-bottom:4px}}h2{{font-size:16px;margin-top:28px}}.sub{{color:#666;margin-top:0}}
.kpis{{display:flex;gap:24px}}.kpi b{{display:block;font-size:24px}}table{{border-collapse:collapse;width:100%;font-size:13px}}
th,td{{text-align:left;padding:4px 8px;border-bottom:1px solid #eee}}</style></head>
<body><h1>{title}</h1><p class="sub">{from} to {to} · {offices} · generated by roomflow</p>
<div class="kpis"><div class="kpi"><b>{mean}</b>mean utilization</div><div class="kpi"><b>{busiest}</b>busiest day's peak</div><div class="kpi"><b>{rooms}</b>rooms under {under}</div></div>
<h2>Weekly utilization</h2>{trend}
<h2>When the space is used (hour of the week, office time)</h2>{heatmap}
<h2>Least-used rooms</h2>{table}
<p class="sub">Utilization is people over capacity, all hours; a room's day counts when it reported.</p>
</body></html>
"##,
        title = esc(&format!("Space utilization: {}", report.display_name)),
        from = day(report.from),
        to = day(report.to - 1),
        mean = pct(report.mean_utilization()),
        busiest = pct(busiest),
        rooms = under_used,
        under = pct(super::UNDER_USED),
        trend = trend_svg(&report.weeks()),
        heatmap = heatmap_svg(&report.heatmap),
        table = rooms_table(
            &report.rooms[..report.rooms.len().min(super::LISTED_ROOMS)],
            savings
        ),
    )
}
