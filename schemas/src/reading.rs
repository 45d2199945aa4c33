//! `io.roomflow.OccupancyReading`: the record, a decoder specialised per writer schema,
//! the encoder the simulator uses, and the contract's validation rules.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::Schema;

use crate::deadletter::{DeadLetterReason, Rejection};

/// Largest plausible head count in one room.
pub const MAX_PEOPLE: i32 = 10_000;
/// The largest `co2_ppm` a reading may carry (the range of common NDIR sensors).
pub const MAX_CO2_PPM: i32 = 40_000;
/// How far `ts` may run ahead of the Kafka record timestamp.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// Readings before 2000-01-01 are impossible for this fleet.
pub const MIN_TS_MS: i64 = 946_684_800_000;

/// One people count taken by one sensor in one room.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The sensor that counted.
    pub sensor_id: String,
    /// The office the sensor says it is in; must match the room's.
    pub office_id: String,
    /// The room counted.
    pub room_id: String,
    /// Event time, milliseconds since the Unix epoch.
    pub ts: i64,
    /// People in the room at `ts`.
    pub people_count: i32,
    /// Degrees Celsius, when the sensor has a thermometer.
    pub temperature: Option<f32>,
    /// Relative humidity in percent, when the sensor has a hygrometer.
    pub humidity: Option<f32>,
    /// Carbon dioxide in parts per million (v2), when the sensor measures it.
    pub co2_ppm: Option<i32>,
    /// Battery charge in percent (v2), when the sensor reports it.
    pub battery_pct: Option<f32>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    SensorId,
    OfficeId,
    RoomId,
    Ts,
    People,
    Temperature,
    Humidity,
    Co2,
    Battery,
}

/// How one writer field is laid out on the wire.
#[derive(Clone, Debug)]
enum Wire {
    String,
    Int,
    Long,
    Float,
    /// A union of null and a number: the branch index of null, and the number's layout.
    Nullable {
        null_index: i64,
        value: Box<Wire>,
    },
}

#[derive(Clone, Debug)]
enum Step {
    Read(Target, Wire),
    /// A field the reader does not know: decoded generically and dropped.
    Skip(Schema),
}

/// Reads readings written with one particular writer schema, resolving it against v1.
///
/// Built once per schema id and reused: it walks the writer's fields in order and
/// converts them straight into a [`Reading`], without an intermediate `Value`.
#[derive(Clone, Debug)]
pub struct ReadingDecoder {
    steps: Vec<Step>,
}

