//! The tenant's own names: offices, rooms, floors, regions and countries, which a
//! question's places are matched against (and the only names an LLM is ever sent).

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// An office.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Office {
    /// Its id.
    pub id: String,
    /// The name people use.
    pub name: String,
    /// Its region.
    pub region: String,
    /// ISO 3166 alpha-2.
    pub country: String,
    /// IANA time zone.
    pub timezone: String,
    /// Its floors.
    pub floors: Vec<i32>,
}

/// A room.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Room {
    /// Its id.
    pub id: String,
    /// Its office's id.
    pub office: String,
    /// The name people use.
    pub name: String,
    /// Its kind (`MEETING`, …).
    pub kind: String,
}

/// The names of one tenant.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Offices, by id.
    pub offices: Vec<Office>,
    /// Rooms.
    pub rooms: Vec<Room>,
    /// Normalized room name → rooms of that name.
    #[serde(skip)]
    room_names: HashMap<String, Vec<usize>>,
    /// Room id → index.
    #[serde(skip)]
    room_ids: HashMap<String, usize>,
}

/// Countries by code, with the names people use for them.
const COUNTRIES: &[(&str, &[&str])] = &[
    (
        "GB",
        &[
            "uk",
            "united kingdom",
            "britain",
            "great britain",
            "england",
        ],
    ),
    ("US", &["usa", "united states", "america", "the states"]),
    ("DE", &["germany", "deutschland"]),
    ("FR", &["france"]),
    ("IE", &["ireland"]),
    ("NL", &["netherlands", "holland"]),
    ("ES", &["spain"]),
    ("IT", &["italy"]),
    ("CH", &["switzerland"]),
    ("SE", &["sweden"]),
    ("PL", &["poland"]),
    ("CA", &["canada"]),
    ("MX", &["mexico"]),
    ("BR", &["brazil"]),
    ("JP", &["japan"]),
    ("SG", &["singapore"]),
    ("AU", &["australia"]),
    ("IN", &["india"]),
    ("CN", &["china"]),
    ("HK", &["hong kong"]),
    ("AE", &["uae", "united arab emirates", "emirates"]),
    ("ZA", &["south africa"]),
];

/// Lower case, words separated by single spaces, punctuation dropped ("Room 4.12" keeps
/// its dot).
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let c = match c {
            '\u{2019}' | '\u{2018}' => '\'',
            c => c,
        };
        let keep = c.is_alphanumeric()
            || c == '%'
            || (matches!(c, '.' | ':' | '-')
                && i > 0
                && i + 1 < chars.len()
                && chars[i - 1].is_alphanumeric()
                && chars[i + 1].is_alphanumeric());
        if keep {
            out.extend(c.to_lowercase());
        } else if !out.ends_with(' ') && !out.is_empty() && c != '\'' {
            out.push(' ');
        }
    }
    out.trim_end().to_owned()
}

impl Catalog {
    /// A catalog of these offices and rooms.
    pub fn new(mut offices: Vec<Office>, rooms: Vec<Room>) -> Self {
        offices.sort_by(|a, b| a.id.cmp(&b.id));
        let mut catalog = Self {
            offices,
            rooms,
            ..Self::default()
        };
        catalog.index();
        catalog
    }

    /// Builds the lookups (after deserializing).
    pub fn index(&mut self) {
        self.offices.sort_by(|a, b| a.id.cmp(&b.id));
        self.room_names.clear();
        self.room_ids.clear();
        for (i, r) in self.rooms.iter().enumerate() {
            self.room_names
                .entry(normalize(&r.name))
                .or_default()
                .push(i);
            self.room_ids.insert(r.id.clone(), i);
        }
    }

    /// The office of that id.
    pub fn office(&self, id: &str) -> Option<&Office> {
        self.offices
            .binary_search_by(|o| o.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.offices[i])
    }

    /// The room of that id.
    pub fn room(&self, id: &str) -> Option<&Room> {
        self.room_ids.get(id).map(|&i| &self.rooms[i])
    }

    /// Rooms named so (normalized).
    pub fn rooms_named(&self, normalized: &str) -> impl Iterator<Item = &Room> {
        self.room_names
            .get(normalized)
            .into_iter()
            .flatten()
            .map(|&i| &self.rooms[i])
    }

    /// The regions, as the metadata spells them.
    pub fn regions(&self) -> BTreeSet<&str> {
        self.offices.iter().map(|o| o.region.as_str()).collect()
    }

    /// Whether some office is in `region`.
    pub fn has_region(&self, region: &str) -> bool {
        self.offices.iter().any(|o| o.region == region)
    }

    /// Whether some office is in `country`.
    pub fn has_country(&self, country: &str) -> bool {
        self.offices.iter().any(|o| o.country == country)
    }

    /// The tenant's countries, with the names people use for each.
    pub fn countries(&self) -> Vec<(String, Vec<String>)> {
        let codes: BTreeSet<&str> = self.offices.iter().map(|o| o.country.as_str()).collect();
        codes
            .into_iter()
            .map(|code| {
                let names = COUNTRIES
                    .iter()
                    .find(|(c, _)| *c == code)
                    .map(|(_, n)| n.iter().map(|s| (*s).to_owned()).collect())
                    .unwrap_or_default();
                (code.to_owned(), names)
            })
            .collect()
    }

    /// The offices in the scope's regions or country (all when neither is given).
    pub fn offices_in<'a>(
        &'a self,
        regions: &'a [String],
        country: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Office> + 'a {
        self.offices.iter().filter(move |o| {
            (regions.is_empty() || regions.contains(&o.region))
                && country.is_none_or(|c| o.country == c)
        })
    }

    /// What an LLM may be told: names only, never a number of the tenant's data.
    pub fn names(&self) -> serde_json::Value {
        serde_json::json!({
            "offices": self.offices.iter().map(|o| serde_json::json!({
                "id": o.id, "name": o.name, "region": o.region, "country": o.country, "floors": o.floors,
            })).collect::<Vec<_>>(),
            "regions": self.regions(),
            "room_kinds": super::plan::KINDS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizing_keeps_words_numbers_and_names_with_dots() {
        assert_eq!(
            normalize("How busy is Room 4.12, today?"),
            "how busy is room 4.12 today"
        );
        assert_eq!(
            normalize("Which rooms were under 20%?"),
            "which rooms were under 20%"
        );
        assert_eq!(normalize("London’s  busiest  hour"), "londons busiest hour");
        assert_eq!(normalize("no-shows in NYC"), "no-shows in nyc");
    }
}
