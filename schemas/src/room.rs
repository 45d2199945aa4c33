//! `io.roomflow.Room`: one version of a room's metadata.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;

/// What a room is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoomKind {
    /// A bookable or hot desk area.
    Desk,
    /// A meeting room, used in booked blocks.
    Meeting,
    /// A focus booth for one or two people.
    Focus,
    /// An open-plan area.
    OpenSpace,
    /// A collaboration area.
    Collab,
    /// Anything else.
    Other,
}

impl RoomKind {
    /// Every kind, in the Avro enum's symbol order.
    pub const ALL: [Self; 6] = [
        Self::Desk,
        Self::Meeting,
        Self::Focus,
        Self::OpenSpace,
        Self::Collab,
        Self::Other,
    ];

    /// The Avro symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Desk => "DESK",
            Self::Meeting => "MEETING",
            Self::Focus => "FOCUS",
            Self::OpenSpace => "OPEN_SPACE",
            Self::Collab => "COLLAB",
            Self::Other => "OTHER",
        }
    }

    /// The 1-based value of ClickHouse's `kind` Enum8.
    pub fn enum_value(self) -> i8 {
        Self::ALL.iter().position(|k| *k == self).expect("listed") as i8 + 1
    }
}

/// One version of a room, in effect from `effective_from` until a later version.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomVersion {
    /// The room.
    pub room_id: String,
    /// The office it belongs to.
    pub office_id: String,
    /// The office's display name.
    pub office_name: String,
    /// Region, e.g. `EMEA`.
    pub region: String,
    /// ISO 3166 alpha-2 country code.
    pub country_code: String,
    /// IANA time zone of the office; daily windows start at its midnight.
    pub timezone: chrono_tz::Tz,
    /// Floor number.
    pub floor: i32,
    /// Display name.
    pub name: String,
    /// What the room is for.
    pub kind: RoomKind,
    /// Seats; at least 1.
    pub capacity: u32,
    /// Floor area in square metres.
    pub area_m2: Option<f32>,
    /// What the room costs a month, in the tenant's currency.
    pub monthly_cost: Option<f64>,
    /// From when this version is in effect, ms since the epoch.
    pub effective_from: i64,
}