/// Why a byte string is not a reading of the decoder's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl ReadingDecoder {
    /// Plans decoding for `writer`, or explains why it cannot be read as a reading.
    pub fn new(writer: &Schema) -> Result<Self, String> {
        let Schema::Record(record) = writer else {
            return Err("writer schema is not a record".into());
        };
        if record.name.name() != "OccupancyReading" {
            return Err(format!(
                "writer record is {}, expected OccupancyReading",
                record.name.fullname(None)
            ));
        }
        let mut steps = Vec::with_capacity(record.fields.len());
        let mut seen = Vec::new();
        for field in &record.fields {
            let target = match field.name.as_str() {
                "sensor_id" => Target::SensorId,
                "office_id" => Target::OfficeId,
                "room_id" => Target::RoomId,
                "ts" => Target::Ts,
                "people_count" => Target::People,
                "temperature" => Target::Temperature,
                "humidity" => Target::Humidity,
                "co2_ppm" => Target::Co2,
                "battery_pct" => Target::Battery,
                _ => {
                    steps.push(Step::Skip(field.schema.clone()));
                    continue;
                }
            };
            let wire = wire_for(target, &field.schema).ok_or_else(|| {
                format!(
                    "field {} has writer type {:?}, which cannot be read as v1's",
                    field.name,
                    field.schema.canonical_form()
                )
            })?;
            seen.push(target);
            steps.push(Step::Read(target, wire));
        }
        for (required, name) in [
            (Target::SensorId, "sensor_id"),
            (Target::OfficeId, "office_id"),
            (Target::RoomId, "room_id"),
            (Target::Ts, "ts"),
            (Target::People, "people_count"),
        ] {
            if !seen.contains(&required) {
                return Err(format!("writer schema lacks {name}, which has no default"));
            }
        }
        Ok(Self { steps })
    }

    /// Decodes one Avro body (the bytes after the Confluent header).
    pub fn decode(&self, body: &[u8]) -> Result<Reading, DecodeError> {
        let mut cur = Cursor { buf: body, pos: 0 };
        let mut r = Reading {
            sensor_id: String::new(),
            office_id: String::new(),
            room_id: String::new(),
            ts: 0,
            people_count: 0,
            temperature: None,
            humidity: None,
            co2_ppm: None,
            battery_pct: None,
        };
        for step in &self.steps {
            match step {
                Step::Read(target, wire) => match target {
                    Target::SensorId => r.sensor_id = cur.string()?,
                    Target::OfficeId => r.office_id = cur.string()?,
                    Target::RoomId => r.room_id = cur.string()?,
                    // Read as an integer: through f64, longs above 2^53 would round.
                    Target::Ts => {
                        r.ts = match wire {
                            Wire::Int => i64::from(cur.int()?),
                            _ => cur.long()?,
                        }
                    }
                    Target::People => r.people_count = cur.int()?,
                    Target::Temperature => r.temperature = cur.number(wire)?.map(|v| v as f32),
                    Target::Humidity => r.humidity = cur.number(wire)?.map(|v| v as f32),
                    Target::Co2 => r.co2_ppm = cur.number(wire)?.map(|v| v as i32),
                    Target::Battery => r.battery_pct = cur.number(wire)?.map(|v| v as f32),
                },
                Step::Skip(schema) => {
                    let mut rest = &cur.buf[cur.pos..];
                    let before = rest.len();
                    GenericDatumReader::builder(schema)
                        .build()
                        .and_then(|reader| reader.read_value(&mut rest))
                        .map_err(|e| DecodeError(format!("unreadable extra field: {e}")))?;
                    cur.pos += before - rest.len();
                }
            }
        }
        if cur.pos != body.len() {
            return Err(DecodeError(format!(
                "{} trailing bytes after the record",
                body.len() - cur.pos
            )));
        }
        Ok(r)
    }
}

fn wire_for(target: Target, schema: &Schema) -> Option<Wire> {
    let number = |s: &Schema| match s {
        Schema::Int => Some(Wire::Int),
        Schema::Long => Some(Wire::Long),
        Schema::Float => Some(Wire::Float),
        _ => None,
    };
    match target {
        Target::SensorId | Target::OfficeId | Target::RoomId => {
            matches!(schema, Schema::String).then_some(Wire::String)
        }
        Target::People => matches!(schema, Schema::Int).then_some(Wire::Int),
        Target::Ts => match schema {
            Schema::Long | Schema::TimestampMillis => Some(Wire::Long),
            Schema::Int => Some(Wire::Int),
            _ => None,
        },
        // CO2 is read from ints (or longs within range) only: a float would be rounded.
        Target::Co2 => match schema {
            Schema::Union(u) => {
                let variants = u.variants();
                let null_index = variants.iter().position(|v| matches!(v, Schema::Null))?;
                let value = match (variants.len(), &variants[1 - null_index]) {
                    (2, Schema::Int) => Wire::Int,
                    _ => return None,
                };
                Some(Wire::Nullable {
                    null_index: null_index as i64,
                    value: Box::new(value),
                })
            }
            Schema::Int => Some(Wire::Int),
            _ => None,
        },
        Target::Temperature | Target::Humidity | Target::Battery => match schema {
            Schema::Union(u) => {
                let variants = u.variants();
                let null_index = variants.iter().position(|v| matches!(v, Schema::Null))?;
                if variants.len() != 2 {
                    return None;
                }
                let value = number(&variants[1 - null_index])?;
                Some(Wire::Nullable {
                    null_index: null_index as i64,
                    value: Box::new(value),
                })
            }
            other => number(other),
        },
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn long(&mut self) -> Result<i64, DecodeError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(DecodeError("truncated varint".into()));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(DecodeError("varint longer than 10 bytes".into()))
    }

    fn int(&mut self) -> Result<i32, DecodeError> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| DecodeError(format!("int out of range: {v}")))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| DecodeError(format!("truncated: wanted {n} more bytes")))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.long()?;
        let len =
            usize::try_from(len).map_err(|_| DecodeError(format!("negative length {len}")))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("string is not UTF-8".into()))
    }

    fn number(&mut self, wire: &Wire) -> Result<Option<f64>, DecodeError> {
        Ok(Some(match wire {
            Wire::Int => f64::from(self.int()?),
            Wire::Long => self.long()? as f64,
            Wire::Float => f64::from(f32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            Wire::String => unreachable!("strings are not numbers"),
            Wire::Nullable { null_index, value } => {
                let branch = self.long()?;
                if branch == *null_index {
                    return Ok(None);
                }
                if branch != 1 - null_index {
                    return Err(DecodeError(format!("union branch {branch} does not exist")));
                }
                return self.number(value);
            }
        }))
    }
}

fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

fn put_nullable_float(out: &mut Vec<u8>, v: Option<f32>) {
    match v {
        None => put_long(out, 0),
        Some(v) => {
            put_long(out, 1);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

impl Reading {
    /// Appends the v1 Avro body of this reading to `out` (no Confluent header).
    pub fn encode_v1(&self, out: &mut Vec<u8>) {
        put_str(out, &self.sensor_id);
        put_str(out, &self.office_id);
        put_str(out, &self.room_id);
        put_long(out, self.ts);
        put_long(out, i64::from(self.people_count));
        put_nullable_float(out, self.temperature);
        put_nullable_float(out, self.humidity);
    }

    /// Appends the v2 Avro body of this reading to `out` (no Confluent header).
    pub fn encode_v2(&self, out: &mut Vec<u8>) {
        self.encode_v1(out);
        match self.co2_ppm {
            None => put_long(out, 0),
            Some(v) => {
                put_long(out, 1);
                put_long(out, i64::from(v));
            }
        }
        put_nullable_float(out, self.battery_pct);
    }

    /// Applies the contract's rules that need no room metadata. `record_ts` is the
    /// Kafka record timestamp, so that replays are judged like live runs; `key` is the
    /// record key, which must be the office id the reading names.
    pub fn validate(&self, record_ts: i64, key: Option<&[u8]>) -> Result<(), Rejection> {
        use DeadLetterReason::*;
        for (name, value) in [
            ("sensor_id", &self.sensor_id),
            ("office_id", &self.office_id),
            ("room_id", &self.room_id),
        ] {
            if value.is_empty() {
                return Err(Rejection::new(Malformed, format!("{name} is empty")));
            }
        }
        if !(0..=MAX_PEOPLE).contains(&self.people_count) {
            return Err(Rejection::new(
                OutOfRange,
                format!(
                    "people_count {} outside 0..={MAX_PEOPLE}",
                    self.people_count
                ),
            ));
        }
        if let Some(t) = self.temperature.filter(|t| !(-50.0..=80.0).contains(t)) {
            return Err(Rejection::new(
                OutOfRange,
                format!("temperature {t} outside -50..=80 °C"),
            ));
        }
        if let Some(h) = self.humidity.filter(|h| !(0.0..=100.0).contains(h)) {
            return Err(Rejection::new(
                OutOfRange,
                format!("humidity {h} outside 0..=100 %"),
            ));
        }
        if let Some(c) = self.co2_ppm.filter(|c| !(0..=MAX_CO2_PPM).contains(c)) {
            return Err(Rejection::new(
                OutOfRange,
                format!("co2_ppm {c} outside 0..={MAX_CO2_PPM}"),
            ));
        }
        if let Some(b) = self.battery_pct.filter(|b| !(0.0..=100.0).contains(b)) {
            return Err(Rejection::new(
                OutOfRange,
                format!("battery_pct {b} outside 0..=100 %"),
            ));
        }
        if self.ts < MIN_TS_MS {
            return Err(Rejection::new(
                OutOfRange,
                format!("ts {} is before 2000-01-01", self.ts),
            ));
        }
        if self.ts > record_ts.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(Rejection::new(
                FutureTimestamp,
                format!(
                    "ts {} is {} s after the record timestamp {record_ts}",
                    self.ts,
                    self.ts.saturating_sub(record_ts) / 1000
                ),
            ));
        }
        if key != Some(self.office_id.as_bytes()) {
            let key = key.map(String::from_utf8_lossy);
            return Err(Rejection::new(
                OfficeMismatch,
                format!(
                    "record key {key:?} differs from office_id {:?}",
                    self.office_id
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value;

    fn sample() -> Reading {
        Reading {
            sensor_id: "s-1".into(),
            office_id: "lon".into(),
            room_id: "lon-r1".into(),
            ts: 1_700_000_000_000,
            people_count: 4,
            temperature: Some(21.5),
            humidity: None,
            co2_ppm: None,
            battery_pct: None,
        }
    }

    fn write(schema: &Schema, value: Value) -> Vec<u8> {
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .build()
            .unwrap();
        writer.write_value_to_vec(value).unwrap()
    }

    fn v1() -> Schema {
        Schema::parse_str(crate::OCCUPANCY_READING_AVSC).unwrap()
    }

    /// [`sample`]'s v1 fields as apache-avro values.
    fn sample_v1_fields() -> Vec<(String, Value)> {
        vec![
            ("sensor_id".into(), Value::String("s-1".into())),
            ("office_id".into(), Value::String("lon".into())),
            ("room_id".into(), Value::String("lon-r1".into())),
            ("ts".into(), Value::TimestampMillis(sample().ts)),
            ("people_count".into(), Value::Int(4)),
            (
                "temperature".into(),
                Value::Union(1, Box::new(Value::Float(21.5))),
            ),
            ("humidity".into(), Value::Union(0, Box::new(Value::Null))),
        ]
    }

    #[test]
    fn encoder_matches_apache_avro_and_decoder_round_trips() {
        let r = sample();
        let mut ours = Vec::new();
        r.encode_v1(&mut ours);
        let theirs = write(&v1(), Value::Record(sample_v1_fields()));
        assert_eq!(ours, theirs);
        assert_eq!(
            ReadingDecoder::new(&v1()).unwrap().decode(&ours).unwrap(),
            r
        );
    }

    #[test]
    fn reads_a_v2_writer_with_extra_fields_and_defaults() {
        let v2 = Schema::parse_str(
            r#"{"type":"record","name":"OccupancyReading","namespace":"io.roomflow","fields":[
              {"name":"sensor_id","type":"string"},{"name":"office_id","type":"string"},
              {"name":"room_id","type":"string"},{"name":"ts","type":"long"},
              {"name":"people_count","type":"int"},
              {"name":"co2_ppm","type":["null","int"],"default":null}]}"#,
        )
        .unwrap();
        let value = Value::Record(vec![
            ("sensor_id".into(), Value::String("s".into())),
            ("office_id".into(), Value::String("o".into())),
            ("room_id".into(), Value::String("r".into())),
            ("ts".into(), Value::Long(1_700_000_000_000)),
            ("people_count".into(), Value::Int(2)),
            ("co2_ppm".into(), Value::Union(1, Box::new(Value::Int(800)))),
        ]);
        let body = write(&v2, value);
        let r = ReadingDecoder::new(&v2).unwrap().decode(&body).unwrap();
        assert_eq!(
            (r.room_id.as_str(), r.people_count, r.temperature, r.co2_ppm),
            ("r", 2, None, Some(800))
        );
    }

    #[test]
    fn v2_encoder_matches_apache_avro_and_v1_readers_skip_its_fields() {
        let v2 = Schema::parse_str(crate::OCCUPANCY_READING_V2_AVSC).unwrap();
        let r = Reading {
            co2_ppm: Some(612),
            battery_pct: Some(87.5),
            ..sample()
        };
        let mut ours = Vec::new();
        r.encode_v2(&mut ours);
        let mut fields = sample_v1_fields();
        fields.extend([
            ("co2_ppm".into(), Value::Union(1, Box::new(Value::Int(612)))),
            (
                "battery_pct".into(),
                Value::Union(1, Box::new(Value::Float(87.5))),
            ),
        ]);
        assert_eq!(ours, write(&v2, Value::Record(fields)));
        assert_eq!(ReadingDecoder::new(&v2).unwrap().decode(&ours).unwrap(), r);
        // Old readings under the new schema's decoder, new ones in the old shape: the
        // v1 body decoded as v1 carries no v2 fields.
        let mut old = Vec::new();
        r.encode_v1(&mut old);
        let as_v1 = ReadingDecoder::new(&v1()).unwrap().decode(&old).unwrap();
        assert_eq!((as_v1.co2_ppm, as_v1.battery_pct), (None, None));
    }

    #[test]
    fn v2_fields_are_validated() {
        let ok = sample();
        let key = Some(ok.office_id.as_bytes());
        for bad in [
            Reading {
                co2_ppm: Some(-1),
                ..sample()
            },
            Reading {
                co2_ppm: Some(MAX_CO2_PPM + 1),
                ..sample()
            },
            Reading {
                battery_pct: Some(100.5),
                ..sample()
            },
            Reading {
                battery_pct: Some(f32::NAN),
                ..sample()
            },
        ] {
            let rejection = bad.validate(ok.ts, key).unwrap_err();
            assert_eq!(rejection.reason, DeadLetterReason::OutOfRange, "{bad:?}");
        }
        let good = Reading {
            co2_ppm: Some(40_000),
            battery_pct: Some(0.0),
            ..sample()
        };
        assert!(good.validate(ok.ts, key).is_ok());
    }

    #[test]
    fn refuses_incompatible_writers() {
        let no_count = r#"{"type":"record","name":"OccupancyReading","fields":[
            {"name":"sensor_id","type":"string"},{"name":"office_id","type":"string"},
            {"name":"room_id","type":"string"},{"name":"ts","type":"long"}]}"#;
        let wrong_type = no_count.replace(
            r#"{"name":"ts","type":"long"}"#,
            r#"{"name":"ts","type":"string"}"#,
        );
        let other = r#"{"type":"record","name":"Room","fields":[]}"#;
        for s in [no_count, &wrong_type, other] {
            assert!(
                ReadingDecoder::new(&Schema::parse_str(s).unwrap()).is_err(),
                "{s}"
            );
        }
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let d = ReadingDecoder::new(&v1()).unwrap();
        let mut good = Vec::new();
        sample().encode_v1(&mut good);
        for cut in 0..good.len() {
            assert!(d.decode(&good[..cut]).is_err(), "prefix of {cut} bytes");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(d.decode(&trailing).is_err());
        assert!(d.decode(&[0xff; 12]).is_err());
        assert!(d.decode(&[0x01, 0x80]).is_err()); // negative string length
    }

    #[test]
    fn validation_rules() {
        use DeadLetterReason::*;
        let ok = sample();
        let key = Some(&b"lon"[..]);
        assert_eq!(ok.validate(ok.ts, key), Ok(()));
        // The sensor clock may run up to 5 minutes ahead of the record timestamp.
        assert_eq!(ok.validate(ok.ts - MAX_CLOCK_SKEW_MS, key), Ok(()));
        let with = |change: fn(&mut Reading)| {
            let mut r = sample();
            change(&mut r);
            r
        };
        let cases: [(Reading, i64, Option<&[u8]>, DeadLetterReason); 10] = [
            (
                ok.clone(),
                ok.ts - MAX_CLOCK_SKEW_MS - 1,
                key,
                FutureTimestamp,
            ),
            (with(|r| r.people_count = -1), ok.ts, key, OutOfRange),
            (with(|r| r.people_count = 10_001), ok.ts, key, OutOfRange),
            (with(|r| r.humidity = Some(101.0)), ok.ts, key, OutOfRange),
            (
                with(|r| r.temperature = Some(f32::NAN)),
                ok.ts,
                key,
                OutOfRange,
            ),
            (with(|r| r.ts = 5), ok.ts, key, OutOfRange),
            (with(|r| r.room_id.clear()), ok.ts, key, Malformed),
            (with(|r| r.sensor_id.clear()), ok.ts, key, Malformed),
            (ok.clone(), ok.ts, Some(b"nyc"), OfficeMismatch),
            (ok.clone(), ok.ts, None, OfficeMismatch),
        ];
        for (reading, record_ts, key, reason) in cases {
            let rejection = reading.validate(record_ts, key).unwrap_err();
            assert_eq!(rejection.reason, reason, "{reading:?}");
            assert!(!rejection.detail.is_empty());
        }
    }
}
