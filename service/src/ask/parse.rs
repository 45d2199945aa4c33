//! The built-in parser: a question in English becomes a [`Plan`] with no network and no
//! model. It corrects typos against its own words and the tenant's names, finds the
//! places (offices, floors, rooms, regions, countries, kinds of room), the period and
//! the weekdays and hours, the numbers (thresholds, list lengths), then the intent by
//! the words left. A name that could be two places asks back; a question it cannot map
//! to an operation says what it can answer.

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

use super::catalog::{normalize, Catalog};
use super::dates::Period;
use super::plan::{Op, Order, Plan, Scope, When, WEEKDAYS};

/// What the parser made of a question.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Understood {
    /// A plan, with how sure the parser is (0 to 1) and what it read differently from
    /// what was typed.
    Plan {
        /// The plan.
        plan: Plan,
        /// 1 when every word was understood as typed; less for each correction.
        confidence: f64,
        /// Corrections and assumptions, for the person who asked.
        notes: Vec<String>,
    },
    /// A name fits more than one place: which one?
    Clarify {
        /// The question back.
        question: String,
        /// The candidates' ids.
        options: Vec<String>,
    },
    /// Not something roomflow's data answers.
    OutOfScope {
        /// Why, and what it can answer.
        message: String,
    },
}

/// What to say when a question is out of scope.
pub const CAN_ANSWER: &str = "I can answer questions about utilization and occupancy (\"How busy is London on Tuesdays?\"), \
comparisons (\"Compare New York and London this quarter\"), rankings of offices, under-used rooms \
(\"Which meeting rooms in EMEA were under 20% last month?\"), busiest hours, forecasts (\"When will Berlin pass 80% at peak?\"), \
anomalies and faulty sensors, rooms booked but empty, and seats against headcount.";

/// Words the parser knows; any other word near one of these is read as it.
const VOCABULARY: &[&str] = &[
    // intents
    "how",
    "busy",
    "busier",
    "busiest",
    "quiet",
    "quieter",
    "quietest",
    "utilization",
    "utilisation",
    "utilized",
    "utilised",
    "occupancy",
    "occupied",
    "full",
    "usage",
    "used",
    "average",
    "peak",
    "crowded",
    "packed",
    "empty",
    "emptiest",
    "compare",
    "comparison",
    "compared",
    "versus",
    "against",
    "difference",
    "between",
    "ranking",
    "rank",
    "ranked",
    "top",
    "bottom",
    "most",
    "least",
    "highest",
    "lowest",
    "under",
    "below",
    "less",
    "lower",
    "than",
    "above",
    "over",
    "more",
    "underused",
    "underutilized",
    "underutilised",
    "rarely",
    "barely",
    "hardly",
    "unused",
    "idle",
    "never",
    "heatmap",
    "pattern",
    "hour",
    "hours",
    "time",
    "times",
    "forecast",
    "forecasts",
    "predict",
    "predicted",
    "prediction",
    "expect",
    "expected",
    "going",
    "projected",
    "projection",
    "outlook",
    "pass",
    "exceed",
    "reach",
    "hit",
    "cross",
    "anomaly",
    "anomalies",
    "anomalous",
    "unusual",
    "faulty",
    "broken",
    "stuck",
    "malfunctioning",
    "strange",
    "weird",
    "outlier",
    "outliers",
    "sensor",
    "sensors",
    "offline",
    "spike",
    "spikes",
    "ghost",
    "ghosts",
    "booked",
    "booking",
    "bookings",
    "reserved",
    "reservation",
    "reservations",
    "nobody",
    "headcount",
    "employees",
    "staff",
    "seats",
    "seat",
    "desks",
    "desk",
    "need",
    "many",
    "spare",
    "reduce",
    "people",
    "rooms",
    "room",
    "offices",
    "office",
    "floor",
    "floors",
    "level",
    "meeting",
    "focus",
    "booths",
    "booth",
    "phone",
    "open",
    "space",
    "spaces",
    "collaboration",
    "collab",
    "portfolio",
    "overall",
    "company",
    "region",
    "regions",
    "country",
    "which",
    "what",
    "when",
    "where",
    "show",
    "list",
    "give",
    "tell",
    "were",
    "was",
    "is",
    "are",
    "will",
    "the",
    "last",
    "this",
    "past",
    "previous",
    "next",
    "today",
    "yesterday",
    "tomorrow",
    "week",
    "weeks",
    "month",
    "months",
    "quarter",
    "quarters",
    "year",
    "years",
    "days",
    "day",
    "morning",
    "mornings",
    "afternoon",
    "afternoons",
    "evening",
    "evenings",
    "lunchtime",
    "weekdays",
    "weekends",
    "weekend",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "mondays",
    "tuesdays",
    "wednesdays",
    "thursdays",
    "fridays",
    "saturdays",
    "sundays",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "percent",
    "capacity",
    "currently",
    "right",
    "now",
    "often",
    "most",
    "usually",
    "typically",
    "cancelled",
    "shows",
    "show",
    "meetings",
    "latest",
    "newest",
    "during",
    "recently",
    "utilisation",
    "temperature",
    "weather",
    "revenue",
    "salary",
    "salaries",
    "parking",
    "coffee",
    "energy",
    "electricity",
    "humidity",
    "noise",
    "every",
    "across",
    "whole",
];

