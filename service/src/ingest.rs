//! `POST /v1/ingest`: readings from sensors and gateways that speak HTTPS, not Kafka.
//!
//! A batch is JSON (`{"readings": [...]}`) or an Avro object container file of
//! `OccupancyReading` records (v1 or v2), sent with an API key of the `ingest` role,
//! which can do nothing else. Each reading is checked by the contract's rules that need
//! no room metadata ([`Reading::validate`], the record timestamp being now); the
//! pipeline applies the rest (unknown rooms, offices that differ from the room's, late
//! readings) as for any reading, into the dead-letter topic. Accepted readings are
//! produced to `occupancy.<tenant>` in the Confluent wire format, keyed by office, and
//! rejected items to `deadletter.<tenant>` with their reason; the answer comes once the
//! broker has acknowledged every record, so an accepted reading is never lost. A batch
//! sent again after a failure is safe: a reading with the same room, sensor and `ts`
//! replaces the first, never counts twice.
//!
//! It runs in the query service rather than a process of its own: it shares the
//! service's API keys, tenant directory, per-tenant limits (class `ingest`), audit and
//! metrics, and a deployment that wants ingestion apart sends `/v1/ingest` to serve
//! processes of its own behind the same load balancer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;
use serde_json::{json, Value};

use rf_schemas::framing::frame_header;
use rf_schemas::registry::RegistryClient;
use rf_schemas::{DeadLetterReason, Reading, Rejection, TenantId};

use crate::limits::Class;
use crate::routes::{answer, ingest_caller, ApiError};
use crate::AppState;

/// What the gateway produces with, supplied by the binary (it has the broker's and the
/// registry's settings).
pub struct Gateway {
    producer: FutureProducer,
    registry: RegistryClient,
    /// How long the broker may take to acknowledge a batch.
    timeout: Duration,
    /// Per tenant, the id of the v2 reading schema under its subject.
    schema_ids: Mutex<HashMap<TenantId, u32>>,
}

impl Gateway {
    /// A gateway producing with the broker's client settings `kafka` (made idempotent,
    /// `acks=all`), framing with ids from `registry`, waiting at most `timeout` for the
    /// broker's acknowledgement of a batch.
    pub fn connect(
        mut kafka: rdkafka::ClientConfig,
        registry: RegistryClient,
        timeout: Duration,
    ) -> Result<Self, String> {
        kafka
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5");
        let producer = kafka
            .create()
            .map_err(|e| format!("cannot make the ingest producer: {e}"))?;
        Ok(Self {
            producer,
            registry,
            timeout,
            schema_ids: Mutex::default(),
        })
    }

    /// The id readings of `tenant` are framed with: the v2 schema registered under its
    /// subject (registering the same schema again returns its id).
    async fn schema_id(&self, tenant: &TenantId) -> Result<u32, ApiError> {
        if let Some(id) = self.lock().get(tenant) {
            return Ok(*id);
        }
        let registry = self.registry.clone();
        let subject = format!("{}-value", tenant.readings_topic());
        let id = tokio::task::spawn_blocking(move || {
            registry.register(&subject, rf_schemas::OCCUPANCY_READING_V2_AVSC)
        })
        .await
        .map_err(ApiError::unavailable)?
        .map_err(ApiError::unavailable)?;
        self.lock().insert(tenant.clone(), id);
        Ok(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, u32>> {
        self.schema_ids.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A reading as JSON: the Avro record's fields; `ts` in milliseconds or RFC 3339.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonReading {
    sensor_id: String,
    office_id: String,
    room_id: String,
    ts: Timestamp,
    people_count: i32,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    humidity: Option<f32>,
    #[serde(default)]
    co2_ppm: Option<i32>,
    #[serde(default)]
    battery_pct: Option<f32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Millis(i64),
    Text(String),
}

impl JsonReading {
    fn reading(self) -> Result<Reading, Rejection> {
        let ts = match self.ts {
            Timestamp::Millis(ms) => ms,
            Timestamp::Text(text) => chrono::DateTime::parse_from_rfc3339(&text)
                .map_err(|e| malformed(format!("ts {text:?} is not RFC 3339: {e}")))?
                .timestamp_millis(),
        };
        Ok(Reading {
            sensor_id: self.sensor_id,
            office_id: self.office_id,
            room_id: self.room_id,
            ts,
            people_count: self.people_count,
            temperature: self.temperature,
            humidity: self.humidity,
            co2_ppm: self.co2_ppm,
            battery_pct: self.battery_pct,
        })
    }
}

fn malformed(detail: String) -> Rejection {
    Rejection::new(DeadLetterReason::Malformed, detail)
}

/// One item of a batch: its reading when it parsed, and its bytes for a dead letter.
struct Item {
    reading: Result<Reading, Rejection>,
    bytes: Vec<u8>,
}

/// The items of a JSON batch; `Err` when the body is not one.
fn json_items(body: &[u8], max: usize) -> Result<Vec<Item>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        readings: Vec<Value>,
    }
    let batch: Batch = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad(
            "readings",
            format!("the body is not {{\"readings\": [...]}}: {e}"),
        )
    })?;
    check_count(batch.readings.len(), max)?;
    Ok(batch
        .readings
        .into_iter()
        .map(|value| Item {
            bytes: value.to_string().into_bytes(),
            reading: serde_json::from_value::<JsonReading>(value)
                .map_err(|e| malformed(e.to_string()))
                .and_then(JsonReading::reading),
        })
        .collect())
}

