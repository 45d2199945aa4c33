//! Time and numbers in a question: the period ("last month", "the past 2 weeks", "in
//! October", "yesterday afternoon"), weekdays and hours, thresholds and list lengths.

use chrono::Datelike;

use super::dates::Period;
use super::parse::Parser;
use super::plan::WEEKDAYS;
use super::words::*;

impl Parser<'_> {
    /// The period, weekdays and hours.
    pub(super) fn times(&mut self) {
        let unit = |w: &str| match w.trim_end_matches('s') {
            "day" => Some('d'),
            "week" => Some('w'),
            "month" => Some('m'),
            _ => None,
        };
        for i in 0..self.words.len() {
            let (Some(two), three) = (self.gram(i, 2), self.gram(i, 3)) else {
                if let Some(one) = self.gram(i, 1) {
                    self.time_word(i, &one);
                }
                continue;
            };
            // "last 30 days", "past 2 weeks", "previous 3 months".
            if let Some(three) = three {
                let parts: Vec<&str> = three.split(' ').collect();
                if matches!(parts[0], "last" | "past" | "previous" | "recent") {
                    if let (Some(n), Some(u)) = (number(parts[1]), unit(parts[2])) {
                        self.period = Some(match u {
                            'd' => Period::Days(n),
                            'w' => Period::Weeks(n),
                            _ => Period::Months(n),
                        });
                        self.take(i, 3);
                        continue;
                    }
                }
            }
            let parts: Vec<&str> = two.split(' ').collect();
            let named = match (parts[0], parts[1]) {
                ("this" | "current", "week") => Some(Period::ThisWeek),
                ("this" | "current", "month") => Some(Period::ThisMonth),
                ("this" | "current", "quarter") => Some(Period::ThisQuarter),
                ("this" | "current", "year") => Some(Period::ThisYear),
                ("last" | "previous", "week") => Some(Period::LastWeek),
                ("last" | "previous", "month") => Some(Period::LastMonth),
                ("last" | "previous", "quarter") => Some(Period::LastQuarter),
                ("last" | "previous", "year") => Some(Period::LastYear),
                ("past", "week") => Some(Period::Days(7)),
                ("past", "month") => Some(Period::Days(30)),
                ("past", "year") => Some(Period::Days(365)),
                ("this", "morning") => {
                    self.when.hours = Some([8, 12]);
                    Some(Period::Today)
                }
                ("this", "afternoon") => {
                    self.when.hours = Some([12, 17]);
                    Some(Period::Today)
                }
                ("this", "evening") => {
                    self.when.hours = Some([17, 21]);
                    Some(Period::Today)
                }
                ("right", "now") => {
                    self.live = true;
                    Some(Period::Today)
                }
                ("next", "week" | "month" | "quarter" | "year") => {
                    self.future = true;
                    self.take(i, 2);
                    continue;
                }
                ("year", "to") if self.gram(i + 2, 1).as_deref() == Some("date") => {
                    self.take(i + 2, 1);
                    Some(Period::ThisYear)
                }
                _ => None,
            };
            if let Some(p) = named {
                self.period = Some(p);
                self.take(i, 2);
                continue;
            }
            // "between 9 and 11", "from 9am to 11am", "9 to 11".
            if let Some(span) = self.hour_span(i) {
                self.when.hours = Some(span);
                continue;
            }
            self.time_word(i, parts[0]);
        }
    }

    /// A lone word of time: "today", "tuesdays", "october", "afternoon".
    pub(super) fn time_word(&mut self, i: usize, word: &str) {
        let hours = match word.trim_end_matches('s') {
            "morning" => Some([8, 12]),
            "afternoon" => Some([12, 17]),
            "evening" => Some([17, 21]),
            "lunchtime" => Some([12, 14]),
            _ => None,
        };
        if let Some(h) = hours {
            self.when.hours = Some(h);
            self.take(i, 1);
            return;
        }
        match word {
            "today" => self.period = Some(Period::Today),
            "yesterday" => self.period = Some(Period::Yesterday),
            "tomorrow" => self.future = true,
            "currently" | "now" => {
                self.live = true;
                self.period = Some(Period::Today);
            }
            "ytd" => self.period = Some(Period::ThisYear),
            "weekdays" | "weekday" => {
                self.when.weekdays = WEEKDAYS[..5].iter().map(|d| (*d).to_owned()).collect();
            }
            "weekends" | "weekend" => {
                self.when.weekdays = WEEKDAYS[5..].iter().map(|d| (*d).to_owned()).collect();
            }
            w => {
                let day = w.trim_end_matches('s');
                if let Some(d) = DAYS.iter().position(|d| *d == day) {
                    let name = WEEKDAYS[d].to_owned();
                    if !self.when.weekdays.contains(&name) {
                        self.when.weekdays.push(name);
                    }
                } else if let Some(m) = MONTHS.iter().position(|m| *m == w) {
                    // "may" is a month only after "in"/"during"/"of".
                    let before = i.checked_sub(1).map(|j| self.words[j].text.as_str());
                    if w == "may" && !matches!(before, Some("in" | "during" | "of" | "for")) {
                        return;
                    }
                    let month = m as u32 + 1;
                    let today = self.now.date_naive();
                    let year = if month <= today.month() {
                        today.year()
                    } else {
                        today.year() - 1
                    };
                    self.period = Some(Period::Month(year, month));
                } else {
                    return;
                }
            }
        }
        self.take(i, 1);
    }

    /// Hours `[from, to)` said as "between 9 and 11", "from 9am to 2pm", "9-11".
    pub(super) fn hour_span(&mut self, i: usize) -> Option<[u8; 2]> {
        let hour = |w: &str| -> Option<u8> {
            let (n, pm) = match w.strip_suffix("pm") {
                Some(n) => (n, true),
                None => (w.strip_suffix("am").unwrap_or(w), false),
            };
            let h: u8 = n.parse().ok().or_else(|| number(n).map(|n| n as u8))?;
            let h = if pm && h < 12 { h + 12 } else { h };
            (h <= 24).then_some(h)
        };
        let words: Vec<String> = (i..(i + 4).min(self.words.len()))
            .map(|j| self.words[j].text.clone())
            .collect();
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        let (from, to, n) = match w.as_slice() {
            ["between" | "from", a, "and" | "to", b, ..] => (hour(a)?, hour(b)?, 4),
            [a, "to", b, ..] if a.ends_with('m') || b.ends_with('m') => (hour(a)?, hour(b)?, 3),
            [a, ..] if a.contains('-') => {
                let (x, y) = a.split_once('-')?;
                (hour(x)?, hour(y)?, 1)
            }
            _ => return None,
        };
        if self.words[i..i + n].iter().any(|w| w.used) {
            return None;
        }
        // "9 to 5": the afternoon hour is meant.
        let to = if to <= from && to < 12 { to + 12 } else { to };
        (from < to && to <= 24).then(|| {
            self.take(i, n);
            [from, to]
        })
    }

    /// Thresholds ("under 20%", "80 percent") and list lengths ("top 5").
    pub(super) fn numbers(&mut self) {
        for i in 0..self.words.len() {
            if self.words[i].used {
                continue;
            }
            let w = self.words[i].text.clone();
            let next = self.words.get(i + 1).map(|w| w.text.clone());
            if let Some(n) = w.strip_suffix('%').and_then(|n| n.parse::<f64>().ok()) {
                self.threshold = Some(n / 100.0);
                self.take(i, 1);
            } else if let (Some(n), Some("percent" | "per")) =
                (w.parse::<f64>().ok(), next.as_deref())
            {
                self.threshold = Some(n / 100.0);
                let extra = usize::from(self.gram(i + 2, 1).as_deref() == Some("cent"));
                self.take(i, 2 + extra);
            } else if let Some(n) = number(&w) {
                let before = i.checked_sub(1).map(|j| self.words[j].text.clone());
                let listy = matches!(before.as_deref(), Some("top" | "bottom" | "first"))
                    || next.as_deref().is_some_and(|n| {
                        matches!(
                            n,
                            "busiest"
                                | "quietest"
                                | "rooms"
                                | "offices"
                                | "most"
                                | "least"
                                | "emptiest"
                                | "worst"
                                | "best"
                                | "latest"
                                | "newest"
                                | "anomalies"
                                | "meetings"
                        )
                    });
                if listy && n >= 1 {
                    self.limit = Some(n);
                    self.take(i, 1);
                }
            }
        }
    }
}
