//! `io.roomflow.Booking`: one version of a room booking, as a calendar connector publishes
//! it to `bookings.<tenant>`. Times only: what a meeting is about and who attends it never
//! leave the connector.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;

use crate::reading::MIN_TS_MS;
use crate::room::Fields;

/// The longest booking counted: anything longer is a calendar artefact (an all-week
/// hold), not a meeting.
pub const MAX_BOOKING_MS: i64 = 24 * 3_600_000;
/// The longest id a booking, room or office may have.
pub const MAX_ID_LEN: usize = 128;

/// One version of a booking of one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booking {
    /// Stable across versions: the connector hashes the provider's event id with the
    /// calendar, so that provider ids never reach the topic.
    pub booking_id: String,
    /// A higher version replaces a lower one; equal versions are the same version.
    pub version: i64,
    /// The office of the room.
    pub office_id: String,
    /// The room booked.
    pub room_id: String,
    /// When the booking starts, ms since the epoch.
    pub start_ts: i64,
    /// When it ends (exclusive), ms since the epoch.
    pub end_ts: i64,
    /// Withdrawn: the meeting was cancelled or the room released.
    pub cancelled: bool,
    /// Where it came from: `graph`, `google`, `import` or `simulator`.
    pub source: String,
}

impl Booking {
    /// The record key in `bookings.<tenant>`: `<office_id>/<booking_id>`. The topic is
    /// compacted: it keeps each booking's latest version, and every version of a booking
    /// goes to one partition, in order.
    pub fn key(&self) -> String {
        format!("{}/{}", self.office_id, self.booking_id)
    }

    /// Checks the contract's rules: ids present and short, times after 2000 and in
    /// order, at most [`MAX_BOOKING_MS`] long.
    pub fn validate(&self) -> Result<(), String> {
        for (name, id) in [
            ("booking_id", &self.booking_id),
            ("office_id", &self.office_id),
            ("room_id", &self.room_id),
        ] {
            if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
                return Err(format!(
                    "{name} must be 1 to {MAX_ID_LEN} printable characters"
                ));
            }
        }
        if self.start_ts < MIN_TS_MS {
            return Err(format!("start_ts {} is before 2000", self.start_ts));
        }
        if self.end_ts <= self.start_ts {
            return Err(format!(
                "end_ts {} is not after start_ts {}",
                self.end_ts, self.start_ts
            ));
        }
        if self.end_ts - self.start_ts > MAX_BOOKING_MS {
            return Err(format!(
                "the booking lasts {} min, more than the {} min counted",
                (self.end_ts - self.start_ts) / 60_000,
                MAX_BOOKING_MS / 60_000
            ));
        }
        Ok(())
    }

    /// Decodes an Avro body written with `writer`, resolved against `reader`, and
    /// validates it.
    pub fn decode(writer: &Schema, reader: &Schema, mut body: &[u8]) -> Result<Self, String> {
        let value = GenericDatumReader::builder(writer)
            .reader_schema(reader)
            .build()
            .and_then(|r| r.read_value(&mut body))
            .map_err(|e| format!("not a Booking: {e}"))?;
        if !body.is_empty() {
            return Err(format!("{} trailing bytes after the record", body.len()));
        }
        let Value::Record(fields) = value else {
            return Err("not a record".into());
        };
        let mut f = Fields(fields);
        let millis = |v: Value, name: &str| match v {
            Value::TimestampMillis(t) | Value::Long(t) => Ok(t),
            other => Err(format!("{name} is {other:?}")),
        };
        let booking = Self {
            booking_id: f.string("booking_id")?,
            version: millis(f.take("version")?, "version")?,
            office_id: f.string("office_id")?,
            room_id: f.string("room_id")?,
            start_ts: millis(f.take("start_ts")?, "start_ts")?,
            end_ts: millis(f.take("end_ts")?, "end_ts")?,
            cancelled: match f.take("cancelled")? {
                Value::Boolean(b) => b,
                other => return Err(format!("cancelled is {other:?}")),
            },
            source: f.string("source")?,
        };
        booking.validate()?;
        Ok(booking)
    }

    /// The Avro body of this version (no Confluent header).
    pub fn encode(&self, schema: &Schema) -> Vec<u8> {
        let value = Value::Record(vec![
            ("booking_id".into(), Value::String(self.booking_id.clone())),
            ("version".into(), Value::Long(self.version)),
            ("office_id".into(), Value::String(self.office_id.clone())),
            ("room_id".into(), Value::String(self.room_id.clone())),
            ("start_ts".into(), Value::TimestampMillis(self.start_ts)),
            ("end_ts".into(), Value::TimestampMillis(self.end_ts)),
            ("cancelled".into(), Value::Boolean(self.cancelled)),
            ("source".into(), Value::String(self.source.clone())),
        ]);
        GenericDatumWriter::builder(schema)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .expect("a Booking always fits the Booking schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booking() -> Booking {
        Booking {
            booking_id: "b1".into(),
            version: 3,
            office_id: "lon".into(),
            room_id: "lon-101".into(),
            start_ts: 1_700_000_000_000,
            end_ts: 1_700_001_800_000,
            cancelled: false,
            source: "graph".into(),
        }
    }

    #[test]
    fn round_trips_and_refuses_impossible_times() {
        let schema = Schema::parse_str(crate::BOOKING_AVSC).unwrap();
        let b = booking();
        assert_eq!(
            Booking::decode(&schema, &schema, &b.encode(&schema)).unwrap(),
            b
        );
        let backwards = Booking {
            end_ts: b.start_ts,
            ..b.clone()
        };
        let err = Booking::decode(&schema, &schema, &backwards.encode(&schema)).unwrap_err();
        assert!(err.contains("not after start_ts"), "{err}");
        let week = Booking {
            end_ts: b.start_ts + 7 * MAX_BOOKING_MS,
            ..b.clone()
        };
        assert!(week.validate().unwrap_err().contains("more than"));
        let blank = Booking {
            room_id: String::new(),
            ..b.clone()
        };
        assert!(blank.validate().unwrap_err().contains("room_id"));
        assert!(Booking::decode(&schema, &schema, &b.encode(&schema)[..5]).is_err());
    }
}
