//! The typed query plan a question becomes: one of roomflow's own query operations with
//! its filters, never free SQL. Whatever understood the question (the built-in parser or
//! an LLM), the plan is checked here against the tenant's names and the operations'
//! bounds before anything runs.

use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::dates::Period;

/// The operations a plan may use: the query service's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Average and peak utilization of one office, floor, room or region, or the
    /// portfolio (the utilization series).
    Utilization,
    /// Two to five offices or regions side by side (their series).
    Compare,
    /// Offices ranked by utilization (the office ranking).
    Ranking,
    /// Rooms under a utilization threshold (the under-used rooms).
    Underused,
    /// An office's busiest or quietest hours of the week (the heatmap).
    Heatmap,
    /// When an office or room is forecast to pass a share of its capacity (forecasts).
    Forecast,
    /// Unusual occupancy and faulty sensors (anomalies).
    Anomalies,
    /// Rooms booked but empty (bookings).
    Ghosts,
    /// Seats against headcount (headcount).
    Seats,
}

impl Op {
    /// Every operation, for the LLM's schema and the help text.
    pub const ALL: [Op; 9] = [
        Op::Utilization,
        Op::Compare,
        Op::Ranking,
        Op::Underused,
        Op::Heatmap,
        Op::Forecast,
        Op::Anomalies,
        Op::Ghosts,
        Op::Seats,
    ];

    /// Its name in a plan.
    pub fn name(self) -> &'static str {
        match self {
            Op::Utilization => "utilization",
            Op::Compare => "compare",
            Op::Ranking => "ranking",
            Op::Underused => "underused",
            Op::Heatmap => "heatmap",
            Op::Forecast => "forecast",
            Op::Anomalies => "anomalies",
            Op::Ghosts => "ghosts",
            Op::Seats => "seats",
        }
    }
}

/// Kinds of room, as the room metadata spells them.
pub const KINDS: [&str; 6] = ["DESK", "MEETING", "FOCUS", "OPEN_SPACE", "COLLAB", "OTHER"];

/// Which part of the portfolio: every field narrows it, none is the whole portfolio.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Regions, as the room metadata names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// An ISO 3166 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Office ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offices: Vec<String>,
    /// A floor of the one office.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<i32>,
    /// A kind of room (one of [`KINDS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A room id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// Days of the week and hours of the day the question is about, in the office's zone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// `mon` … `sun`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<String>,
    /// `[from, to)` hours, 0 to 24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<[u8; 2]>,
}

impl When {
    /// Whether it filters nothing.
    pub fn is_empty(&self) -> bool {
        self.weekdays.is_empty() && self.hours.is_none()
    }
}

/// The weekdays' names in a plan, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Most or least first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Busiest, highest first.
    Most,
    /// Quietest, lowest first.
    Least,
}

/// A question's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The operation.
    pub op: Op,
    /// Where.
    #[serde(default)]
    pub scope: Scope,
    /// When: the period, in each office's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Weekdays and hours within the period.
    #[serde(default, skip_serializing_if = "When::is_empty")]
    pub when: When,
    /// A share of capacity, 0 to 1: the under-used rooms' ceiling, the forecast's level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Busiest or quietest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// How many rows a list shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Why a plan cannot run: a sentence for the person who asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The most rows a list may show.
pub const MAX_LIMIT: u32 = 50;
/// The most offices or regions compared at once.
pub const MAX_COMPARED: usize = 5;

impl Plan {
    /// A plan of `op` over the whole portfolio, everything else unset.
    pub fn new(op: Op) -> Self {
        Self {
            op,
            scope: Scope::default(),
            period: None,
            when: When::default(),
            threshold: None,
            order: None,
            limit: None,
        }
    }

    /// Checks the plan against the operations' rules and the tenant's names: every
    /// office, room, region and country must be the tenant's own, and every bound holds.
    pub fn validate(&self, catalog: &Catalog) -> Result<(), Invalid> {
        let bad = |m: String| Err(Invalid(m));
        let s = &self.scope;
        for office in &s.offices {
            if catalog.office(office).is_none() {
                return bad(format!("there is no office {office:?}"));
            }
        }
        for region in &s.regions {
            if !catalog.has_region(region) {
                return bad(format!("there is no region {region:?}"));
            }
        }
        if let Some(country) = &s.country {
            if !catalog.has_country(country) {
                return bad(format!("no office is in country {country:?}"));
            }
        }
        if let Some(room) = &s.room {
            if catalog.room(room).is_none() {
                return bad(format!("there is no room {room:?}"));
            }
        }
        if let Some(kind) = &s.kind {
            if !KINDS.contains(&kind.as_str()) {
                return bad(format!("{kind:?} is not a kind of room"));
            }
        }
        if let Some(floor) = s.floor {
            let [office] = s.offices.as_slice() else {
                return bad("a floor needs its office".into());
            };
            if !catalog
                .office(office)
                .is_some_and(|o| o.floors.contains(&floor))
            {
                return bad(format!("office {office} has no floor {floor}"));
            }
        }
        for day in &self.when.weekdays {
            if !WEEKDAYS.contains(&day.as_str()) {
                return bad(format!("{day:?} is not a weekday (mon … sun)"));
            }
        }
        if let Some([from, to]) = self.when.hours {
            if from >= to || to > 24 {
                return bad(format!("hours {from} to {to} are not a span of the day"));
            }
        }
        if let Some(t) = self.threshold {
            if !(0.0..=2.0).contains(&t) || !t.is_finite() {
                return bad("a threshold is a share of capacity between 0% and 200%".into());
            }
        }
        if let Some(limit) = self.limit {
            if !(1..=MAX_LIMIT).contains(&limit) {
                return bad(format!("a list shows 1 to {MAX_LIMIT} rows"));
            }
        }
        if let Some(period) = &self.period {
            period.validate()?;
        }
        self.validate_op()
    }

