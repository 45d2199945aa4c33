//! The words the built-in parser knows: its vocabulary (any word near one of these is
//! read as it), numbers, months, days, kinds of room, region and city nicknames, and the
//! words that carry no meaning.

/// Words the parser knows; any other word near one of these is read as it.
#[rustfmt::skip]
pub(super) const VOCABULARY: &[&str] = &[
    // intents
    "how", "busy", "busier", "busiest", "quiet", "quieter", "quietest", "utilization",
    "utilisation", "utilized", "utilised", "occupancy", "occupied", "full", "usage", "used",
    "average", "peak", "crowded", "packed", "empty", "emptiest", "compare", "comparison",
    "compared", "versus", "against", "difference", "between", "ranking", "rank", "ranked", "top",
    "bottom", "most", "least", "highest", "lowest", "under", "below", "less", "lower", "than",
    "above", "over", "more", "underused", "underutilized", "underutilised", "rarely", "barely",
    "hardly", "unused", "idle", "never", "heatmap", "pattern", "hour", "hours", "time", "times",
    "forecast", "forecasts", "predict", "predicted", "prediction", "expect", "expected", "going",
    "projected", "projection", "outlook", "pass", "exceed", "reach", "hit", "cross", "anomaly",
    "anomalies", "anomalous", "unusual", "faulty", "broken", "stuck", "malfunctioning", "strange",
    "weird", "outlier", "outliers", "sensor", "sensors", "offline", "spike", "spikes", "ghost",
    "ghosts", "booked", "booking", "bookings", "reserved", "reservation", "reservations",
    "nobody", "headcount", "employees", "staff", "seats", "seat", "desks", "desk", "need", "many",
    "spare", "reduce", "people", "rooms", "room", "offices", "office", "floor", "floors", "level",
    "meeting", "focus", "booths", "booth", "phone", "open", "space", "spaces", "collaboration",
    "collab", "portfolio", "overall", "company", "region", "regions", "country", "which", "what",
    "when", "where", "show", "list", "give", "tell", "were", "was", "is", "are", "will", "the",
    "last", "this", "past", "previous", "next", "today", "yesterday", "tomorrow", "week", "weeks",
    "month", "months", "quarter", "quarters", "year", "years", "days", "day", "morning",
    "mornings", "afternoon", "afternoons", "evening", "evenings", "lunchtime", "weekdays",
    "weekends", "weekend", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
    "sunday", "mondays", "tuesdays", "wednesdays", "thursdays", "fridays", "saturdays", "sundays",
    "january", "february", "march", "april", "june", "july", "august", "september", "october",
    "november", "december", "percent", "capacity", "currently", "right", "now", "often", "most",
    "usually", "typically", "cancelled", "shows", "show", "meetings", "latest", "newest",
    "during", "recently", "utilisation", "temperature", "weather", "revenue", "salary",
    "salaries", "parking", "coffee", "energy", "electricity", "humidity", "noise", "every",
    "stock", "price", "prices", "profit", "sales", "menu", "wifi", "poem", "joke", "stack", "both",
    "across", "whole",
];

/// Number words.
#[rustfmt::skip]
pub(super) const NUMBERS: &[(&str, u32)] = &[
    ("one", 1), ("two", 2), ("three", 3), ("four", 4), ("five", 5), ("six", 6), ("seven", 7),
    ("eight", 8), ("nine", 9), ("ten", 10), ("eleven", 11), ("twelve", 12), ("fifteen", 15),
    ("twenty", 20), ("thirty", 30), ("fifty", 50), ("ninety", 90),
];

#[rustfmt::skip]
pub(super) const MONTHS: [&str; 12] = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
];

#[rustfmt::skip]
pub(super) const DAYS: [&str; 7] = [
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
];

/// Kinds of room by the words people use.
#[rustfmt::skip]
pub(super) const KIND_WORDS: &[(&str, &str)] = &[
    ("meeting rooms", "MEETING"), ("meeting room", "MEETING"), ("meeting", "MEETING"),
    ("conference rooms", "MEETING"), ("conference room", "MEETING"), ("focus rooms", "FOCUS"),
    ("focus room", "FOCUS"), ("focus booths", "FOCUS"), ("phone booths", "FOCUS"),
    ("booths", "FOCUS"), ("booth", "FOCUS"), ("desks", "DESK"), ("desk", "DESK"),
    ("hot desks", "DESK"), ("open spaces", "OPEN_SPACE"), ("open space", "OPEN_SPACE"),
    ("open plan", "OPEN_SPACE"), ("collaboration spaces", "COLLAB"),
    ("collaboration space", "COLLAB"), ("collab spaces", "COLLAB"),
    ("collaboration areas", "COLLAB"),
];

/// Region names by the words people use, when the tenant's regions are spelled so.
#[rustfmt::skip]
pub(super) const REGION_WORDS: &[(&str, &str)] = &[
    ("europe", "emea"), ("european", "emea"), ("americas", "amer"), ("north america", "amer"),
    ("asia pacific", "apac"), ("asia", "apac"), ("apj", "apac"),
];

/// City nicknames.
#[rustfmt::skip]
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("nyc", "new york"), ("ny", "new york"), ("sf", "san francisco"), ("la", "los angeles"),
    ("dc", "washington"),
];

/// The optimal-string-alignment distance: edits, a swap of neighbours counting one.
pub(super) fn distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

/// How far a word of this length may be from the one meant.
pub(super) fn tolerance(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

/// Whether `text` (normalized) says `n` in words ("ten").
pub(crate) fn says_number(text: &str, n: u32) -> bool {
    text.split(' ').any(|w| number(w) == Some(n))
}

/// A count in digits or words.
pub(super) fn number(w: &str) -> Option<u32> {
    w.parse()
        .ok()
        .or_else(|| NUMBERS.iter().find(|(n, _)| *n == w).map(|(_, v)| *v))
}

#[rustfmt::skip]
pub(super) const ORDINALS: &[(&str, i32)] = &[
    ("first", 1), ("second", 2), ("third", 3), ("fourth", 4), ("fifth", 5), ("sixth", 6),
    ("seventh", 7), ("eighth", 8), ("ninth", 9), ("tenth", 10),
];

/// Words that carry no meaning here (and are never corrected into one that does).
#[rustfmt::skip]
pub(super) const STOPWORDS: &[&str] = &[
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "from", "and", "or", "by", "with",
    "our", "my", "we", "us", "do", "does", "did", "be", "been", "it", "its", "that", "there",
    "their", "they", "me", "i", "you", "your", "please", "can", "could", "would", "should",
    "about", "any", "all", "some", "have", "has", "had", "get", "got", "so", "far", "up", "per",
    "cent", "out", "into", "across", "each", "every", "s", "vs", "between", "ground", "date",
    "current", "recent", "if", "than", "then", "as", "much", "are", "was", "were", "which",
    "what", "who", "how", "when", "sites", "locations", "buildings", "areas", "versus", "not",
    "no", "one", "first", "other", "least", "most", "times", "time", "but", "too", "often",
    "like", "been", "lately", "me", "show", "give", "tell", "list", "see", "look", "looking",
    "there", "going",
];

/// What roomflow has no data on: a question about it is out of scope, whatever else it says.
#[rustfmt::skip]
pub(super) const OFF_TOPIC: &[&str] = &[
    "temperature", "weather", "revenue", "salary", "salaries", "parking", "coffee", "energy",
    "electricity", "humidity", "noise", "co2", "wifi", "profit", "sales", "stock", "price",
    "prices", "menu",
];
