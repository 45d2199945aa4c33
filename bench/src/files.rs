//! The comparison with other engines: a simulated backlog written to CSV files that any
//! engine can replay, and roomflow's operators replaying the very same files.
//!
//! Files: `rooms.csv` (`room_id,office_id,capacity`) and `readings/part-NNNNN.csv`
//! (`office_id,room_id,sensor_id,ts,people_count`, `ts` in ms), in event-time order.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rf_pipelines::{PipelineConfig, RegistryConfig};
use rf_schemas::framing::frame_header;
use rf_schemas::registry::RegistryClient;
use rf_schemas::{Reading, RoomVersion, TenantId};

use crate::capture::{Captured, Log};
use crate::compute::{compute, ComputeReport};
use crate::BACKLOG_START;
use rf_jobs::schemas::register_all;
use rf_jobs::simulate::Fleet;
use rf_jobs::JobError;

fn fleet(rooms: usize) -> Fleet {
    let tenant = TenantId::parse("bench-files").expect("a valid id");
    Fleet::new(&crate::fleet(&tenant, rooms))
}

/// Readings per file: each file is one micro-batch for engines that read a file at a time.
const PER_FILE: u64 = 500_000;
/// Partitions the readings are spread over by office, as on the readings topic.
const PARTITIONS: i32 = 12;

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> JobError {
    let what = format!("{what} {}", path.display());
    move |e| JobError::Invalid(format!("{what}: {e}"))
}

/// Writes `readings` readings of a fleet of `rooms` rooms (ten offices) under `dir`.
pub fn export(dir: &Path, readings: u64, rooms: usize) -> Result<u64, JobError> {
    let fleet = fleet(rooms);
    let parts = dir.join("readings");
    fs::create_dir_all(&parts).map_err(io("cannot create", &parts))?;
    let path = dir.join("rooms.csv");
    let mut out = BufWriter::new(File::create(&path).map_err(io("cannot create", &path))?);
    for room in fleet.tenants.iter().flat_map(|(_, r)| r) {
        let v = &room.version;
        writeln!(out, "{},{},{}", v.room_id, v.office_id, v.capacity)
            .map_err(io("cannot write", &path))?;
    }
    out.flush().map_err(io("cannot write", &path))?;

    let (mut written, mut minute) = (0u64, BACKLOG_START);
    let mut file: Option<BufWriter<File>> = None;
    while written < readings {
        for room in fleet.tenants.iter().flat_map(|(_, r)| r) {
            if written.is_multiple_of(PER_FILE) {
                if let Some(mut f) = file.take() {
                    f.flush().map_err(io("cannot write", &parts))?;
                }
                let path = parts.join(format!("part-{:05}.csv", written / PER_FILE));
                file = Some(BufWriter::new(
                    File::create(&path).map_err(io("cannot create", &path))?,
                ));
            }
            let r = fleet.reading(room, minute);
            let f = file.as_mut().expect("opened above");
            writeln!(
                f,
                "{},{},{},{},{}",
                r.office_id, r.room_id, r.sensor_id, r.ts, r.people_count
            )
            .map_err(io("cannot write", &parts))?;
            written += 1;
        }
        minute += 60_000;
    }
    if let Some(mut f) = file {
        f.flush().map_err(io("cannot write", &parts))?;
    }
    Ok(written)
}

/// What replaying the files took.
#[derive(Debug)]
pub struct ReplayReport {
    /// Reading and parsing the files and framing the records as on the topic.
    pub load: Duration,
    /// The operators over them.
    pub compute: ComputeReport,
}