    /// The rules of each operation: which filters it takes.
    fn validate_op(&self) -> Result<(), Invalid> {
        let s = &self.scope;
        let bad = |m: &str| Err(Invalid(m.to_owned()));
        let one_place = s.offices.len() <= 1 && s.regions.len() <= 1;
        let no_rooms = s.kind.is_none() && s.room.is_none();
        let needs_period = !matches!(self.op, Op::Forecast | Op::Seats);
        if needs_period && self.period.is_none() {
            return bad("the plan needs a period");
        }
        if !needs_period && self.period.is_some() {
            return bad("forecasts and seats take no period");
        }
        match self.op {
            Op::Utilization => {
                if !one_place || s.country.is_some() || s.kind.is_some() {
                    return bad("utilization is of one office, floor, room or region, or the whole portfolio");
                }
                if !s.regions.is_empty() && !s.offices.is_empty() {
                    return bad("utilization is of an office or a region, not both");
                }
                if s.offices.is_empty() && s.room.is_none() && self.when.hours.is_some() {
                    return bad(
                        "hours of the day need one office or room: each office has its own clock",
                    );
                }
            }
            Op::Compare => {
                let (o, r) = (s.offices.len(), s.regions.len());
                let places = o.max(r);
                if (o > 0 && r > 0) || !(2..=MAX_COMPARED).contains(&places) {
                    return bad("a comparison is of 2 to 5 offices, or of 2 to 5 regions");
                }
                if s.floor.is_some() || !no_rooms || s.country.is_some() {
                    return bad("a comparison is of whole offices or regions");
                }
                if r > 0 && self.when.hours.is_some() {
                    return bad("hours of the day need offices: each office has its own clock");
                }
            }
            Op::Ranking => {
                if !s.offices.is_empty() || s.regions.len() > 1 || s.floor.is_some() || !no_rooms {
                    return bad(
                        "the ranking is of offices, within the portfolio, a region or a country",
                    );
                }
                if !self.when.is_empty() {
                    return bad("the ranking is of whole days");
                }
            }
            Op::Underused => {
                if s.offices.len() > 1 || s.regions.len() > 1 {
                    return bad(
                        "under-used rooms are found in one office, region or country at a time",
                    );
                }
                if s.room.is_some() || !self.when.is_empty() {
                    return bad("under-used rooms are found over whole days of offices, floors, regions or countries");
                }
            }
            Op::Heatmap => {
                if s.offices.len() != 1 || s.floor.is_some() || !no_rooms || !s.regions.is_empty() {
                    return bad("the busiest hours are of one office");
                }
                if self.when.hours.is_some() {
                    return bad("the busiest hours are found over the whole day");
                }
            }
            Op::Forecast => {
                let one = (s.offices.len() == 1) != s.room.is_some();
                if !one || s.floor.is_some() || s.kind.is_some() || !s.regions.is_empty() {
                    return bad("forecasts are of one office or one room");
                }
                if !self.when.is_empty() {
                    return bad("forecasts are of whole days");
                }
            }
            Op::Anomalies => {
                if s.offices.len() > 1
                    || s.floor.is_some()
                    || s.kind.is_some()
                    || !s.regions.is_empty()
                    || s.country.is_some()
                {
                    return bad("anomalies are listed for the portfolio, one office or one room");
                }
                if !self.when.is_empty() {
                    return bad("anomalies are listed for whole days");
                }
            }
            Op::Ghosts => {
                if s.offices.len() > 1
                    || s.floor.is_some()
                    || !no_rooms
                    || !s.regions.is_empty()
                    || s.country.is_some()
                {
                    return bad(
                        "booked-but-empty rooms are listed for the portfolio or one office",
                    );
                }
                if !self.when.is_empty() {
                    return bad("bookings are counted over whole days");
                }
            }
            Op::Seats => {
                if s.offices.len() > 1
                    || s.floor.is_some()
                    || !no_rooms
                    || !s.regions.is_empty()
                    || s.country.is_some()
                {
                    return bad("seats against headcount are of the portfolio or one office");
                }
                if !self.when.is_empty() {
                    return bad("seats against headcount are of whole days");
                }
            }
        }
        if self.order.is_some() && !matches!(self.op, Op::Ranking | Op::Heatmap) {
            return bad("only rankings and busiest hours have an order");
        }
        if self.threshold.is_some() && !matches!(self.op, Op::Underused | Op::Forecast) {
            return bad("only under-used rooms and forecasts take a threshold");
        }
        if self.limit.is_some()
            && !matches!(
                self.op,
                Op::Ranking | Op::Underused | Op::Ghosts | Op::Anomalies
            )
        {
            return bad("only lists take a limit");
        }
        Ok(())
    }
}
