//! What a question asks for: the operation, by the words left once places, times and
//! numbers are read, then the plan with its defaults, validated.

use super::dates::Period;
use super::parse::{title, Parser, Understood, CAN_ANSWER};
use super::plan::{Op, Order, Plan};
use super::words::*;

impl Parser<'_> {
    /// The intent, from the words left; then the plan with its defaults.
    pub(super) fn intent(mut self) -> Understood {
        let people = (self.has("who")
            && self.has_any(&["was", "is", "sat", "booked", "in", "uses", "used"]))
            || self.has_any(&["employee", "names", "whom", "person"]);
        if people && !self.has_any(&["headcount", "many"]) {
            return Understood::OutOfScope {
                message: "roomflow counts people in rooms; it never knows who they are, so it cannot say who was where.".into(),
                settled: true,
            };
        }
        if let Some(w) = OFF_TOPIC.iter().find(|w| self.has(w)) {
            return Understood::OutOfScope {
                message: format!("roomflow has no data on {w}. {CAN_ANSWER}"),
                settled: true,
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
                settled: false,
            };
        }
        if let Some(message) = self.not_yet() {
            return Understood::OutOfScope {
                message,
                settled: false,
            };
        }
        let Some(op) = self.op() else {
            return Understood::OutOfScope {
                message: format!("I did not understand the question. {CAN_ANSWER}"),
                settled: false,
            };
        };
        // "Are people using the meeting rooms in Munich?": a kind of room is read room by
        // room, as the under-used rooms.
        let op = match op {
            Op::Utilization if self.scope.kind.is_some() => Op::Underused,
            op => op,
        };
        if self.future && !matches!(op, Op::Forecast) {
            return Understood::OutOfScope {
                message: "That asks about the future: I can say when an office or room is forecast to pass a share of its capacity, e.g. \"When will Berlin pass 80% at peak?\"".into(),
                settled: false,
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
        // The first of "busiest … quietest" said is the order ("from busiest to quietest").
        let least_words = [
            "quietest", "least", "lowest", "emptiest", "worst", "quiet", "quieter", "bottom",
        ];
        let most_words = ["busiest", "most", "highest", "top", "best", "busier"];
        let least = self
            .words
            .iter()
            .filter(|w| !w.used)
            .find_map(|w| {
                let t = w.text.as_str();
                (least_words.contains(&t) || most_words.contains(&t))
                    .then(|| least_words.contains(&t))
            })
            .unwrap_or(false);
        match op {
            Op::Ranking | Op::Heatmap => {
                plan.order = Some(if least { Order::Least } else { Order::Most });
            }
            _ => {}
        }
        match op {
            Op::Underused => plan.threshold = Some(self.threshold.unwrap_or(0.2)),
            // "When does London hit capacity?": all of it.
            Op::Forecast => {
                let all = (self.has("capacity")
                    && self.has_any(&["hit", "reach", "exceed", "pass", "at", "over"]))
                    || self.phrase("run out");
                plan.threshold = self.threshold.or(all.then_some(1.0));
            }
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
                settled: false,
            },
        }
    }

    /// A capitalized word left over after the places, not one the parser knows: a place
    /// the tenant does not have ("How busy is Madrid?").
    pub(super) fn unknown_place(&self) -> Option<String> {
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

    /// Questions near the operations that they do not answer yet, said plainly rather
    /// than answered by a plan of something else: the busiest floor or room of an
    /// office, and one period against another.
    fn not_yet(&self) -> Option<String> {
        let all: Vec<&str> = self.words.iter().map(|w| w.text.as_str()).collect();
        let said = |phrase: &str| {
            let n = phrase.split(' ').count();
            all.windows(n).any(|w| w.join(" ") == phrase)
        };
        let part = ["floor", "room", "desk", "space"].iter().any(|p| {
            (said(&format!("which {p}"))
                || said(&format!("busiest {p}"))
                || said(&format!("quietest {p}")))
                && self.scope.floor.is_none()
                && self.scope.room.is_none()
        });
        if part && self.has_any(&["busiest", "quietest", "most", "least"]) {
            return Some(
                "I cannot rank the floors or rooms of an office by how busy they are yet. I can give one floor's or room's utilization, list the under-used rooms, or an office's busiest hours."
                    .into(),
            );
        }
        let against_past = [
            "compared to last",
            "compared with last",
            "than last",
            "versus last",
            "vs last",
            "against last",
        ]
        .iter()
        .any(|p| said(p))
            || self.has_any(&["yoy", "mom", "wow"])
            || said("year over year")
            || said("month over month")
            || said("week over week");
        against_past.then(|| {
            "I cannot set one period against another yet (week over week, year over year). Ask for each period, e.g. \"How busy was London last month?\"".into()
        })
    }

    /// Which operation the words ask for, if any.
    pub(super) fn op(&self) -> Option<Op> {
        let places = self.scope.offices.len().max(self.scope.regions.len());
        let booked = self.has_any(&[
            "book",
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
            || self.phrase("not use")
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
                && (self.has_any(&["need", "spare", "reduce", "cut", "head"])
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
                "offline",
                "wrong",
                "problem",
                "problems",
                "issue",
                "issues",
                "failing",
                "dead",
                "silent",
                "stopped",
                "reporting",
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
            || self.has_any(&["consolidate", "consolidation"])
            || self.phrase("excess capacity")
            || self.phrase("spare capacity")
            || self.phrase("too much space")
            || self.phrase("need all")
            || self.phrase("get rid")
            || self.phrase("least used");
        // "The least used office" is a ranking; "the least used rooms" are under-used;
        // "how empty was Tokyo" asks how busy.
        let of_rooms = below || rooms || !self.has_any(&["least", "emptiest", "how"]);
        if (below || underused) && (rooms || !offices_word) && self.scope.room.is_none() && of_rooms
        {
            return Some(Op::Underused);
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
        let comparing = compare_words
            || self.has_any(&["busier", "quieter", "more", "less", "or", "than", "and"]);
        if comparing && places >= 2 {
            return Some(Op::Compare);
        }
        // "Is Paris busier on Mondays or Fridays?": which of those days is busiest.
        let between_days = self.when.weekdays.len() >= 2
            && self.has_any(&["busier", "quieter"])
            && self.scope.offices.len() == 1
            && self.scope.room.is_none();
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
            || self.phrase("peak day")
            || self.phrase("quiet times")
            || self.phrase("quiet hours")
            || self.phrase("busy times")
            || self.phrase("day of the week")
            || self.has_any(&["heatmap", "pattern"])
            || (self.has_any(&["busiest", "quietest"])
                && self.has_any(&["hour", "hours", "time", "times", "day", "days"]));
        if office_named && (when_words || between_days) {
            return Some(Op::Heatmap);
        }
        let superlative = self.has_any(&[
            "busiest", "quietest", "emptiest", "rank", "ranking", "ranked", "top", "bottom",
            "highest", "lowest", "best", "worst",
        ]) || (offices_word && self.has_any(&["least", "most"]))
            || self.phrase("by office")
            || self.phrase("per office")
            || self.phrase("each office")
            || self.phrase("most used")
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
            "footfall",
            "attendance",
            "turnout",
            "return",
            "rto",
            "empty",
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
        // A place and nothing else ("london?", "nyc last month"): how busy it was.
        let unread = self.words.iter().any(|w| {
            !w.used
                && !VOCABULARY.contains(&w.text.as_str())
                && !STOPWORDS.contains(&w.text.as_str())
        });
        if !unread && (places >= 1 || self.scope.room.is_some()) {
            return Some(if places >= 2 {
                Op::Compare
            } else {
                Op::Utilization
            });
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
