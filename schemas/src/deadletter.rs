//! Why a reading was rejected: the contract's dead-letter reasons.

use std::fmt;

/// The reason a reading went to its tenant's dead-letter topic (header `rf-reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeadLetterReason {
    /// Not decodable: bad framing or bad Avro.
    Malformed,
    /// The schema id is not known to the registry.
    UnknownSchema,
    /// The writer schema cannot be read as an `OccupancyReading`.
    IncompatibleSchema,
    /// `people_count` outside 0..=10000, or a bad temperature, humidity, CO2 or battery.
    OutOfRange,
    /// No room version in effect at `ts` when its window became final.
    UnknownRoom,
    /// `office_id` differs from the room's office (or from the record key).
    OfficeMismatch,
    /// `ts` more than 5 minutes after the Kafka record timestamp.
    FutureTimestamp,
    /// The reading's window was already final.
    Late,
}

impl DeadLetterReason {
    /// Every reason, in the contract's order.
    pub const ALL: [Self; 8] = [
        Self::Malformed,
        Self::UnknownSchema,
        Self::IncompatibleSchema,
        Self::OutOfRange,
        Self::UnknownRoom,
        Self::OfficeMismatch,
        Self::FutureTimestamp,
        Self::Late,
    ];

    /// The value of the `rf-reason` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownSchema => "unknown_schema",
            Self::IncompatibleSchema => "incompatible_schema",
            Self::OutOfRange => "out_of_range",
            Self::UnknownRoom => "unknown_room",
            Self::OfficeMismatch => "office_mismatch",
            Self::FutureTimestamp => "future_timestamp",
            Self::Late => "late",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected input: its reason and a human-readable detail (header `rf-detail`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The contract's reason.
    pub reason: DeadLetterReason,
    /// What exactly was wrong, for a person.
    pub detail: String,
}

impl Rejection {
    /// A rejection for `reason` explained by `detail`.
    pub fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}