/// The items of an Avro object container file of readings (v1 or v2 writers, read as
/// v2); `Err` when the file cannot be read.
fn avro_items(body: &[u8], max: usize) -> Result<Vec<Item>, ApiError> {
    use apache_avro::types::Value as Avro;
    let schema = apache_avro::Schema::parse_str(rf_schemas::OCCUPANCY_READING_V2_AVSC)
        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let bad = |e: apache_avro::Error| {
        ApiError::bad(
            "body",
            format!("not an Avro object container file of readings: {e}"),
        )
    };
    let reader = apache_avro::Reader::builder(body)
        .reader_schema(&schema)
        .build()
        .map_err(bad)?;
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .map_err(bad)?;
    let mut items = Vec::new();
    for value in reader {
        let value = value.map_err(bad)?;
        check_count(items.len() + 1, max)?;
        let bytes = writer.write_value_to_vec(value.clone()).unwrap_or_default();
        let Avro::Record(fields) = value else {
            return Err(ApiError::bad("body", "a datum is not a record"));
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| match v {
                    Avro::Union(_, inner) => inner.as_ref(),
                    v => v,
                })
        };
        let text = |name: &str| match field(name) {
            Some(Avro::String(s)) => s.clone(),
            _ => String::new(),
        };
        let float = |name: &str| match field(name) {
            Some(Avro::Float(f)) => Some(*f),
            _ => None,
        };
        let ts = match field("ts") {
            Some(Avro::Long(ms) | Avro::TimestampMillis(ms)) => *ms,
            _ => i64::MIN,
        };
        let reading = Reading {
            sensor_id: text("sensor_id"),
            office_id: text("office_id"),
            room_id: text("room_id"),
            ts,
            people_count: match field("people_count") {
                Some(Avro::Int(n)) => *n,
                _ => -1,
            },
            temperature: float("temperature"),
            humidity: float("humidity"),
            co2_ppm: match field("co2_ppm") {
                Some(Avro::Int(n)) => Some(*n),
                _ => None,
            },
            battery_pct: float("battery_pct"),
        };
        items.push(Item {
            reading: Ok(reading),
            bytes,
        });
    }
    Ok(items)
}

fn check_count(n: usize, max: usize) -> Result<(), ApiError> {
    if n > max {
        return Err(ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {max} readings a request (service.ingest.max_readings)"),
        ));
    }
    Ok(())
}

