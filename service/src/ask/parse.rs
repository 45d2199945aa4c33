//! The built-in parser: a question in English becomes a [`Plan`] with no network and no
//! model. It corrects typos against its own words and the tenant's names, finds the
//! places (offices, floors, rooms, regions, countries, kinds of room), the period and
//! the weekdays and hours, the numbers (thresholds, list lengths), then the intent by
//! the words left. A name that could be two places asks back; a question it cannot map
//! to an operation says what it can answer.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::catalog::{normalize, Catalog};
use super::dates::Period;
use super::plan::{Plan, Scope, When};
use super::words::*;

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
        /// The words that fit several places, as read ("Berlin"; empty if unknown).
        name: String,
    },
    /// Not something roomflow's data answers.
    OutOfScope {
        /// Why, and what it can answer.
        message: String,
        /// Whether no reader could answer it (who someone is, data roomflow does not
        /// have): a language model is not asked.
        settled: bool,
    },
}

/// What to say when a question is out of scope.
pub const CAN_ANSWER: &str = "I can answer questions about utilization and occupancy (\"How busy is London on Tuesdays?\"), \
comparisons (\"Compare New York and London this quarter\"), rankings of offices, under-used rooms \
(\"Which meeting rooms in EMEA were under 20% last month?\"), busiest hours, forecasts (\"When will Berlin pass 80% at peak?\"), \
anomalies and faulty sensors, rooms booked but empty, and seats against headcount.";

/// One word of the question.
#[derive(Clone, Debug)]
pub(super) struct Word {
    /// Normalized (corrected, once corrected).
    pub(super) text: String,
    /// Typed in capitals (country codes are only read so).
    pub(super) upper: bool,
    /// Typed with a capital first letter, not first in the question: a name.
    pub(super) capital: bool,
    /// Taken by a place, a time or a number.
    pub(super) used: bool,
}

/// A question being read: its words, and what was found in them so far.
pub(super) struct Parser<'c> {
    pub(super) catalog: &'c Catalog,
    pub(super) now: DateTime<Utc>,
    pub(super) words: Vec<Word>,
    pub(super) notes: Vec<String>,
    pub(super) confidence: f64,
    pub(super) scope: Scope,
    pub(super) period: Option<Period>,
    pub(super) when: When,
    pub(super) threshold: Option<f64>,
    pub(super) limit: Option<u32>,
    /// A word of the places that fits several offices: (typed, office ids).
    pub(super) ambiguous: Option<(String, Vec<String>)>,
    /// Offices named, by the position of their first word.
    pub(super) office_at: Vec<(usize, String)>,
    /// A room name that fits several rooms: (name, (room, office) ids).
    pub(super) room_choices: Option<(String, Vec<(String, String)>)>,
    /// Something said about the future ("tomorrow", "next week").
    pub(super) future: bool,
    /// "right now", "currently".
    pub(super) live: bool,
}

/// Understands `question` against the tenant's `catalog`, `now` being the time asked.
pub fn parse(question: &str, catalog: &Catalog, now: DateTime<Utc>) -> Understood {
    let mut p = Parser::new(question, catalog, now);
    if p.words.is_empty() {
        return Understood::OutOfScope {
            message: format!("Ask me something about your offices. {CAN_ANSWER}"),
            settled: true,
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
            name: typed,
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
            // Never into a word roomflow has no data on: only what was typed refuses.
            let best = VOCABULARY
                .iter()
                .copied()
                .filter(|v| !OFF_TOPIC.contains(v))
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
    pub(super) fn gram(&self, i: usize, n: usize) -> Option<String> {
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

    pub(super) fn take(&mut self, i: usize, n: usize) {
        for w in &mut self.words[i..i + n] {
            w.used = true;
        }
    }

    pub(super) fn has(&self, word: &str) -> bool {
        self.words.iter().any(|w| !w.used && w.text == word)
    }

    pub(super) fn has_any(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.has(w))
    }

    /// Whether the unused words hold `phrase` (words in order, next to each other).
    pub(super) fn phrase(&self, phrase: &str) -> bool {
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
                    // "both Berlin offices", "the two Berlin offices": all of them.
                    let all = self.has_any(&["both", "all", "two", "three", "every"])
                        || self.gram(i + n, 1).as_deref() == Some("offices");
                    if all {
                        for id in partial {
                            self.add_office(i, id);
                        }
                    } else {
                        let typed = self.words[i..i + n]
                            .iter()
                            .map(|w| title(&w.text))
                            .collect::<Vec<_>>()
                            .join(" ");
                        self.ambiguous.get_or_insert((typed, partial));
                    }
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
                let named = ORDINALS
                    .iter()
                    .find(|(w, _)| w == t)
                    .map(|(_, n)| *n)
                    .or_else(|| NUMBERS.iter().find(|(w, _)| w == t).map(|(_, n)| *n as i32));
                if named.is_some() {
                    return named;
                }
                let digits = t.trim_end_matches(|c: char| c.is_alphabetic());
                let suffix = &t[digits.len()..];
                if !["", "st", "nd", "rd", "th"].contains(&suffix) {
                    return None;
                }
                digits.parse().ok()
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
            name,
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
}

pub(super) fn title(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
        })
        .collect::<Vec<_>>()
        .join(" ")
}
