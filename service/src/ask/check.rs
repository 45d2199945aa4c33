//! The fact check: every number an answer says must be in the result it was computed
//! from. Strings of the result (names, dates, labels) are taken out of the answer first;
//! each number left must equal a number of the result as shown: itself, or as a
//! percentage, rounded to the digits shown.

/// The numbers of `text` that are not in `result`, as written.
pub fn unsupported(text: &str, result: &serde_json::Value) -> Vec<String> {
    let mut strings = Vec::new();
    let mut numbers = Vec::new();
    collect(result, &mut strings, &mut numbers);
    // Longest first, so "Room 4.12" goes before "4".
    strings.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut rest = text.to_owned();
    for s in strings
        .iter()
        .filter(|s| s.chars().any(|c| c.is_ascii_digit()))
    {
        rest = rest.replace(*s, " ");
    }
    said(&rest)
        .into_iter()
        .filter(|n| !numbers.iter().any(|&v| n.shows(v)))
        .map(|n| n.text)
        .collect()
}

fn collect<'a>(value: &'a serde_json::Value, strings: &mut Vec<&'a str>, numbers: &mut Vec<f64>) {
    match value {
        serde_json::Value::String(s) => strings.push(s),
        serde_json::Value::Number(n) => numbers.extend(n.as_f64()),
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, strings, numbers)),
        serde_json::Value::Object(o) => o.values().for_each(|v| collect(v, strings, numbers)),
        _ => {}
    }
}

/// A number as an answer wrote it.
#[derive(Debug)]
struct Said {
    text: String,
    value: f64,
    decimals: i32,
}

impl Said {
    /// Whether `v` of the result, shown with this many decimals (as a percentage when
    /// the text says %), is this number.
    fn shows(&self, v: f64) -> bool {
        let round = |x: f64| {
            let scale = 10f64.powi(self.decimals);
            (x * scale).round() / scale
        };
        let close = |x: f64| (round(x) - self.value).abs() < 1e-9;
        // 0.43 shows as 43%, and a count as itself, with or without a %.
        close(v) || close(v * 100.0)
    }
}

/// The numbers in `text`: digits with thousands commas and a decimal point, and a % after.
fn said(text: &str) -> Vec<Said> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit()
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '.'));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut digits = String::new();
        let mut decimals = 0;
        let mut point = false;
        while j < chars.len() {
            let c = chars[j];
            let next_digit = chars.get(j + 1).is_some_and(char::is_ascii_digit);
            if c.is_ascii_digit() {
                digits.push(c);
                if point {
                    decimals += 1;
                }
            } else if c == ',' && next_digit && !point {
                // A thousands separator.
            } else if c == '.' && next_digit && !point {
                point = true;
                digits.push('.');
            } else {
                break;
            }
            j += 1;
        }
        let percent = chars.get(j) == Some(&'%');
        if let Ok(value) = digits.parse::<f64>() {
            out.push(Said {
                text: chars[i..j + usize::from(percent)].iter().collect(),
                value,
                decimals,
            });
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unsupported;
    use serde_json::json;

    #[test]
    fn numbers_of_the_result_pass_and_others_are_named() {
        let result = json!({
            "place": "Room 4.12", "period": "last month (1 Nov to 30 Nov 2026)",
            "mean": 0.4321, "days": 21, "saving": 34500.0, "peak": {"share": 0.815, "people": 97.6},
        });
        let good = "Room 4.12 was 43% utilized last month (1 Nov to 30 Nov 2026) over 21 days; \
                    peak 81.5% (98 people), saving 34,500 a month.";
        assert!(
            unsupported(good, &result).is_empty(),
            "{:?}",
            unsupported(good, &result)
        );
        let bad = "Room 4.12 was 44% utilized over 21 days, 12 of them busy, saving 34,501.";
        assert_eq!(unsupported(bad, &result), vec!["44%", "12", "34,501"]);
        // A number inside a word is no number; a name's own digits come out with it.
        assert!(unsupported("Q4 at Room 4.12", &result).is_empty());
    }
}