/// `POST /v1/ingest` (see the module's documentation).
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = ingest_caller(&state, &headers)?;
    let Some(gateway) = &state.gateway else {
        return Err(ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "this service does not ingest (it was started without a broker)",
        ));
    };
    caller.limit(&state, Class::Ingest).await?;
    let max = state.config.ingest.max_readings;
    let kind = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let items = match kind.split(';').next().unwrap_or_default().trim() {
        "application/json" => json_items(&body, max)?,
        "application/avro" | "avro/binary" => avro_items(&body, max)?,
        other => {
            return Err(ApiError::status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content-type {other:?}: send application/json or application/avro"),
            ))
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    let schema_id = gateway.schema_id(&caller.tenant).await?;
    let (readings_topic, dead_topic) = (
        caller.tenant.readings_topic(),
        caller.tenant.deadletter_topic(),
    );
    let request_id = crate::audit::request_id().unwrap_or_default();
    let mut records = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    let mut accepted = 0u64;
    // A key of a site's gateway sends its offices' readings only.
    let sites = caller
        .subject
        .strip_prefix("apikey:")
        .and_then(|key_id| state.directory.sites(key_id));
    let at_site = |r: &Reading| match &sites {
        Some(offices) if !offices.contains(&r.office_id) => Err(Rejection::new(
            DeadLetterReason::OfficeMismatch,
            format!(
                "this ingest key sends readings of {} only, not of office {:?}",
                offices.join(", "),
                r.office_id
            ),
        )),
        _ => Ok(()),
    };
    for (index, item) in items.iter().enumerate() {
        let checked = item
            .reading
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|r| r.validate(now, Some(r.office_id.as_bytes())).map(|()| r))
            .and_then(|r| at_site(r).map(|()| r));
        match checked {
            Ok(reading) => {
                let mut value = Vec::with_capacity(64);
                frame_header(schema_id, &mut value);
                reading.encode_v2(&mut value);
                records.push((
                    readings_topic.as_str(),
                    reading.office_id.clone().into_bytes(),
                    value,
                    None,
                ));
                accepted += 1;
            }
            Err(rejection) => {
                let key = item
                    .reading
                    .as_ref()
                    .map(|r| r.office_id.clone().into_bytes())
                    .unwrap_or_default();
                records.push((
                    dead_topic.as_str(),
                    key,
                    item.bytes.clone(),
                    Some(rejection.clone()),
                ));
                rejected.push(json!({
                    "index": index,
                    "reason": rejection.reason.as_str(),
                    "detail": rejection.detail,
                }));
            }
        }
    }
    send(gateway, &records, &request_id).await?;
    let tenant = caller.tenant.as_str();
    state
        .ingested
        .with_label_values(&[tenant, "accepted"])
        .inc_by(accepted);
    for (.., rejection) in &records {
        if let Some(r) = rejection {
            state
                .ingested
                .with_label_values(&[tenant, r.reason.as_str()])
                .inc();
        }
    }
    Ok(answer(json!({
        "received": items.len(),
        "accepted": accepted,
        "rejected": rejected,
        "topic": readings_topic,
    })))
}

type Record<'a> = (&'a str, Vec<u8>, Vec<u8>, Option<Rejection>);

/// Produces every record and waits for the broker's acknowledgement of each; 503 with
/// `Retry-After` when it does not come.
async fn send(gateway: &Gateway, records: &[Record<'_>], request_id: &str) -> Result<(), ApiError> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let failed = |e: String| {
        tracing::warn!(error = %e, "the broker did not acknowledge an ingest batch");
        ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker did not acknowledge the batch; send it again (a reading sent twice counts once)",
        )
        .retry_after(5)
    };
    let mut deliveries = Vec::with_capacity(records.len());
    for (topic, key, value, rejection) in records {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic)
            .key(key)
            .payload(value);
        if let Some(r) = rejection {
            record = record.headers(
                OwnedHeaders::new()
                    .insert(Header {
                        key: "rf-reason",
                        value: Some(r.reason.as_str()),
                    })
                    .insert(Header {
                        key: "rf-detail",
                        value: Some(r.detail.as_str()),
                    })
                    .insert(Header {
                        key: "rf-source-topic",
                        value: Some("gateway"),
                    })
                    .insert(Header {
                        key: "rf-source-partition",
                        value: Some("-1"),
                    })
                    .insert(Header {
                        key: "rf-source-offset",
                        value: Some("-1"),
                    })
                    .insert(Header {
                        key: "rf-request-id",
                        value: Some(request_id),
                    }),
            );
        }
        loop {
            match gateway.producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(failed(e.to_string())),
            }
        }
    }
    for delivery in deliveries {
        match tokio::time::timeout(gateway.timeout, delivery).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err((e, _)))) => return Err(failed(e.to_string())),
            Ok(Err(_)) => return Err(failed("the producer closed".into())),
            Err(_) => return Err(failed("no acknowledgement in time".into())),
        }
    }
    Ok(())
}
