//! Decoding and validation of raw records through the schema registry, with one cached
//! decoder per schema id.
//!
//! A schema id seen for the first time is fetched off the caller's thread: the dataflow's
//! decoder ([`Decoder::try_decode`]) hands the record back to wait while the registry
//! answers, so a registry that is slow or down for one tenant's new schema never stalls
//! the worker's other tenants.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use rf_schemas::framing::unframe;
use rf_schemas::reading::{ReadingDecoder, MAX_CLOCK_SKEW_MS};
use rf_schemas::registry::{RegistryClient, RegistryError};
use rf_schemas::rows::BookingEvent;
use rf_schemas::{Booking, DeadLetterReason, RoomVersion, BOOKING_AVSC, ROOM_AVSC};

use crate::{DeadLetter, Decoded, DecodedReading, RawRecord, RoomEvent, Topic};

/// Where writer schemas come from (asked from a background thread).
pub trait SchemaSource: Send + Sync + 'static {
    /// The schema text registered under `id`.
    fn fetch(&self, id: u32) -> Result<String, RegistryError>;
}

impl SchemaSource for RegistryClient {
    fn fetch(&self, id: u32) -> Result<String, RegistryError> {
        self.schema_by_id(id)
    }
}

/// How long an id the registry did not know is remembered as unknown.
const UNKNOWN_TTL: Duration = Duration::from_secs(10);
/// Cached schema ids, at most (known schemas are few; unknown ids are forgotten first).
const MAX_CACHED: usize = 4096;
/// The longest wait between two tries of an unreachable registry.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Fetches started ahead (for ids of records waiting behind another's), at most at once.
const MAX_PREFETCHES: usize = 64;

/// Called from a fetch's thread when it ended: wakes the dataflow's decoder.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

enum Entry {
    Reading(Result<Arc<ReadingDecoder>, String>),
    Room(Result<Arc<Schema>, String>),
    Unknown(Instant),
}

/// A cache key: which topic's record type, and the schema id.
type Key = (Topic, u32);
/// A fetch that ended.
type Fetched = (Key, Entry);

/// What decoding a record gave.
#[derive(Debug)]
pub enum Step {
    /// A decoded record, or its dead letter.
    Done(Result<Decoded, Box<DeadLetter>>),
    /// Its schema id is being fetched: the record comes back, to be offered again once
    /// [`Decoder::poll`] says the fetch ended.
    Wait(RawRecord),
}

/// Decodes and validates raw records; bad ones become dead letters with their reason.
pub struct Decoder<S> {
    source: Arc<S>,
    cache: HashMap<Key, Entry>,
    /// Ids being fetched, and where the fetches report.
    fetching: HashSet<Key>,
    fetched: (Sender<Fetched>, Receiver<Fetched>),
    /// Set when the process stops: fetches give up.
    stop: Arc<AtomicBool>,
    waker: Option<Waker>,
    room_reader: Schema,
    booking_reader: Schema,
    /// How far `ts` may run ahead of the consumer's clock, ms.
    clock_skew_ms: i64,
}

impl<S: SchemaSource> Decoder<S> {
    /// A decoder fetching writer schemas from `source`.
    pub fn new(source: S) -> Self {
        Self {
            source: Arc::new(source),
            cache: HashMap::new(),
            fetching: HashSet::new(),
            fetched: channel(),
            stop: Arc::default(),
            waker: None,
            room_reader: Schema::parse_str(ROOM_AVSC).expect("the embedded schema parses"),
            booking_reader: Schema::parse_str(BOOKING_AVSC).expect("the embedded schema parses"),
            clock_skew_ms: MAX_CLOCK_SKEW_MS,
        }
    }