/// Number words.
const NUMBERS: &[(&str, u32)] = &[
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("fifteen", 15),
    ("twenty", 20),
    ("thirty", 30),
    ("fifty", 50),
    ("ninety", 90),
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Kinds of room by the words people use.
const KIND_WORDS: &[(&str, &str)] = &[
    ("meeting rooms", "MEETING"),
    ("meeting room", "MEETING"),
    ("meeting", "MEETING"),
    ("conference rooms", "MEETING"),
    ("conference room", "MEETING"),
    ("focus rooms", "FOCUS"),
    ("focus room", "FOCUS"),
    ("focus booths", "FOCUS"),
    ("phone booths", "FOCUS"),
    ("booths", "FOCUS"),
    ("booth", "FOCUS"),
    ("desks", "DESK"),
    ("desk", "DESK"),
    ("hot desks", "DESK"),
    ("open spaces", "OPEN_SPACE"),
    ("open space", "OPEN_SPACE"),
    ("open plan", "OPEN_SPACE"),
    ("collaboration spaces", "COLLAB"),
    ("collaboration space", "COLLAB"),
    ("collab spaces", "COLLAB"),
    ("collaboration areas", "COLLAB"),
];

/// Region names by the words people use, when the tenant's regions are spelled so.
const REGION_WORDS: &[(&str, &str)] = &[
    ("europe", "emea"),
    ("european", "emea"),
    ("americas", "amer"),
    ("north america", "amer"),
    ("asia pacific", "apac"),
    ("asia", "apac"),
    ("apj", "apac"),
];

/// City nicknames.
const ALIASES: &[(&str, &str)] = &[
    ("nyc", "new york"),
    ("ny", "new york"),
    ("sf", "san francisco"),
    ("la", "los angeles"),
    ("dc", "washington"),
];

/// One word of the question.
#[derive(Clone, Debug)]
struct Word {
    /// Normalized (corrected, once corrected).
    text: String,
    /// Typed in capitals (country codes are only read so).
    upper: bool,
    /// Typed with a capital first letter, not first in the question: a name.
    capital: bool,
    /// Taken by a place, a time or a number.
    used: bool,
}

/// The optimal-string-alignment distance: edits, a swap of neighbours counting one.
fn distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

/// How far a word of this length may be from the one meant.
fn tolerance(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

struct Parser<'c> {
    catalog: &'c Catalog,
    now: DateTime<Utc>,
    words: Vec<Word>,
    notes: Vec<String>,
    confidence: f64,
    scope: Scope,
    period: Option<Period>,
    when: When,
    threshold: Option<f64>,
    limit: Option<u32>,
    /// A word of the places that fits several offices: (typed, office ids).
    ambiguous: Option<(String, Vec<String>)>,
    /// Offices named, by the position of their first word.
    office_at: Vec<(usize, String)>,
    /// A room name that fits several rooms: (name, (room, office) ids).
    room_choices: Option<(String, Vec<(String, String)>)>,
    /// Something said about the future ("tomorrow", "next week").
    future: bool,
    /// "right now", "currently".
    live: bool,
}

/// Understands `question` against the tenant's `catalog`, `now` being the time asked.
pub fn parse(question: &str, catalog: &Catalog, now: DateTime<Utc>) -> Understood {
    let mut p = Parser::new(question, catalog, now);
    if p.words.is_empty() {
        return Understood::OutOfScope {
            message: format!("Ask me something about your offices. {CAN_ANSWER}"),
        };
    }
    p.correct();
    p.places();
    if let Some((typed, options)) = p.ambiguous.take() {
        let names: Vec<String> = options
            .iter()
            .filter_map(|id| catalog.office(id).map(|o| o.name.clone()))
            .collect();
        return Understood::Clarify {
            question: format!("Which {typed} office: {}?", join_or(&names)),
            options,
        };
    }
    if let Some(room) = p.ambiguous_room() {
        return room;
    }
    p.times();
    p.numbers();
    p.intent()
}

fn join_or(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

impl<'c> Parser<'c> {
    fn new(question: &str, catalog: &'c Catalog, now: DateTime<Utc>) -> Self {
        let typed: Vec<&str> = question.split_whitespace().collect();
        let mut words = Vec::new();
        for (at, t) in typed.iter().take(60).enumerate() {
            let normalized = normalize(t);
            for piece in normalized.split(' ').filter(|p| !p.is_empty()) {
                let upper = t.chars().filter(|c| c.is_alphabetic()).count() >= 2
                    && t.chars()
                        .filter(|c| c.is_alphabetic())
                        .all(|c| c.is_uppercase());
                let capital = at > 0 && t.chars().next().is_some_and(char::is_uppercase);
                words.push(Word {
                    text: piece.to_owned(),
                    upper,
                    capital,
                    used: false,
                });
            }
        }
        Self {
            catalog,
            now,
            words,
            notes: Vec::new(),
            confidence: 1.0,
            scope: Scope::default(),
            period: None,
            when: When::default(),
            threshold: None,
            limit: None,
            ambiguous: None,
            room_choices: None,
            office_at: Vec::new(),
            future: false,
            live: false,
        }
    }

    /// The words of the tenant's names.
    fn name_words(&self) -> Vec<String> {
        let mut words: Vec<String> = Vec::new();
        for o in &self.catalog.offices {
            words.extend(normalize(&o.name).split(' ').map(str::to_owned));
            words.push(o.id.to_lowercase());
            words.push(o.region.to_lowercase());
        }
        for (_, names) in self.catalog.countries() {
            for n in names {
                words.extend(n.split(' ').map(str::to_owned));
            }
        }
        words.sort();
        words.dedup();
        words
    }

    /// Reads misspelt words as the nearest word the parser or the tenant knows.
    fn correct(&mut self) {
        let names = self.name_words();
        let known = |w: &str| {
            VOCABULARY.contains(&w)
                || names.binary_search_by(|n| n.as_str().cmp(w)).is_ok()
                || NUMBERS.iter().any(|(n, _)| *n == w)
                || MONTHS.contains(&w)
                || w.chars().any(|c| c.is_ascii_digit())
                || STOPWORDS.contains(&w)
        };
        for i in 0..self.words.len() {
            let w = self.words[i].text.clone();
            if known(&w) {
                continue;
            }
            let allowed = tolerance(w.chars().count());
            if allowed == 0 {
                continue;
            }
            let best = VOCABULARY
                .iter()
                .copied()
                .chain(MONTHS)
                .map(|v| (distance(&w, v), 0, v.to_owned()))
                .chain(names.iter().map(|n| (distance(&w, n), 1, n.clone())))
                .filter(|(d, _, v)| *d <= allowed && *d <= tolerance(v.chars().count()))
                .min();
            if let Some((_, _, fixed)) = best {
                self.notes.push(format!("read \"{w}\" as \"{fixed}\""));
                self.confidence *= 0.9;
                self.words[i].text = fixed;
            }
        }
    }

    /// The unused words from `i`, `n` of them, joined, if none is used.
    fn gram(&self, i: usize, n: usize) -> Option<String> {
        let words = self.words.get(i..i + n)?;
        if words.iter().any(|w| w.used) {
            return None;
        }
        Some(
            words
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    fn take(&mut self, i: usize, n: usize) {
        for w in &mut self.words[i..i + n] {
            w.used = true;
        }
    }

    fn has(&self, word: &str) -> bool {
        self.words.iter().any(|w| !w.used && w.text == word)
    }

    fn has_any(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.has(w))
    }

    /// Whether the unused words hold `phrase` (words in order, next to each other).
    fn phrase(&self, phrase: &str) -> bool {
        let n = phrase.split(' ').count();
        (0..self.words.len()).any(|i| self.gram(i, n).as_deref() == Some(phrase))
    }

    /// Offices, rooms, floors, kinds, regions and countries named in the question.
    fn places(&mut self) {
        let offices: Vec<(String, String)> = self
            .catalog
            .offices
            .iter()
            .map(|o| (normalize(&o.name), o.id.clone()))
            .collect();
        // Whole names, longest first: "berlin mitte" before "berlin".
        for n in (1..=4).rev() {
            for i in 0..self.words.len() {
                let Some(gram) = self.gram(i, n) else {
                    continue;
                };
                let gram = ALIASES
                    .iter()
                    .find(|(a, _)| *a == gram)
                    .map_or(gram.clone(), |(_, full)| (*full).to_owned());
                let exact: Vec<&String> = offices
                    .iter()
                    .filter(|(name, id)| *name == gram || id.to_lowercase() == gram)
                    .map(|(_, id)| id)
                    .collect();
                if let [id] = exact.as_slice() {
                    let id = (*id).clone();
                    self.add_office(i, id);
                    self.take(i, n);
                    continue;
                }
                // The first or last words of office names: "berlin" of "Berlin Mitte".
                let words = gram.split(' ').count();
                let partial: Vec<String> = offices
                    .iter()
                    .filter(|(name, _)| {
                        let parts: Vec<&str> = name.split(' ').collect();
                        parts.len() > words
                            && (parts[..words].join(" ") == gram
                                || parts[parts.len() - words..].join(" ") == gram)
                    })
                    .map(|(_, id)| id.clone())
                    .collect();
                if partial.len() == 1 {
                    self.add_office(i, partial[0].clone());
                    self.take(i, n);
                } else if partial.len() > 1
                    && !STOPWORDS.contains(&gram.as_str())
                    && !VOCABULARY.contains(&gram.as_str())
                {
                    let typed = self.words[i..i + n]
                        .iter()
                        .map(|w| title(&w.text))
                        .collect::<Vec<_>>()
                        .join(" ");
                    self.ambiguous.get_or_insert((typed, partial));
                    self.take(i, n);
                }
            }
        }
        self.floors();
        self.rooms();
        self.kinds();
        self.regions();
        self.countries();
    }

    /// Adds the office named at word `at`, keeping the question's order.
    fn add_office(&mut self, at: usize, id: String) {
        if !self.office_at.iter().any(|(_, o)| *o == id) {
            self.office_at.push((at, id));
            self.office_at.sort();
            self.scope.offices = self.office_at.iter().map(|(_, o)| o.clone()).collect();
        }
    }

    fn floors(&mut self) {
        for i in 0..self.words.len() {
            let number = |w: Option<&Word>| -> Option<i32> {
                let t = &w?.text;
                let digits = t.trim_end_matches(|c: char| c.is_alphabetic());
                let suffix = &t[digits.len()..];
                if !["", "st", "nd", "rd", "th"].contains(&suffix) {
                    return None;
                }
                digits.parse().ok().or_else(|| {
                    ORDINALS
                        .iter()
                        .find(|(w, _)| w == t)
                        .map(|(_, n)| *n)
                        .or_else(|| NUMBERS.iter().find(|(w, _)| w == t).map(|(_, n)| *n as i32))
                })
            };
            let word = self.words[i].text.as_str();
            if self.words[i].used || !matches!(word, "floor" | "level") {
                continue;
            }
            if let Some(f) = number(self.words.get(i + 1)).filter(|_| !self.words[i + 1].used) {
                self.scope.floor = Some(f);
                self.take(i, 2);
            } else if let Some(f) = i
                .checked_sub(1)
                .and_then(|j| number(self.words.get(j)).filter(|_| !self.words[j].used))
            {
                self.scope.floor = Some(f);
                self.take(i - 1, 2);
            } else if i >= 2 && self.words[i - 1].text == "ground" {
                self.scope.floor = Some(0);
                self.take(i - 1, 2);
            }
        }
        if self.phrase("ground floor") {
            let i =
                (0..self.words.len()).find(|&i| self.gram(i, 2).as_deref() == Some("ground floor"));
            if let Some(i) = i {
                self.scope.floor = Some(0);
                self.take(i, 2);
            }
        }
    }

    fn rooms(&mut self) {
        for n in (1..=4).rev() {
            for i in 0..self.words.len() {
                let Some(gram) = self.gram(i, n) else {
                    continue;
                };
                if n == 1
                    && (VOCABULARY.contains(&gram.as_str()) || STOPWORDS.contains(&gram.as_str()))
                {
                    continue;
                }
                let mut rooms: Vec<(String, String)> = self
                    .catalog
                    .rooms_named(&gram)
                    .map(|r| (r.id.clone(), r.office.clone()))
                    .collect();
                if rooms.is_empty() {
                    continue;
                }
                if !self.scope.offices.is_empty() {
                    rooms.retain(|(_, office)| self.scope.offices.contains(office));
                }
                self.take(i, n);
                match rooms.as_slice() {
                    [(room, _)] => self.scope.room = Some(room.clone()),
                    [] => {}
                    _ => self.room_choices = Some((title(&gram), rooms)),
                }
            }
        }
        // "the Everest room": the room's office is implied, not a filter of its own.
        if let Some(room) = &self.scope.room {
            if let Some(r) = self.catalog.room(room) {
                let office = r.office.clone();
                self.scope.offices.retain(|o| *o != office);
            }
        }
    }

    fn ambiguous_room(&mut self) -> Option<Understood> {
        let (name, rooms) = self.room_choices.take()?;
        let places: Vec<String> = rooms
            .iter()
            .map(|(_, office)| {
                self.catalog
                    .office(office)
                    .map_or(office.clone(), |o| format!("{name} in {}", o.name))
            })
            .collect();
        Some(Understood::Clarify {
            question: format!("Which {name}: {}?", join_or(&places)),
            options: rooms.into_iter().map(|(id, _)| id).collect(),
        })
    }

    fn kinds(&mut self) {
        for n in (1..=2).rev() {
            for i in 0..self.words.len() {
                let Some(gram) = self.gram(i, n) else {
                    continue;
                };
                if let Some((_, kind)) = KIND_WORDS.iter().find(|(w, _)| *w == gram) {
                    self.scope.kind = Some((*kind).to_owned());
                    self.take(i, n);
                }
            }
        }
    }

    fn regions(&mut self) {
        let regions: Vec<String> = self
            .catalog
            .regions()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for n in (1..=2).rev() {
            for i in 0..self.words.len() {
                let Some(gram) = self.gram(i, n) else {
                    continue;
                };
                let meant = REGION_WORDS
                    .iter()
                    .find(|(w, _)| *w == gram)
                    .map_or(gram.as_str(), |(_, r)| r);
                if let Some(region) = regions.iter().find(|r| r.to_lowercase() == meant) {
                    if !self.scope.regions.contains(region) {
                        self.scope.regions.push(region.clone());
                    }
                    self.take(i, n);
                }
            }
        }
    }

    fn countries(&mut self) {
        for (code, names) in self.catalog.countries() {
            for n in (1..=3).rev() {
                for i in 0..self.words.len() {
                    let Some(gram) = self.gram(i, n) else {
                        continue;
                    };
                    let by_code = n == 1 && self.words[i].upper && gram == code.to_lowercase();
                    if by_code || names.contains(&gram) {
                        self.scope.country = Some(code.clone());
                        self.take(i, n);
                    }
                }
            }
        }
    }

    /// The period, weekdays and hours.
    fn times(&mut self) {
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
            self.time_word(i, &parts[0].to_owned());
        }
    }

    /// A lone word of time: "today", "tuesdays", "october", "afternoon".
    fn time_word(&mut self, i: usize, word: &str) {
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
    fn hour_span(&mut self, i: usize) -> Option<[u8; 2]> {
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
    fn numbers(&mut self) {
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

    /// The intent, from the words left; then the plan with its defaults.
    fn intent(mut self) -> Understood {
        let people = (self.has("who")
            && self.has_any(&["was", "is", "sat", "booked", "in", "uses", "used"]))
            || self.has_any(&["employee", "names", "whom", "person"]);
        if people && !self.has_any(&["headcount", "many"]) {
            return Understood::OutOfScope {
                message: "roomflow counts people in rooms; it never knows who they are, so it cannot say who was where.".into(),
            };
        }
        let off_topic = [
            "temperature",
            "weather",
            "revenue",
            "salary",
            "salaries",
            "parking",
            "coffee",
            "energy",
            "electricity",
            "humidity",
            "noise",
            "co2",
            "wifi",
            "profit",
            "sales",
            "stock",
            "menu",
        ];
        if let Some(w) = off_topic.iter().find(|w| self.has(w)) {
            return Understood::OutOfScope {
                message: format!("roomflow has no data on {w}. {CAN_ANSWER}"),
            };
        }
        if let Some(name) = self.unknown_place() {
            let known: Vec<String> = self
                .catalog
                .offices
                .iter()
                .take(12)
                .map(|o| o.name.clone())
                .collect();
            return Understood::OutOfScope {
                message: format!(
                    "There is no office called {name}. Your offices include {}.",
                    known.join(", ")
                ),
            };
        }
        let Some(op) = self.op() else {
            return Understood::OutOfScope {
                message: format!("I did not understand the question. {CAN_ANSWER}"),
            };
        };
        if self.future && !matches!(op, Op::Forecast) {
            return Understood::OutOfScope {
                message: "That asks about the future: I can say when an office or room is forecast to pass a share of its capacity, e.g. \"When will Berlin pass 80% at peak?\"".into(),
            };
        }
        let mut plan = Plan::new(op);
        plan.scope = std::mem::take(&mut self.scope);
        plan.when = std::mem::take(&mut self.when);
        let default = match op {
            Op::Utilization | Op::Compare if !plan.when.weekdays.is_empty() => {
                Some(Period::Weeks(4))
            }
            Op::Heatmap => Some(Period::Weeks(4)),
            Op::Anomalies => Some(Period::Days(7)),
            Op::Forecast | Op::Seats => None,
            _ => Some(Period::Days(30)),
        };
        plan.period = match op {
            Op::Forecast | Op::Seats => None,
            _ => self.period.or(default),
        };
        if self.period.is_none() && default.is_some() {
            self.notes.push(format!(
                "no period was named: {}",
                default.map(|p| p.to_string()).unwrap_or_default()
            ));
        }
        let least = self.has_any(&[
            "quietest", "least", "lowest", "emptiest", "worst", "quiet", "quieter", "bottom",
        ]);
        match op {
            Op::Ranking | Op::Heatmap => {
                plan.order = Some(if least { Order::Least } else { Order::Most });
            }
            _ => {}
        }
        match op {
            Op::Underused => plan.threshold = Some(self.threshold.unwrap_or(0.2)),
            Op::Forecast => plan.threshold = self.threshold,
            _ => {}
        }
        if matches!(op, Op::Ranking | Op::Underused | Op::Ghosts | Op::Anomalies) {
            plan.limit = self.limit;
        }
        // Desks are what seats count.
        if op == Op::Seats && plan.scope.kind.as_deref() == Some("DESK") {
            plan.scope.kind = None;
        }
        // A room's anomalies and forecasts are its own; the room names its office.
        if plan.scope.room.is_some() && matches!(op, Op::Utilization | Op::Forecast | Op::Anomalies)
        {
            plan.scope.offices.clear();
        }
        let unread = self
            .words
            .iter()
            .filter(|w| {
                !w.used
                    && !VOCABULARY.contains(&w.text.as_str())
                    && !STOPWORDS.contains(&w.text.as_str())
            })
            .count();
        for _ in 0..unread.min(5) {
            self.confidence *= 0.9;
        }
        match plan.validate(self.catalog) {
            Ok(()) => Understood::Plan {
                plan,
                confidence: (self.confidence * 100.0).round() / 100.0,
                notes: self.notes,
            },
            Err(why) => Understood::OutOfScope {
                message: format!(
                    "I understood a question about {}, but {why}. {CAN_ANSWER}",
                    describe_op(op)
                ),
            },
        }
    }

    /// A capitalized word left over after the places, not one the parser knows: a place
    /// the tenant does not have ("How busy is Madrid?").
    fn unknown_place(&self) -> Option<String> {
        self.words
            .iter()
            .find(|w| {
                w.capital
                    && !w.used
                    && w.text.chars().all(char::is_alphabetic)
                    && !VOCABULARY.contains(&w.text.as_str())
                    && !STOPWORDS.contains(&w.text.as_str())
                    && !MONTHS.contains(&w.text.as_str())
            })
            .map(|w| title(&w.text))
    }

    /// Which operation the words ask for, if any.
    fn op(&self) -> Option<Op> {
        let places = self.scope.offices.len().max(self.scope.regions.len());
        let booked = self.has_any(&[
            "booked",
            "booking",
            "bookings",
            "reserved",
            "reservation",
            "reservations",
        ]);
        let unused = self.has_any(&["empty", "unused", "nobody", "idle", "wasted"])
            || self.phrase("no one")
            || self.phrase("not used")
            || self.phrase("never used");
        if self.has_any(&[
            "ghost", "ghosts", "noshow", "noshows", "no-show", "no-shows",
        ]) || self.phrase("no show")
            || self.phrase("no shows")
            || (booked && unused)
        {
            return Some(Op::Ghosts);
        }
        let seats =
            self.has_any(&["seats", "seat", "desks"]) || self.scope.kind.as_deref() == Some("DESK");
        if self.has_any(&["headcount", "employees", "staff"])
            || self.phrase("head count")
            || (seats
                && (self.has_any(&["need", "spare", "reduce", "cut"])
                    || self.phrase("too many")
                    || self.phrase("how many")
                    || self.phrase("could go")))
        {
            return Some(Op::Seats);
        }
        if self.has_any(&[
            "forecast",
            "forecasts",
            "predict",
            "predicted",
            "prediction",
            "expect",
            "expected",
            "projected",
            "projection",
            "outlook",
        ]) || (self.has("will") && !self.has("was"))
            || self.future
            || self.phrase("going to")
            || (self.has("when") && self.has_any(&["pass", "exceed", "reach", "hit", "cross"]))
        {
            return Some(Op::Forecast);
        }
        if self.has_any(&[
            "anomaly",
            "anomalies",
            "anomalous",
            "unusual",
            "faulty",
            "broken",
            "stuck",
            "malfunctioning",
            "strange",
            "weird",
            "outlier",
            "outliers",
            "spike",
            "spikes",
        ]) || (self.has_any(&["sensor", "sensors"])
            && self.has_any(&[
                "offline", "wrong", "problem", "problems", "issue", "issues", "failing", "dead",
                "silent",
            ]))
        {
            return Some(Op::Anomalies);
        }
        let rooms = self.has_any(&["rooms", "room", "spaces", "space", "areas"])
            || self.scope.kind.is_some()
            || self.scope.floor.is_some();
        let offices_word = self.has_any(&["offices", "office", "sites", "locations", "buildings"]);
        let below = self.threshold.is_some()
            && (self.has_any(&["under", "below", "lower", "less"]) || self.phrase("at most"));
        let underused = self.has_any(&[
            "underused",
            "underutilized",
            "underutilised",
            "unused",
            "idle",
            "empty",
            "emptiest",
        ]) || self.phrase("under used")
            || self.phrase("under-used")
            || self.phrase("rarely used")
            || self.phrase("barely used")
            || self.phrase("hardly used")
            || self.phrase("give up")
            || self.phrase("get rid")
            || self.phrase("least used");
        if (below || underused) && (rooms || !offices_word) && self.scope.room.is_none() {
            if below || rooms || !self.has_any(&["least", "emptiest"]) {
                return Some(Op::Underused);
            }
        }
        let compare_words = self.has_any(&[
            "compare",
            "comparison",
            "compared",
            "versus",
            "vs",
            "against",
            "difference",
        ]);
        if compare_words
            || (places >= 2
                && self.has_any(&["busier", "quieter", "more", "less", "or", "than", "and"]))
        {
            if places >= 2 {
                return Some(Op::Compare);
            }
        }
        let office_named = self.scope.offices.len() == 1
            && self.scope.floor.is_none()
            && self.scope.room.is_none();
        let when_words = (self.has("when") && !self.has("will"))
            || self.phrase("what time")
            || self.phrase("which hour")
            || self.phrase("which hours")
            || self.phrase("which day")
            || self.phrase("which days")
            || self.phrase("time of day")
            || self.phrase("peak hours")
            || self.phrase("peak times")
            || self.has_any(&["heatmap", "pattern"])
            || (self.has_any(&["busiest", "quietest"])
                && self.has_any(&["hour", "hours", "time", "times", "day", "days"]));
        if office_named && when_words {
            return Some(Op::Heatmap);
        }
        let superlative = self.has_any(&[
            "busiest", "quietest", "emptiest", "rank", "ranking", "ranked", "top", "bottom",
            "highest", "lowest", "best", "worst",
        ]) || self.phrase("most used")
            || self.phrase("least used")
            || self.phrase("most utilized")
            || self.phrase("least utilized");
        if superlative && self.scope.offices.is_empty() && self.scope.room.is_none() && !rooms {
            return Some(Op::Ranking);
        }
        if superlative
            && self.scope.offices.is_empty()
            && rooms
            && self.has_any(&["least", "emptiest", "quietest", "lowest", "worst"])
        {
            return Some(Op::Underused);
        }
        let busy = self.has_any(&[
            "busy",
            "utilization",
            "utilisation",
            "utilized",
            "utilised",
            "occupancy",
            "occupied",
            "full",
            "usage",
            "used",
            "use",
            "average",
            "peak",
            "crowded",
            "packed",
            "quiet",
            "people",
            "busier",
            "quieter",
        ]);
        if busy || (places == 1 && self.live) || (self.scope.room.is_some() && self.has("how")) {
            if places >= 2 {
                return Some(Op::Compare);
            }
            return Some(Op::Utilization);
        }
        None
    }
}

fn describe_op(op: Op) -> &'static str {
    match op {
        Op::Utilization => "utilization",
        Op::Compare => "a comparison",
        Op::Ranking => "ranking offices",
        Op::Underused => "under-used rooms",
        Op::Heatmap => "busiest hours",
        Op::Forecast => "a forecast",
        Op::Anomalies => "anomalies",
        Op::Ghosts => "rooms booked but empty",
        Op::Seats => "seats against headcount",
    }
}

fn title(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A count in digits or words.
fn number(w: &str) -> Option<u32> {
    w.parse()
        .ok()
        .or_else(|| NUMBERS.iter().find(|(n, _)| *n == w).map(|(_, v)| *v))
}

const ORDINALS: &[(&str, i32)] = &[
    ("first", 1),
    ("second", 2),
    ("third", 3),
    ("fourth", 4),
    ("fifth", 5),
    ("sixth", 6),
    ("seventh", 7),
    ("eighth", 8),
    ("ninth", 9),
    ("tenth", 10),
];

/// Words that carry no meaning here (and are never corrected into one that does).
const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "at",
    "to",
    "for",
    "from",
    "and",
    "or",
    "by",
    "with",
    "our",
    "my",
    "we",
    "us",
    "do",
    "does",
    "did",
    "be",
    "been",
    "it",
    "its",
    "that",
    "there",
    "their",
    "they",
    "me",
    "i",
    "you",
    "your",
    "please",
    "can",
    "could",
    "would",
    "should",
    "about",
    "any",
    "all",
    "some",
    "have",
    "has",
    "had",
    "get",
    "got",
    "so",
    "far",
    "up",
    "per",
    "cent",
    "out",
    "into",
    "across",
    "each",
    "every",
    "s",
    "vs",
    "between",
    "ground",
    "date",
    "current",
    "recent",
    "if",
    "than",
    "then",
    "as",
    "much",
    "are",
    "was",
    "were",
    "which",
    "what",
    "who",
    "how",
    "when",
    "sites",
    "locations",
    "buildings",
    "areas",
    "versus",
    "not",
    "no",
    "one",
    "first",
    "other",
    "least",
    "most",
    "times",
    "time",
    "but",
    "too",
    "often",
    "like",
    "been",
    "lately",
    "me",
    "show",
    "give",
    "tell",
    "list",
    "see",
    "look",
    "looking",
    "there",
    "going",
];