/// Replays the files under `dir` through roomflow's operators: each line becomes the
/// record a sensor would have published (Avro, Confluent framing), spread over
/// partitions by office; then decode → aggregate as in the pipeline.
pub fn replay(
    dir: &Path,
    registry: &RegistryConfig,
    pipeline: &PipelineConfig,
) -> Result<ReplayReport, JobError> {
    let started = Instant::now();
    let tenant = TenantId::parse("bench-files").expect("a valid id");
    let client = RegistryClient::new(&registry.url, Duration::from_secs(registry.timeout_secs));
    let ids = register_all(
        &client,
        std::slice::from_ref(&tenant),
        registry.compatibility_check,
    )?;
    let id_of = |topic: String, schema: &str| {
        ids.iter()
            .find(|r| r.subject == format!("{topic}-value") && r.schema == schema)
            .map(|r| r.id)
            .expect("registered above")
    };
    let reading_id = id_of(tenant.readings_topic(), rf_schemas::OCCUPANCY_READING_AVSC);
    let room_id = id_of(tenant.rooms_topic(), rf_schemas::ROOM_AVSC);

    // The rooms' full metadata (time zones, names) comes from the fleet that wrote the
    // files; the file's columns must agree with it.
    let path = dir.join("rooms.csv");
    let listed = lines(&path)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io("cannot read", &path))?;
    let fleet = fleet(listed.len());
    let versions: Vec<&RoomVersion> = fleet
        .tenants
        .iter()
        .flat_map(|(_, r)| r)
        .map(|r| &r.version)
        .collect();
    let mut rooms = Log::default();
    let room_schema =
        apache_avro::Schema::parse_str(rf_schemas::ROOM_AVSC).expect("embedded schema");
    for (offset, (line, version)) in listed.iter().zip(versions).enumerate() {
        let [room, office, capacity] = fields::<3>(line, &path)?;
        if (room, office, number::<u32>(capacity, &path)?)
            != (
                version.room_id.as_str(),
                version.office_id.as_str(),
                version.capacity,
            )
        {
            return Err(JobError::Invalid(format!(
                "{}: line {} is not what `roomflow bench --export` wrote",
                path.display(),
                offset + 1
            )));
        }
        let mut value = Vec::new();
        frame_header(room_id, &mut value);
        value.extend(version.encode(&room_schema));
        rooms.push_parts(
            offset as i64,
            0,
            Some(version.key().as_bytes()),
            Some(&value),
        );
    }

    let mut readings: BTreeMap<i32, Log> = BTreeMap::new();
    let mut files: Vec<_> = fs::read_dir(dir.join("readings"))
        .map_err(io("cannot list", dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut value = Vec::with_capacity(128);
    for path in &files {
        for line in lines(path)? {
            let line = line.map_err(io("cannot read", path))?;
            let [office, room, sensor, ts, people] = fields::<5>(&line, path)?;
            let reading = Reading {
                sensor_id: sensor.into(),
                office_id: office.into(),
                room_id: room.into(),
                ts: number(ts, path)?,
                people_count: number(people, path)?,
                temperature: None,
                humidity: None,
                co2_ppm: None,
                battery_pct: None,
            };
            value.clear();
            frame_header(reading_id, &mut value);
            reading.encode_v1(&mut value);
            let partition = office_partition(office);
            let log = readings.entry(partition).or_default();
            let offset = log.len() as i64;
            log.push_parts(offset, reading.ts, Some(office.as_bytes()), Some(&value));
        }
    }
    let captured = Captured {
        tenant,
        rooms: BTreeMap::from([(0, rooms)]),
        readings,
    };
    let load = started.elapsed();
    let compute = compute(Arc::new(captured), registry, pipeline)?;
    Ok(ReplayReport { load, compute })
}

fn lines(path: &Path) -> Result<std::io::Lines<BufReader<File>>, JobError> {
    Ok(BufReader::new(File::open(path).map_err(io("cannot open", path))?).lines())
}

fn fields<'a, const N: usize>(line: &'a str, path: &Path) -> Result<[&'a str; N], JobError> {
    let mut out = [""; N];
    let mut parts = line.split(',');
    for slot in &mut out {
        *slot = parts.next().ok_or_else(|| {
            JobError::Invalid(format!(
                "{}: {line:?} has fewer than {N} fields",
                path.display()
            ))
        })?;
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(s: &str, path: &Path) -> Result<T, JobError> {
    s.parse()
        .map_err(|_| JobError::Invalid(format!("{}: {s:?} is not a number", path.display())))
}

/// The partition an office's readings go to (any stable spread will do here).
fn office_partition(office: &str) -> i32 {
    let h = office.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    (h % PARTITIONS as u64) as i32
}
