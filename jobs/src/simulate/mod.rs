//! `roomflow simulate`: publishes a simulated fleet's room metadata and readings.

mod fleet;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::ClientContext;

use rf_pipelines::{KafkaConfig, RegistryConfig};
use rf_schemas::framing::frame_header;
use rf_schemas::registry::RegistryClient;
use rf_schemas::{OCCUPANCY_READING_AVSC, OCCUPANCY_READING_V2_AVSC, ROOM_AVSC};

use crate::schemas::register_all;
use crate::JobError;

pub use fleet::{Fleet, FleetSpec, SimRoom, METADATA_EFFECTIVE_FROM};

const MINUTE: i64 = 60_000;

/// What to publish.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    /// The fleet.
    pub spec: FleetSpec,
    /// First minute of history, ms.
    pub from: i64,
    /// End of history (exclusive), ms.
    pub to: i64,
    /// After history, go on publishing in real time (scaled by `speed`) until stopped.
    pub live: bool,
    /// Simulated minutes per real minute in live mode.
    pub speed: f64,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
}

/// What was published.
#[derive(Debug, Default)]
pub struct SimulateReport {
    /// Room versions published.
    pub rooms: u64,
    /// Readings published.
    pub readings: u64,
    /// Booking versions published.
    pub bookings: u64,
    /// Deliveries the broker refused.
    pub failed: u64,
    /// Wall time.
    pub elapsed: Duration,
}

#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    purged: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            if matches!(
                error.rdkafka_error_code(),
                Some(RDKafkaErrorCode::PurgeQueue)
            ) {
                self.purged.fetch_add(1, Ordering::Relaxed);
            } else if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::error!(%error, "the broker refused a simulated reading");
            }
        }
    }
}