    /// Gives up fetching (an unreachable registry is otherwise retried until it answers)
    /// once `stop` is set.
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = stop;
        self
    }

    /// Calls `waker` whenever a fetch ends (the dataflow's decoder wakes its operator).
    pub fn set_waker(&mut self, waker: Waker) {
        self.waker = Some(waker);
    }

    /// Whether the process is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Lets `ts` run up to `ms` ahead of the consumer's clock (default: the contract's
    /// five minutes). Only a simulation that runs faster than real time needs more.
    pub fn with_clock_skew(mut self, ms: i64) -> Self {
        self.clock_skew_ms = ms;
        self
    }

    /// Decodes one record: a reading, a room version or a tombstone, or a dead letter
    /// (boxed: letters are rare, and the good path stays small). Waits for the registry
    /// when the record's schema id is new: for tools and tests, not for the dataflow.
    pub fn decode(&mut self, mut record: RawRecord) -> Result<Decoded, Box<DeadLetter>> {
        loop {
            match self.try_decode(record) {
                Step::Done(decoded) => return decoded,
                Step::Wait(back) => {
                    record = back;
                    let Ok(done) = self.fetched.1.recv() else {
                        unreachable!("the decoder holds a sender")
                    };
                    self.settle(done);
                }
            }
        }
    }

    /// Decodes one record without waiting: a record whose schema id is not known yet
    /// comes back as [`Step::Wait`] while the id is fetched in the background.
    pub fn try_decode(&mut self, record: RawRecord) -> Step {
        let framed = record.value.as_deref().and_then(|v| unframe(v).ok());
        if let Some((id, _)) = framed {
            if !self.ready((record.topic, id)) {
                return Step::Wait(record);
            }
        }
        Step::Done(match record.topic {
            Topic::Readings => self.reading(record),
            Topic::Rooms => self.room(record),
            Topic::Bookings => self.booking(record),
        })
    }

    /// Starts fetching `record`'s schema id, if it is neither known nor fetched yet and
    /// fewer than a few fetches run ahead: the ids of records waiting behind another
    /// record's are fetched meanwhile, not one after the other.
    pub fn prefetch(&mut self, record: &RawRecord) {
        if self.fetching.len() >= MAX_PREFETCHES {
            return;
        }
        if let Some((id, _)) = record.value.as_deref().and_then(|v| unframe(v).ok()) {
            self.ready((record.topic, id));
        }
    }

    /// Takes in the fetches that ended; true if any did.
    pub fn poll(&mut self) -> bool {
        let mut any = false;
        while let Ok(done) = self.fetched.1.try_recv() {
            self.settle(done);
            any = true;
        }
        any
    }

    fn settle(&mut self, (key, entry): Fetched) {
        self.fetching.remove(&key);
        if self.cache.len() >= MAX_CACHED {
            // Garbage ids must not grow the cache without bound: forget the unknown ones.
            self.cache.retain(|_, e| !matches!(e, Entry::Unknown(_)));
        }
        self.cache.insert(key, entry);
    }

    fn reading(&mut self, record: RawRecord) -> Result<Decoded, Box<DeadLetter>> {
        use DeadLetterReason::*;
        let Some(value) = record.value.as_deref() else {
            return Err(Box::new(
                record.dead_letter(Malformed, "a reading without a value (tombstone)"),
            ));
        };
        let (id, body) = match unframe(value) {
            Ok(framed) => framed,
            Err(e) => return Err(Box::new(record.dead_letter(Malformed, e.to_string()))),
        };
        let decoder = match self.lookup(Topic::Readings, id) {
            Ok(Entry::Reading(Ok(d))) => d.clone(),
            Ok(Entry::Reading(Err(why))) => {
                let detail = format!("schema id {id} cannot be read as an OccupancyReading: {why}");
                return Err(Box::new(record.dead_letter(IncompatibleSchema, detail)));
            }
            Ok(_) => unreachable!("readings entries are readings"),
            Err(detail) => return Err(Box::new(record.dead_letter(UnknownSchema, detail))),
        };
        let reading = match decoder.decode(body) {
            Ok(r) => r,
            Err(e) => {
                return Err(Box::new(
                    record.dead_letter(Malformed, format!("schema id {id}: {e}")),
                ))
            }
        };
        if let Err(rejection) = reading.validate(record.timestamp, record.key.as_deref()) {
            return Err(Box::new(
                record.dead_letter(rejection.reason, rejection.detail),
            ));
        }
        // The record timestamp is the producer's word; the consumer's clock is not.
        if reading.ts > record.received.saturating_add(self.clock_skew_ms) {
            let detail = format!(
                "ts {} is {} s ahead of the pipeline's clock ({}); at most {} s are allowed",
                reading.ts,
                reading.ts.saturating_sub(record.received) / 1000,
                record.received,
                self.clock_skew_ms / 1000
            );
            return Err(Box::new(record.dead_letter(FutureTimestamp, detail)));
        }
        Ok(Decoded::Reading(Box::new(DecodedReading {
            reading,
            record,
            schema_id: id,
        })))
    }

    fn room(&mut self, record: RawRecord) -> Result<Decoded, Box<DeadLetter>> {
        use DeadLetterReason::*;
        let key = record
            .key
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let Some((room_id, from)) = key.rsplit_once('@') else {
            let detail = format!("room key {key:?} is not <room_id>@<effective_from>");
            return Err(Box::new(record.dead_letter(Malformed, detail)));
        };
        let Ok(effective_from) = from.parse::<i64>() else {
            let detail = format!("room key {key:?} has a non-numeric effective_from");
            return Err(Box::new(record.dead_letter(Malformed, detail)));
        };
        let Some(value) = record.value.as_deref() else {
            return Ok(Decoded::Room(Box::new(RoomEvent {
                tenant: record.tenant.clone(),
                partition: record.partition,
                offset: record.offset,
                room_id: room_id.to_owned(),
                effective_from,
                version: None,
            })));
        };
        let (id, body) = match unframe(value) {
            Ok(framed) => framed,
            Err(e) => return Err(Box::new(record.dead_letter(Malformed, e.to_string()))),
        };
        let writer = match self.lookup(Topic::Rooms, id) {
            Ok(Entry::Room(Ok(s))) => s.clone(),
            Ok(Entry::Room(Err(why))) => {
                let detail = format!("schema id {id} cannot be read as Room: {why}");
                return Err(Box::new(record.dead_letter(IncompatibleSchema, detail)));
            }
            Ok(_) => unreachable!("rooms entries are rooms"),
            Err(detail) => return Err(Box::new(record.dead_letter(UnknownSchema, detail))),
        };
        let room = match RoomVersion::decode(&writer, &self.room_reader, body) {
            Ok(room) => room,
            Err(why) => {
                return Err(Box::new(
                    record.dead_letter(Malformed, format!("schema id {id}: {why}")),
                ))
            }
        };
        if room.room_id != room_id || room.effective_from != effective_from {
            let detail = format!("room key {key:?} does not match the value's {}", room.key());
            return Err(Box::new(record.dead_letter(Malformed, detail)));
        }
        Ok(Decoded::Room(Box::new(RoomEvent {
            tenant: record.tenant,
            partition: record.partition,
            offset: record.offset,
            room_id: room.room_id.clone(),
            effective_from,
            version: Some(Arc::new(room)),
        })))
    }

    /// A booking version: validated, then passed on whole (the office key must match).
    fn booking(&mut self, record: RawRecord) -> Result<Decoded, Box<DeadLetter>> {
        use DeadLetterReason::*;
        let Some(value) = record.value.as_deref() else {
            let detail = "a booking is withdrawn by a cancelled version, not a tombstone";
            return Err(Box::new(record.dead_letter(Malformed, detail)));
        };
        let (id, body) = match unframe(value) {
            Ok(framed) => framed,
            Err(e) => return Err(Box::new(record.dead_letter(Malformed, e.to_string()))),
        };
        let writer = match self.lookup(Topic::Bookings, id) {
            Ok(Entry::Room(Ok(s))) => s.clone(),
            Ok(Entry::Room(Err(why))) => {
                let detail = format!("schema id {id} cannot be read as Booking: {why}");
                return Err(Box::new(record.dead_letter(IncompatibleSchema, detail)));
            }
            Ok(_) => unreachable!("bookings entries are records"),
            Err(detail) => return Err(Box::new(record.dead_letter(UnknownSchema, detail))),
        };
        let booking = match Booking::decode(&writer, &self.booking_reader, body) {
            Ok(b) => b,
            Err(why) => {
                let detail = format!("schema id {id}: {why}");
                return Err(Box::new(record.dead_letter(Malformed, detail)));
            }
        };
        if record.key.as_deref() != Some(booking.key().as_bytes()) {
            let detail = format!("booking key is not {:?}", booking.key());
            return Err(Box::new(record.dead_letter(Malformed, detail)));
        }
        Ok(Decoded::Booking(Box::new(BookingEvent {
            tenant: record.tenant,
            partition: record.partition,
            offset: record.offset,
            booking: Arc::new(booking),
        })))
    }

    /// Whether `key` is cached and fresh; if not, a fetch starts (unless one runs).
    /// An unreachable registry is retried with backoff in the background: records are
    /// never dropped because the registry is down.
    fn ready(&mut self, key: Key) -> bool {
        let fresh = match self.cache.get(&key) {
            Some(Entry::Unknown(at)) => at.elapsed() < UNKNOWN_TTL,
            Some(_) => true,
            None => false,
        };
        if !fresh && self.fetching.insert(key) {
            self.fetch(key);
        }
        fresh
    }

    /// The cached entry for `id` (see [`Decoder::ready`]).
    fn lookup(&self, topic: Topic, id: u32) -> Result<&Entry, String> {
        match self.cache.get(&(topic, id)) {
            Some(Entry::Unknown(_)) | None => Err(format!("schema id {id} is not registered")),
            Some(entry) => Ok(entry),
        }
    }

    /// Fetches `key` on a thread of its own, which reports to `fetched`. The dataflow
    /// holds back a tenant's later records while one of its ids is fetched, so there are
    /// never more fetches at once than tenants waiting.
    fn fetch(&self, key: Key) {
        let (source, stop, done) = (
            self.source.clone(),
            self.stop.clone(),
            self.fetched.0.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("schema-{}", key.1))
            .spawn(move || {
                if let Some(entry) = fetch(&*source, key, &stop) {
                    let _ = done.send((key, entry));
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(schema_id = key.1, %error, "cannot start a schema fetch; the registry is asked on the next record");
            let _ = self
                .fetched
                .0
                .send((key, Entry::Unknown(Instant::now() - UNKNOWN_TTL)));
        }
    }
}

/// Asks `source` for `key` until it answers, or `None` once `stop` is set.
fn fetch(source: &dyn SchemaSource, (topic, id): Key, stop: &AtomicBool) -> Option<Entry> {
    let mut backoff = Duration::from_millis(100);
    let text = loop {
        match source.fetch(id) {
            Ok(text) => break text,
            Err(RegistryError::UnknownId(_)) => return Some(Entry::Unknown(Instant::now())),
            Err(e) if e.is_retryable() => {
                tracing::warn!(schema_id = id, error = %e, "schema registry unavailable; retrying");
                let until = Instant::now() + backoff;
                while Instant::now() < until {
                    if stop.load(Ordering::Relaxed) {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(50).min(backoff));
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                tracing::warn!(schema_id = id, error = %e, "schema registry refused the lookup");
                return Some(Entry::Unknown(Instant::now()));
            }
        }
    };
    let schema = Schema::parse_str(&text).map_err(|e| format!("unparseable schema: {e}"));
    Some(match topic {
        Topic::Readings => {
            Entry::Reading(schema.and_then(|s| ReadingDecoder::new(&s)).map(Arc::new))
        }
        Topic::Rooms => Entry::Room(schema.and_then(|s| writer_of(s, "Room")).map(Arc::new)),
        Topic::Bookings => Entry::Room(schema.and_then(|s| writer_of(s, "Booking")).map(Arc::new)),
    })
}

/// `writer` if it is a record named `name`.
fn writer_of(writer: Schema, name: &str) -> Result<Schema, String> {
    match &writer {
        Schema::Record(r) if r.name.name() == name => Ok(writer),
        _ => Err(format!("writer schema is not a {name} record")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rf_schemas::{framing::frame_header, Reading, TenantId, OCCUPANCY_READING_AVSC};
    use std::sync::atomic::AtomicU32;

    struct Fixed {
        calls: AtomicU32,
    }

    impl SchemaSource for Fixed {
        fn fetch(&self, id: u32) -> Result<String, RegistryError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            match id {
                1 => Ok(OCCUPANCY_READING_AVSC.into()),
                2 => Ok(ROOM_AVSC.into()),
                5 => Ok(BOOKING_AVSC.into()),
                _ => Err(RegistryError::UnknownId(id)),
            }
        }
    }

    fn record(value: Option<Vec<u8>>, key: &str) -> RawRecord {
        RawRecord {
            tenant: TenantId::parse("acme").unwrap(),
            topic: Topic::Readings,
            partition: 3,
            offset: 42,
            timestamp: 1_700_000_000_000,
            received: 1_700_000_000_000,
            key: Some(key.as_bytes().to_vec()),
            value,
        }
    }

    fn framed(id: u32, r: &Reading) -> Vec<u8> {
        let mut v = Vec::new();
        frame_header(id, &mut v);
        r.encode_v1(&mut v);
        v
    }

    fn reading() -> Reading {
        Reading {
            sensor_id: "s".into(),
            office_id: "lon".into(),
            room_id: "r".into(),
            ts: 1_700_000_000_000,
            people_count: 3,
            temperature: None,
            humidity: None,
            co2_ppm: None,
            battery_pct: None,
        }
    }

    #[test]
    fn a_booking_passes_whole_and_a_wrong_one_is_rejected_with_its_reason() {
        use DeadLetterReason::*;
        let mut d = Decoder::new(Fixed {
            calls: AtomicU32::new(0),
        });
        let schema = Schema::parse_str(BOOKING_AVSC).unwrap();
        let booking = Booking {
            booking_id: "b1".into(),
            version: 2,
            office_id: "lon".into(),
            room_id: "lon-1".into(),
            start_ts: 1_700_000_000_000,
            end_ts: 1_700_001_800_000,
            cancelled: false,
            source: "graph".into(),
        };
        let mut decode = |b: &Booking, id: u32, key: &str| {
            let mut value = Vec::new();
            frame_header(id, &mut value);
            value.extend(b.encode(&schema));
            let record = RawRecord {
                topic: Topic::Bookings,
                ..record(Some(value), key)
            };
            d.decode(record)
        };
        match decode(&booking, 5, "lon/b1") {
            Ok(Decoded::Booking(e)) => assert_eq!(*e.booking, booking),
            other => panic!("expected the booking, got {other:?}"),
        }
        let reason = |r: Result<Decoded, Box<DeadLetter>>| r.err().map(|l| (l.reason, l.detail));
        let (why, detail) = reason(decode(&booking, 5, "lon")).unwrap();
        assert_eq!(why, Malformed);
        assert!(detail.contains("lon/b1"), "{detail}");
        let backwards = Booking {
            end_ts: booking.start_ts - 1,
            ..booking.clone()
        };
        let (why, detail) = reason(decode(&backwards, 5, "lon/b1")).unwrap();
        assert_eq!(why, Malformed);
        assert!(detail.contains("not after start_ts"), "{detail}");
        assert_eq!(
            reason(decode(&booking, 2, "lon/b1")).unwrap().0,
            IncompatibleSchema
        );
        assert_eq!(
            reason(decode(&booking, 9, "lon/b1")).unwrap().0,
            UnknownSchema
        );
    }

    #[test]
    fn each_failure_has_its_reason_and_schemas_are_fetched_once() {
        use DeadLetterReason::*;
        let mut d = Decoder::new(Fixed {
            calls: AtomicU32::new(0),
        });
        let reason = |d: &mut Decoder<Fixed>, value: Option<Vec<u8>>, key: &str| match d
            .decode(record(value, key))
        {
            Ok(_) => None,
            Err(letter) => {
                assert_eq!((letter.partition, letter.offset), (3, 42));
                assert_eq!(letter.source_topic, "occupancy.acme");
                Some(letter.reason)
            }
        };
        assert_eq!(reason(&mut d, Some(framed(1, &reading())), "lon"), None);
        assert_eq!(reason(&mut d, Some(framed(1, &reading())), "lon"), None);
        assert_eq!(
            d.source.calls.load(Ordering::Relaxed),
            1,
            "the decoder for id 1 is cached"
        );
        assert_eq!(reason(&mut d, None, "lon"), Some(Malformed));
        assert_eq!(reason(&mut d, Some(vec![1, 2]), "lon"), Some(Malformed));
        assert_eq!(
            reason(&mut d, Some(vec![0, 0, 0, 0, 1, 0xff]), "lon"),
            Some(Malformed)
        );
        assert_eq!(
            reason(&mut d, Some(framed(9, &reading())), "lon"),
            Some(UnknownSchema)
        );
        assert_eq!(
            reason(&mut d, Some(framed(2, &reading())), "lon"),
            Some(IncompatibleSchema)
        );
        let crowded = Reading {
            people_count: 20_000,
            ..reading()
        };
        assert_eq!(
            reason(&mut d, Some(framed(1, &crowded)), "lon"),
            Some(OutOfRange)
        );
        let ahead = Reading {
            ts: 1_700_000_000_000 + 301_000,
            ..reading()
        };
        assert_eq!(
            reason(&mut d, Some(framed(1, &ahead)), "lon"),
            Some(FutureTimestamp)
        );
        assert_eq!(
            reason(&mut d, Some(framed(1, &reading())), "nyc"),
            Some(OfficeMismatch)
        );
    }

    /// A registry that is down for the first `down` calls.
    struct Flaky {
        down: AtomicU32,
        calls: AtomicU32,
    }

    impl SchemaSource for Flaky {
        fn fetch(&self, _: u32) -> Result<String, RegistryError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) > 0 {
                self.down.fetch_sub(1, Ordering::Relaxed);
                return Err(RegistryError::Unreachable {
                    url: "http://127.0.0.1:1".into(),
                    reason: "connection refused".into(),
                });
            }
            Ok(OCCUPANCY_READING_AVSC.into())
        }
    }

    #[test]
    fn an_unreachable_registry_delays_a_new_id_and_never_drops_it() {
        let mut d = Decoder::new(Flaky {
            down: AtomicU32::new(2),
            calls: AtomicU32::new(0),
        });
        let decoded = d.decode(record(Some(framed(1, &reading())), "lon"));
        assert!(matches!(decoded, Ok(Decoded::Reading(_))), "{decoded:?}");
        assert_eq!(
            d.source.calls.load(Ordering::Relaxed),
            3,
            "two failed tries, then the schema"
        );
        // Down again: the cached id goes on without asking.
        d.source.down.store(u32::MAX, Ordering::Relaxed);
        for _ in 0..3 {
            let decoded = d.decode(record(Some(framed(1, &reading())), "lon"));
            assert!(matches!(decoded, Ok(Decoded::Reading(_))));
        }
        assert_eq!(d.source.calls.load(Ordering::Relaxed), 3);
    }

    /// A registry that answers only once let go.
    struct Gate {
        open: std::sync::Mutex<bool>,
        turn: std::sync::Condvar,
    }

    impl SchemaSource for Arc<Gate> {
        fn fetch(&self, id: u32) -> Result<String, RegistryError> {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.turn.wait(open).unwrap();
            }
            Fixed {
                calls: AtomicU32::new(0),
            }
            .fetch(id)
        }
    }

    #[test]
    fn a_new_id_waits_in_the_background_while_known_ids_decode() {
        let gate = Arc::new(Gate {
            open: std::sync::Mutex::new(true),
            turn: std::sync::Condvar::new(),
        });
        let mut d = Decoder::new(gate.clone());
        let known = d.decode(record(Some(framed(1, &reading())), "lon"));
        assert!(matches!(known, Ok(Decoded::Reading(_))));
        *gate.open.lock().unwrap() = false;
        let new = record(Some(framed(2, &reading())), "lon");
        let Step::Wait(new) = d.try_decode(new) else {
            panic!("id 2 is not known yet");
        };
        // Asked again while the fetch hangs: still waiting, and no second fetch.
        let Step::Wait(new) = d.try_decode(new) else {
            panic!("id 2 is still fetched");
        };
        assert_eq!(d.fetching.len(), 1);
        let again = d.try_decode(record(Some(framed(1, &reading())), "lon"));
        assert!(matches!(again, Step::Done(Ok(Decoded::Reading(_)))));
        assert!(!d.poll());
        *gate.open.lock().unwrap() = true;
        gate.turn.notify_all();
        while !d.poll() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let Step::Done(Err(letter)) = d.try_decode(new) else {
            panic!("id 2 is known now");
        };
        assert_eq!(letter.reason, DeadLetterReason::IncompatibleSchema);
    }

    #[test]
    fn stopping_ends_the_retries_of_an_unreachable_registry() {
        let stop = Arc::new(AtomicBool::new(false));
        let mut d = Decoder::new(Flaky {
            down: AtomicU32::new(u32::MAX),
            calls: AtomicU32::new(0),
        })
        .with_stop(stop.clone());
        assert!(matches!(
            d.try_decode(record(Some(framed(1, &reading())), "lon")),
            Step::Wait(_)
        ));
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let calls = || d.source.calls.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(200));
        let after_stop = calls();
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(calls(), after_stop, "no more tries once stopping");
        assert!(d.stopping());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Whatever a record holds, decoding gives a reading or a dead letter, never a
        /// panic; a framed id the source does not know is `unknown_schema`.
        #[test]
        fn any_record_is_decoded_or_dead_lettered(
            value in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)),
            key in "[a-z]{0,4}",
            id in 0u32..4,
        ) {
            let mut d = Decoder::new(Fixed { calls: AtomicU32::new(0) });
            let _ = d.decode(record(value.clone(), &key));
            let mut framed = Vec::new();
            frame_header(id, &mut framed);
            framed.extend(value.unwrap_or_default());
            let out = d.decode(record(Some(framed), &key));
            if id == 3 || id == 0 {
                let letter = out.expect_err("unknown ids are dead letters");
                proptest::prop_assert_eq!(letter.reason, DeadLetterReason::UnknownSchema);
            }
        }
    }
}
