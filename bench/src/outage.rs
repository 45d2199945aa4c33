//! Faults on demand, for the live benchmark's troubled neighbour and the isolation
//! tests: a TCP proxy that stops answering when told (a registry or a ClickHouse that
//! accepts connections and never replies), a schema id nobody has fetched yet, and a
//! publisher of readings framed with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use rf_pipelines::{KafkaConfig, RegistryConfig};
use rf_schemas::framing::frame_header;
use rf_schemas::registry::RegistryClient;
use rf_schemas::{Reading, TenantId};

use rf_jobs::simulate::Fleet;
use rf_jobs::JobError;

/// A loopback TCP proxy to `upstream` that holds every byte sent to it, open
/// connections included, while it hangs.
pub struct Hang {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    hang: Arc<AtomicBool>,
}

impl Hang {
    /// Starts proxying to `upstream` (`http://host:port`), answering for now.
    pub async fn start(upstream: &str) -> Result<Self, JobError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| JobError::Invalid(format!("cannot listen for the fault proxy: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| JobError::Invalid(format!("the fault proxy has no address: {e}")))?;
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let hang = Arc::new(AtomicBool::new(false));
        let held = hang.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, upstream.clone(), held.clone()));
            }
        });
        Ok(Self {
            url: format!("http://{address}"),
            hang,
        })
    }

    /// Stops answering (`true`) or answers again.
    pub fn hang(&self, on: bool) {
        self.hang.store(on, Ordering::Relaxed);
    }
}

async fn forward(client: TcpStream, upstream: String, held: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let requests = async {
        let mut buf = vec![0; 16 * 1024];
        loop {
            let n = from_client.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            while held.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            to_server.write_all(&buf[..n]).await?;
        }
    };
    let answers = tokio::io::copy(&mut from_server, &mut to_client);
    let _ = tokio::join!(requests, answers);
}

/// Registers, under `tenant`'s readings subject, `OccupancyReading` v2 with a doc naming
/// the tenant: a schema id no other tenant uses, that a pipeline has never fetched.
pub fn new_schema_id(registry: &RegistryConfig, tenant: &TenantId) -> Result<u32, JobError> {
    let mut schema: serde_json::Value = serde_json::from_str(rf_schemas::OCCUPANCY_READING_V2_AVSC)
        .map_err(|e| JobError::Invalid(format!("the embedded schema: {e}")))?;
    schema["doc"] = format!("OccupancyReading v2 as {tenant}'s sensors send it").into();
    let client = RegistryClient::new(&registry.url, Duration::from_secs(registry.timeout_secs));
    let text = schema.to_string();
    let subjects = [(rf_schemas::tenant::READINGS_PREFIX, text.as_str())];
    let registered = rf_jobs::schemas::register(
        &client,
        std::slice::from_ref(tenant),
        &subjects,
        registry.compatibility_check,
    )?;
    Ok(registered[0].id)
}

/// Publishes `rate` readings a second of `fleet`'s rooms, framed with `schema_id` as v2,
/// until `stop`; event time starts at `from` and runs `speed` times faster than the wall
/// clock. Returns how many were delivered.
pub fn publish(
    kafka: &KafkaConfig,
    fleet: &Fleet,
    schema_id: u32,
    (rate, from, speed): (u64, i64, f64),
    stop: &AtomicBool,
) -> Result<u64, JobError> {
    let rooms: Vec<(&TenantId, &rf_jobs::simulate::SimRoom)> = fleet
        .tenants
        .iter()
        .flat_map(|(t, rooms)| rooms.iter().map(move |r| (t, r)))
        .collect();
    if rooms.is_empty() {
        return Ok(0);
    }
    paced(kafka, rate, stop, |sent, elapsed| {
        let (tenant, room) = rooms[sent as usize % rooms.len()];
        let v = &room.version;
        let reading = Reading {
            sensor_id: format!("s-{}", v.room_id),
            office_id: v.office_id.clone(),
            room_id: v.room_id.clone(),
            ts: from + (elapsed.as_millis() as f64 * speed) as i64,
            people_count: (sent % (v.capacity as u64 + 1)) as i32,
            temperature: None,
            humidity: None,
            co2_ppm: Some(600),
            battery_pct: Some(90.0),
        };
        let mut value = Vec::with_capacity(64);
        frame_header(schema_id, &mut value);
        reading.encode_v2(&mut value);
        (tenant.readings_topic(), v.office_id.clone(), value)
    })
}

/// Sends `rate` records a second until `stop`, each `(topic, key, value)` made by
/// `record(records sent so far, time since the start)`; returns how many were delivered.
pub fn paced(
    kafka: &KafkaConfig,
    rate: u64,
    stop: &AtomicBool,
    mut record: impl FnMut(u64, Duration) -> (String, String, Vec<u8>),
) -> Result<u64, JobError> {
    let producer: BaseProducer = kafka
        .client_config()
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let started = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let (topic, key, value) = record(sent, started.elapsed());
            match producer.send(BaseRecord::to(&topic).key(&key).payload(&value)) {
                Ok(()) => sent += 1,
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(JobError::from(e)),
            }
        }
        producer.poll(Duration::from_millis(10));
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(|e| JobError::kafka("flushing what was published", e))?;
    Ok(sent)
}