impl RoomVersion {
    /// The record key in `rooms.<tenant>`: `<room_id>@<effective_from>`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.room_id, self.effective_from)
    }

    /// Decodes an Avro body written with `writer`, resolved against the v1 room schema.
    pub fn decode(writer: &Schema, reader: &Schema, mut body: &[u8]) -> Result<Self, String> {
        let value = GenericDatumReader::builder(writer)
            .reader_schema(reader)
            .build()
            .and_then(|r| r.read_value(&mut body))
            .map_err(|e| format!("not a Room: {e}"))?;
        if !body.is_empty() {
            return Err(format!("{} trailing bytes after the record", body.len()));
        }
        let Value::Record(fields) = value else {
            return Err("not a record".into());
        };
        let mut f = Fields(fields);
        let timezone = f.string("timezone")?;
        let capacity = f.int("capacity")?;
        let room = Self {
            room_id: f.string("room_id")?,
            office_id: f.string("office_id")?,
            office_name: f.string("office_name")?,
            region: f.string("region")?,
            country_code: f.string("country_code")?,
            timezone: timezone
                .parse()
                .map_err(|_| format!("timezone {timezone:?} is not an IANA time zone"))?,
            floor: f.int("floor")?,
            name: f.string("name")?,
            kind: match f.take("kind")? {
                Value::Enum(i, _) => *RoomKind::ALL.get(i as usize).ok_or("bad kind")?,
                other => return Err(format!("kind is {other:?}")),
            },
            capacity: u32::try_from(capacity)
                .ok()
                .filter(|c| *c >= 1)
                .ok_or_else(|| format!("capacity {capacity} is below 1"))?,
            area_m2: match f.take("area_m2")? {
                Value::Union(_, v) => match *v {
                    Value::Float(x) => Some(x),
                    _ => None,
                },
                _ => None,
            },
            monthly_cost: match f.take("monthly_cost")? {
                Value::Union(_, v) => match *v {
                    Value::Double(x) => Some(x),
                    _ => None,
                },
                _ => None,
            },
            effective_from: match f.take("effective_from")? {
                Value::TimestampMillis(t) | Value::Long(t) => t,
                other => return Err(format!("effective_from is {other:?}")),
            },
        };
        Ok(room)
    }

    /// The v1 Avro body of this version (no Confluent header).
    pub fn encode(&self, schema: &Schema) -> Vec<u8> {
        let value = Value::Record(vec![
            ("room_id".into(), Value::String(self.room_id.clone())),
            ("office_id".into(), Value::String(self.office_id.clone())),
            (
                "office_name".into(),
                Value::String(self.office_name.clone()),
            ),
            ("region".into(), Value::String(self.region.clone())),
            (
                "country_code".into(),
                Value::String(self.country_code.clone()),
            ),
            (
                "timezone".into(),
                Value::String(self.timezone.name().into()),
            ),
            ("floor".into(), Value::Int(self.floor)),
            ("name".into(), Value::String(self.name.clone())),
            (
                "kind".into(),
                Value::Enum(self.kind.enum_value() as u32 - 1, self.kind.symbol().into()),
            ),
            ("capacity".into(), Value::Int(self.capacity as i32)),
            ("area_m2".into(), nullable(self.area_m2.map(Value::Float))),
            (
                "monthly_cost".into(),
                nullable(self.monthly_cost.map(Value::Double)),
            ),
            (
                "effective_from".into(),
                Value::TimestampMillis(self.effective_from),
            ),
        ]);
        GenericDatumWriter::builder(schema)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .expect("a RoomVersion always fits the Room schema")
    }
}

fn nullable(v: Option<Value>) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(v)),
    }
}

/// A decoded record's fields, taken out by name.
pub(crate) struct Fields(pub(crate) Vec<(String, Value)>);

impl Fields {
    pub(crate) fn take(&mut self, name: &str) -> Result<Value, String> {
        let i = self
            .0
            .iter()
            .position(|(n, _)| n == name)
            .ok_or(format!("missing {name}"))?;
        Ok(std::mem::replace(&mut self.0[i].1, Value::Null))
    }
    pub(crate) fn string(&mut self, name: &str) -> Result<String, String> {
        match self.take(name)? {
            Value::String(s) => Ok(s),
            other => Err(format!("{name} is {other:?}, expected a string")),
        }
    }
    pub(crate) fn int(&mut self, name: &str) -> Result<i32, String> {
        match self.take(name)? {
            Value::Int(i) => Ok(i),
            other => Err(format!("{name} is {other:?}, expected an int")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_avro() {
        let schema = Schema::parse_str(crate::ROOM_AVSC).unwrap();
        let room = RoomVersion {
            room_id: "lon-101".into(),
            office_id: "lon".into(),
            office_name: "London".into(),
            region: "EMEA".into(),
            country_code: "GB".into(),
            timezone: chrono_tz::Europe::London,
            floor: 1,
            name: "Thames".into(),
            kind: RoomKind::Meeting,
            capacity: 8,
            area_m2: Some(20.5),
            monthly_cost: None,
            effective_from: 1_700_000_000_000,
        };
        let body = room.encode(&schema);
        assert_eq!(RoomVersion::decode(&schema, &schema, &body).unwrap(), room);
        assert_eq!(room.key(), "lon-101@1700000000000");
        let zero = RoomVersion {
            capacity: 0,
            ..room.clone()
        }
        .encode(&schema);
        let err = RoomVersion::decode(&schema, &schema, &zero).unwrap_err();
        assert!(err.contains("capacity 0"), "{err}");
        assert!(RoomVersion::decode(&schema, &schema, &body[..body.len() - 3]).is_err());
    }
}
