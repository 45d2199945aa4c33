//! What flows into the dataflow: raw Kafka records, and what decoding makes of them. What
//! flows out (rows, live state, dead letters, checkpoints) is in [`rf_schemas::rows`].

use std::sync::Arc;

use rf_schemas::rows::{DeadLetter, Topic};
use rf_schemas::{DeadLetterReason, Reading, RoomVersion, TenantId};

/// What a source hands to the dataflow.
#[derive(Clone, Debug)]
pub enum Input {
    /// A consumed record.
    Record(RawRecord),
    /// A readings partition has been caught up and silent for the idle timeout: its
    /// windows may close as the tenant's other partitions progress.
    Idle {
        /// The tenant.
        tenant: TenantId,
        /// The readings partition.
        partition: i32,
    },
    /// Where a partition resumes after a restart: sent by the source before the
    /// partition's first record, so that the aggregation restores its own state in order.
    Resume(Resume),
}

impl Input {
    /// The tenant the input belongs to.
    pub fn tenant(&self) -> &TenantId {
        match self {
            Self::Record(r) => &r.tenant,
            Self::Idle { tenant, .. } => tenant,
            Self::Resume(r) => r.tenant(),
        }
    }
}

/// A partition's state at the point its reading resumes, from its checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// A readings partition.
    Readings {
        /// The tenant.
        tenant: TenantId,
        /// The readings partition.
        partition: i32,
        /// Its watermark as it was at the resume offset.
        watermark: i64,
        /// Effects of offsets below this were written already.
        processed_until: i64,
        /// The watermark reached at `processed_until`: windows final by it were written
        /// and stay closed.
        final_watermark: i64,
    },
    /// A rooms partition: versions from `offset` on may not have been applied to final
    /// rows before the restart, so they are (again); those before it only rebuild the
    /// catalog.
    Rooms {
        /// The tenant.
        tenant: TenantId,
        /// The rooms partition.
        partition: i32,
        /// The first offset not known to be applied.
        offset: i64,
    },
}

impl Resume {
    /// The tenant it belongs to.
    pub fn tenant(&self) -> &TenantId {
        match self {
            Self::Readings { tenant, .. } | Self::Rooms { tenant, .. } => tenant,
        }
    }
}

/// A Kafka record as consumed, before decoding.
#[derive(Clone, Debug)]
pub struct RawRecord {
    /// The tenant owning the topic.
    pub tenant: TenantId,
    /// Readings or rooms.
    pub topic: Topic,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// Kafka record timestamp (ms), set by the producer: `ts` may not run ahead of it.
    pub timestamp: i64,
    /// The consumer's own clock when the record was read (ms): a clock no producer
    /// controls, so `ts` may not run ahead of it either, and no watermark passes it.
    pub received: i64,
    /// Record key bytes.
    pub key: Option<Vec<u8>>,
    /// Record value bytes; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

impl RawRecord {
    /// The topic's full name.
    pub fn topic_name(&self) -> String {
        match self.topic {
            Topic::Readings => self.tenant.readings_topic(),
            Topic::Rooms => self.tenant.rooms_topic(),
            Topic::Bookings => self.tenant.bookings_topic(),
        }
    }

    /// This record as a dead letter for `reason`.
    pub fn dead_letter(self, reason: DeadLetterReason, detail: impl Into<String>) -> DeadLetter {
        DeadLetter {
            source_topic: self.topic_name(),
            topic: self.topic,
            tenant: self.tenant,
            partition: self.partition,
            offset: self.offset,
            key: self.key,
            value: self.value,
            reason,
            detail: detail.into(),
        }
    }
}

/// A decoded, validated input.
#[derive(Clone, Debug)]
pub enum Decoded {
    /// A reading, with the record it came from (kept to dead-letter it later if needed).
    Reading(Box<DecodedReading>),
    /// A room version was published or withdrawn.
    Room(Box<RoomEvent>),
    /// A booking version, passed on to the bookings operator.
    Booking(Box<rf_schemas::rows::BookingEvent>),
    /// A readings partition is idle (see [`Input::Idle`]).
    Idle {
        /// The tenant.
        tenant: TenantId,
        /// The readings partition.
        partition: i32,
    },
    /// A partition resumes (see [`Input::Resume`]).
    Resume(Resume),
    /// An input that failed decoding or validation. It goes through the aggregator like
    /// any other event, so that replays after a restart do not write it twice.
    Rejected(Box<DeadLetter>),
}

/// A record of a rooms topic: the version of `room_id` starting at `effective_from`,
/// published, or withdrawn by a tombstone.
#[derive(Clone, Debug)]
pub struct RoomEvent {
    /// The tenant.
    pub tenant: TenantId,
    /// The rooms partition it was read from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The room.
    pub room_id: String,
    /// The version's start.
    pub effective_from: i64,
    /// The version; `None` withdraws it.
    pub version: Option<Arc<RoomVersion>>,
}

/// A reading that passed decoding and the metadata-free validation rules.
#[derive(Clone, Debug)]
pub struct DecodedReading {
    /// The reading.
    pub reading: Reading,
    /// The record it came from.
    pub record: RawRecord,
    /// The writer schema's registry id.
    pub schema_id: u32,
}