/// Publishes the fleet: room metadata, then readings minute by minute from `from` to
/// `to` as fast as the broker takes them, then (with `live`) in real time until
/// `shutdown` is set. Each record's timestamp is its reading's time plus a short
/// delivery delay, so a replay is judged like a live run.
pub fn simulate(
    kafka: &KafkaConfig,
    registry: &RegistryConfig,
    options: &SimulateOptions,
    shutdown: Arc<AtomicBool>,
) -> Result<SimulateReport, JobError> {
    if options.to < options.from {
        return Err(JobError::Invalid("--to is before --from".into()));
    }
    if !(options.speed > 0.0 && options.speed <= 100_000.0) {
        return Err(JobError::Invalid("--speed must be in (0, 100000]".into()));
    }
    let started = Instant::now();
    let fleet = Fleet::new(&options.spec);
    let check = registry.compatibility_check;
    let registry = RegistryClient::new(&registry.url, Duration::from_secs(registry.timeout_secs));
    let ids = register_all(&registry, &options.spec.tenants, check)?;
    let id_of = |subject: &str, schema: &str| {
        ids.iter()
            .find(|r| r.subject == subject && r.schema == schema)
            .map(|r| r.id)
            .expect("registered above")
    };

    let mut config = kafka.client_config();
    config
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "200000")
        .set("partitioner", "murmur2_random");
    let producer: ThreadedProducer<Deliveries> =
        config.create_with_context(Deliveries::default())?;
    let mut report = SimulateReport::default();
    let room_schema =
        apache_avro::Schema::parse_str(rf_schemas::ROOM_AVSC).expect("embedded schema");

    for (tenant, rooms) in &fleet.tenants {
        let topic = tenant.rooms_topic();
        let id = id_of(&format!("{topic}-value"), ROOM_AVSC);
        for room in rooms {
            let mut value = Vec::new();
            frame_header(id, &mut value);
            value.extend(room.version.encode(&room_schema));
            let key = room.version.key();
            send(&producer, BaseRecord::to(&topic).key(&key).payload(&value))?;
            report.rooms += 1;
        }
    }

    // Bookings are known ahead: those of the history and the day after it now, then
    // (live) each hour's a day ahead.
    let booking_schema =
        apache_avro::Schema::parse_str(rf_schemas::BOOKING_AVSC).expect("embedded schema");
    let booking_ids: Vec<u32> = fleet
        .tenants
        .iter()
        .map(|(t, _)| {
            id_of(
                &format!("{}-value", t.bookings_topic()),
                rf_schemas::BOOKING_AVSC,
            )
        })
        .collect();
    let publish_bookings =
        |from: i64, to: i64, report: &mut SimulateReport| -> Result<(), JobError> {
            for ((tenant, rooms), id) in fleet.tenants.iter().zip(&booking_ids) {
                let topic = tenant.bookings_topic();
                for room in rooms {
                    for b in fleet.bookings(room, from, to) {
                        let mut value = Vec::new();
                        frame_header(*id, &mut value);
                        value.extend(b.encode(&booking_schema));
                        send(
                            &producer,
                            BaseRecord::to(&topic).key(&b.key()).payload(&value),
                        )?;
                        report.bookings += 1;
                    }
                }
            }
            Ok(())
        };
    let ahead = 24 * 60 * MINUTE;
    let mut booked_until = options.to + ahead;
    publish_bookings(options.from, booked_until, &mut report)?;

    // Per tenant: the readings topic and the ids of v1 and v2 (upgraded sensors).
    let targets: Vec<(String, u32, u32)> = fleet
        .tenants
        .iter()
        .map(|(t, _)| {
            let subject = format!("{}-value", t.readings_topic());
            (
                t.readings_topic(),
                id_of(&subject, OCCUPANCY_READING_AVSC),
                id_of(&subject, OCCUPANCY_READING_V2_AVSC),
            )
        })
        .collect();
    let mut buf = Vec::with_capacity(128);
    let mut publish_minute = |minute: i64, report: &mut SimulateReport| -> Result<(), JobError> {
        for ((_, rooms), (topic, v1, v2)) in fleet.tenants.iter().zip(&targets) {
            for room in rooms {
                let reading = fleet.reading(room, minute);
                buf.clear();
                if room.v2 {
                    frame_header(*v2, &mut buf);
                    reading.encode_v2(&mut buf);
                } else {
                    frame_header(*v1, &mut buf);
                    reading.encode_v1(&mut buf);
                }
                let delay = 500 + (reading.ts.rem_euclid(7) * 300);
                let record = BaseRecord::to(topic)
                    .key(&reading.office_id)
                    .payload(&buf)
                    .timestamp(reading.ts + delay);
                send(&producer, record)?;
                report.readings += 1;
            }
        }
        Ok(())
    };

    let first = options.from.div_euclid(MINUTE) * MINUTE;
    let minutes = ((options.to - first) / MINUTE).max(0);
    let bar = if options.progress && minutes > 0 {
        let bar = ProgressBar::new(minutes as u64 * fleet.room_count() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} history {bar:40} {human_pos}/{human_len} readings, {per_sec}, eta {eta}",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut minute = first;
    while minute < options.to && !shutdown.load(Ordering::Relaxed) {
        publish_minute(minute, &mut report)?;
        bar.inc(fleet.room_count() as u64);
        minute += MINUTE;
    }
    bar.finish_and_clear();
    report.readings -= finish(&producer, &shutdown)?;
    tracing::info!(
        readings = report.readings,
        rooms = report.rooms,
        "history published"
    );

    if options.live {
        // Simulated time runs `speed` times faster than the wall clock from here on.
        let wall_start = Instant::now();
        let sim_start = minute;
        tracing::info!(
            speed = options.speed,
            "publishing live readings; Ctrl-C stops"
        );
        while !shutdown.load(Ordering::Relaxed) {
            let now = sim_start + (wall_start.elapsed().as_millis() as f64 * options.speed) as i64;
            while minute + MINUTE <= now {
                publish_minute(minute, &mut report)?;
                minute += MINUTE;
            }
            if minute + ahead > booked_until {
                publish_bookings(booked_until, booked_until + 60 * MINUTE, &mut report)?;
                booked_until += 60 * MINUTE;
            }
            producer.flush(Duration::from_secs(5))?;
            std::thread::sleep(Duration::from_millis(100));
        }
        report.readings -= finish(&producer, &shutdown)?;
    }
    report.failed = producer.context().failed.load(Ordering::Relaxed);
    report.elapsed = started.elapsed();
    if report.failed > 0 {
        return Err(JobError::Topics(format!(
            "{} of {} readings were not delivered",
            report.failed, report.readings
        )));
    }
    Ok(report)
}

fn send<K, P>(
    producer: &ThreadedProducer<Deliveries>,
    mut record: BaseRecord<'_, K, P>,
) -> Result<(), JobError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => return Err(JobError::from(e)),
        }
    }
}

/// Waits for every queued record, or, when stopping, drops what is still queued (a
/// simulation cut short loses nothing real) and waits only for what is in flight.
/// Returns how many records were dropped.
fn finish(producer: &ThreadedProducer<Deliveries>, shutdown: &AtomicBool) -> Result<u64, JobError> {
    if shutdown.load(Ordering::Relaxed) {
        producer.purge(PurgeConfig::default().queue());
    }
    flush(producer)?;
    Ok(producer.context().purged.swap(0, Ordering::Relaxed))
}

fn flush(producer: &ThreadedProducer<Deliveries>) -> Result<(), JobError> {
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| JobError::kafka("flushing the producer", e))
}
