//! A tenant table's rows as a Parquet file and back, for any of its column types: the
//! columns are read from ClickHouse in one of six forms (text, date, time, integer,
//! unsigned 64-bit integer, float), each with its Parquet type, so a file reads in any
//! Parquet reader (DuckDB, Spark, pandas) and restores into the table it came from.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::ByteArray;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::schema::types::Type;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Rows per row group: bounds the writer's memory.
const GROUP_ROWS: usize = 65_536;

/// How a column's values are carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// Strings, enums (by name): UTF-8.
    Text,
    /// `Date`: days since 1970-01-01.
    Date,
    /// `DateTime`: milliseconds since the epoch, UTC.
    Time,
    /// Integers up to `Int64`.
    Int,
    /// `UInt64`, as its bits in an unsigned 64-bit column.
    UInt64,
    /// `Float32` and `Float64`, as doubles.
    Float,
}

/// A column of a table, as the manifest keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its ClickHouse type.
    #[serde(rename = "type")]
    pub ch_type: String,
}

impl Column {
    /// The form of the column and whether it is nullable; `Err` names a type the cold
    /// tier cannot carry.
    fn form(&self) -> Result<(Form, bool), String> {
        let (inner, nullable) = match unwrap(&self.ch_type, "Nullable(") {
            Some(t) => (t, true),
            None => (self.ch_type.as_str(), false),
        };
        let inner = unwrap(inner, "LowCardinality(").unwrap_or(inner);
        let form = match inner {
            "String" => Form::Text,
            t if t.starts_with("Enum8(") || t.starts_with("Enum16(") => Form::Text,
            t if t.starts_with("FixedString(") => Form::Text,
            "Date" => Form::Date,
            "DateTime" => Form::Time,
            t if t.starts_with("DateTime(") => Form::Time,
            "UInt8" | "UInt16" | "UInt32" | "Int8" | "Int16" | "Int32" | "Int64" => Form::Int,
            "UInt64" => Form::UInt64,
            "Float32" | "Float64" => Form::Float,
            other => {
                return Err(format!(
                    "column {}: type {other} has no cold form",
                    self.name
                ))
            }
        };
        Ok((form, nullable))
    }

    /// The expression that reads the column in its form.
    fn select(&self, form: Form) -> String {
        let c = format!("`{}`", self.name);
        match form {
            Form::Text => format!("toString({c})"),
            Form::Date => format!("intDiv(toUInt32(toDateTime({c}, 'UTC')), 86400)"),
            Form::Time => format!("toInt64(toUInt32({c})) * 1000"),
            Form::Int | Form::UInt64 => format!("toInt64({c})"),
            Form::Float => format!("toFloat64({c})"),
        }
    }

    fn parquet_type(&self, form: Form, nullable: bool) -> Result<Type, String> {
        let (physical, logical) = match form {
            Form::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
            Form::Date => (Physical::INT32, Some(LogicalType::Date)),
            Form::Time => (
                Physical::INT64,
                Some(LogicalType::timestamp(true, TimeUnit::MILLIS)),
            ),
            Form::Int => (Physical::INT64, Some(LogicalType::integer(64, true))),
            Form::UInt64 => (Physical::INT64, Some(LogicalType::integer(64, false))),
            Form::Float => (Physical::DOUBLE, None),
        };
        let repetition = if nullable {
            Repetition::OPTIONAL
        } else {
            Repetition::REQUIRED
        };
        Type::primitive_type_builder(&self.name, physical)
            .with_logical_type(logical)
            .with_repetition(repetition)
            .build()
            .map_err(|e| format!("column {}: {e}", self.name))
    }
}

/// `t` without `wrapper(` … `)`, if it has them.
fn unwrap<'a>(t: &'a str, wrapper: &str) -> Option<&'a str> {
    t.strip_prefix(wrapper)?.strip_suffix(')')
}

/// The `SELECT` list that reads `columns` in their forms, aliased `c0`, `c1`, …
pub fn select_list(columns: &[Column]) -> Result<String, String> {
    let mut list = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        let (form, _) = c.form()?;
        list.push(format!("{} AS c{i}", c.select(form)));
    }
    Ok(list.join(", "))
}

enum Values {
    Text(Vec<ByteArray>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Double(Vec<f64>),
}

struct Buffer {
    form: Form,
    nullable: bool,
    values: Values,
    /// Definition levels of a nullable column: 1 a value, 0 a null.
    defs: Vec<i16>,
}

/// Writes rows read with [`select_list`] (JSON objects keyed `c0`, `c1`, …) to a Parquet
/// file, a row group at a time.
pub struct Writer {
    file: SerializedFileWriter<File>,
    buffers: Vec<Buffer>,
    names: Vec<String>,
    buffered: usize,
    rows: u64,
}

impl Writer {
    /// A new file at `path` for `columns`, with `metadata` as key-value pairs.
    pub fn create(
        path: &Path,
        columns: &[Column],
        metadata: Vec<(String, String)>,
    ) -> Result<Self, String> {
        let mut fields = Vec::with_capacity(columns.len());
        let mut buffers = Vec::with_capacity(columns.len());
        for c in columns {
            let (form, nullable) = c.form()?;
            fields.push(Arc::new(c.parquet_type(form, nullable)?));
            let values = match form {
                Form::Text => Values::Text(Vec::new()),
                Form::Date => Values::Int32(Vec::new()),
                Form::Time | Form::Int | Form::UInt64 => Values::Int64(Vec::new()),
                Form::Float => Values::Double(Vec::new()),
            };
            buffers.push(Buffer {
                form,
                nullable,
                values,
                defs: Vec::new(),
            });
        }
        let schema = Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .map_err(|e| e.to_string())?;
        let metadata = metadata
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_key_value_metadata(Some(metadata))
            .build();
        let out = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(properties))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            file,
            buffers,
            names: (0..columns.len()).map(|i| format!("c{i}")).collect(),
            buffered: 0,
            rows: 0,
        })
    }

    /// Adds one row.
    pub fn push(&mut self, row: &Map<String, Value>) -> Result<(), String> {
        for (buffer, name) in self.buffers.iter_mut().zip(&self.names) {
            let value = row.get(name).unwrap_or(&Value::Null);
            if value.is_null() && buffer.nullable {
                buffer.defs.push(0);
                continue;
            }
            if buffer.nullable {
                buffer.defs.push(1);
            }
            let wrong = || format!("{name}: unexpected value {value}");
            match (&mut buffer.values, buffer.form) {
                (Values::Text(v), _) => v.push(value.as_str().ok_or_else(wrong)?.into()),
                (Values::Int32(v), _) => {
                    let day = value.as_i64().ok_or_else(wrong)?;
                    v.push(i32::try_from(day).map_err(|_| wrong())?);
                }
                (Values::Int64(v), _) => v.push(value.as_i64().ok_or_else(wrong)?),
                // ClickHouse writes a NaN as null.
                (Values::Double(v), _) => v.push(value.as_f64().unwrap_or(f64::NAN)),
            }
        }
        self.buffered += 1;
        self.rows += 1;
        if self.buffered >= GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.buffered == 0 {
            return Ok(());
        }
        let err = |e: parquet::errors::ParquetError| e.to_string();
        let mut group = self.file.next_row_group().map_err(err)?;
        for buffer in &mut self.buffers {
            let Some(mut column) = group.next_column().map_err(err)? else {
                return Err("the file has fewer columns than the table".into());
            };
            let defs = buffer.nullable.then_some(buffer.defs.as_slice());
            use parquet::column::writer::ColumnWriter as W;
            match (column.untyped(), &mut buffer.values) {
                (W::ByteArrayColumnWriter(w), Values::Text(v)) => w.write_batch(v, defs, None),
                (W::Int32ColumnWriter(w), Values::Int32(v)) => w.write_batch(v, defs, None),
                (W::Int64ColumnWriter(w), Values::Int64(v)) => w.write_batch(v, defs, None),
                (W::DoubleColumnWriter(w), Values::Double(v)) => w.write_batch(v, defs, None),
                _ => return Err("a column's writer does not match its form".into()),
            }
            .map_err(err)?;
            column.close().map_err(err)?;
            match &mut buffer.values {
                Values::Text(v) => v.clear(),
                Values::Int32(v) => v.clear(),
                Values::Int64(v) => v.clear(),
                Values::Double(v) => v.clear(),
            }
            buffer.defs.clear();
        }
        group.close().map_err(err)?;
        self.buffered = 0;
        Ok(())
    }

    /// Writes what is buffered and the footer; returns the rows written.
    pub fn finish(mut self) -> Result<u64, String> {
        self.flush()?;
        self.file.close().map_err(|e| e.to_string())?;
        Ok(self.rows)
    }
}

/// The rows of a file `path` holds, from its footer.
pub fn rows_in(path: &Path) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    Ok(reader.metadata().file_metadata().num_rows().max(0) as u64)
}

/// Reads the file at `path` (written by [`Writer`] for `columns`) as ClickHouse
/// TabSeparated rows, handing `out` about `chunk` bytes at a time.
pub fn to_tab_separated(
    path: &Path,
    columns: &[Column],
    chunk: usize,
    mut out: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<u64, String> {
    let forms = columns
        .iter()
        .map(|c| c.form().map(|f| f.0))
        .collect::<Result<Vec<_>, _>>()?;
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(chunk + 4096);
    let mut rows = 0;
    for row in reader.get_row_iter(None).map_err(|e| e.to_string())? {
        let row = row.map_err(|e| e.to_string())?;
        let mut fields = 0;
        for (i, (_, field)) in row.get_column_iter().enumerate() {
            let form = *forms
                .get(i)
                .ok_or("the file has more columns than its manifest")?;
            if i > 0 {
                buf.push(b'\t');
            }
            tab_separated(&mut buf, form, field)?;
            fields += 1;
        }
        if fields != forms.len() {
            return Err("the file has fewer columns than its manifest".into());
        }
        buf.push(b'\n');
        rows += 1;
        if buf.len() >= chunk {
            out(&buf)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        out(&buf)?;
    }
    Ok(rows)
}

/// One value in ClickHouse's TabSeparated form.
fn tab_separated(buf: &mut Vec<u8>, form: Form, field: &Field) -> Result<(), String> {
    let w = |buf: &mut Vec<u8>, s: std::fmt::Arguments| buf.write_fmt(s).map_err(|e| e.to_string());
    match (form, field) {
        (_, Field::Null) => buf.extend_from_slice(b"\\N"),
        (Form::Text, Field::Str(s)) => {
            for b in s.bytes() {
                match b {
                    b'\\' => buf.extend_from_slice(b"\\\\"),
                    b'\t' => buf.extend_from_slice(b"\\t"),
                    b'\n' => buf.extend_from_slice(b"\\n"),
                    b'\r' => buf.extend_from_slice(b"\\r"),
                    0 => buf.extend_from_slice(b"\\0"),
                    b => buf.push(b),
                }
            }
        }
        (Form::Date, Field::Date(days)) => {
            let day = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|d| d.checked_add_signed(chrono::TimeDelta::days(*days as i64)))
                .ok_or_else(|| format!("day {days} is out of range"))?;
            w(buf, format_args!("{}", day.format("%Y-%m-%d")))?
        }
        (Form::Time, Field::TimestampMillis(ms)) => {
            let at = chrono::DateTime::from_timestamp_millis(*ms)
                .ok_or_else(|| format!("time {ms} is out of range"))?;
            w(buf, format_args!("{}", at.format("%Y-%m-%d %H:%M:%S")))?
        }
        (Form::Int, Field::Long(n)) => w(buf, format_args!("{n}"))?,
        (Form::UInt64, Field::ULong(n)) => w(buf, format_args!("{n}"))?,
        (Form::Float, Field::Double(x)) => match x {
            x if x.is_nan() => buf.extend_from_slice(b"nan"),
            x if x.is_infinite() => buf.extend_from_slice(if *x > 0.0 { b"inf" } else { b"-inf" }),
            x => w(buf, format_args!("{x}"))?,
        },
        (form, field) => return Err(format!("a {form:?} column holds {field:?}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, ch_type: &str) -> Column {
        Column {
            name: name.into(),
            ch_type: ch_type.into(),
        }
    }

    #[test]
    fn every_form_comes_back_as_clickhouse_reads_it() {
        let columns = [
            column("day", "Date"),
            column("at", "DateTime('UTC')"),
            column("kind", "Enum8('a' = 1, 'b' = 2)"),
            column("note", "String"),
            column("n", "UInt32"),
            column("version", "UInt64"),
            column("x", "Float64"),
            column("maybe", "Nullable(Float32)"),
        ];
        let dir = std::env::temp_dir().join(format!("rf-cold-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.parquet");
        let mut w = Writer::create(&path, &columns, vec![("k".into(), "v".into())]).unwrap();
        let rows = [
            serde_json::json!({"c0": 19787, "c1": 1709632800000i64, "c2": "b", "c3": "tab\there\nand \\ slash",
                "c4": 7, "c5": -1, "c6": 0.1, "c7": null}),
            serde_json::json!({"c0": 0, "c1": 0, "c2": "a", "c3": "", "c4": 0, "c5": 5, "c6": null, "c7": 2.5}),
        ];
        for r in &rows {
            w.push(r.as_object().unwrap()).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 2);
        assert_eq!(rows_in(&path).unwrap(), 2);
        let mut out = Vec::new();
        let n = to_tab_separated(&path, &columns, 1, |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-03-05\t2024-03-05 10:00:00\tb\ttab\\there\\nand \\\\ slash\t7\t18446744073709551615\t0.1\t\\N\n\
             1970-01-01\t1970-01-01 00:00:00\ta\t\t0\t5\tnan\t2.5\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(select_list(&[column("a", "Array(String)")])
            .unwrap_err()
            .contains("column a: type Array(String)"));
    }
}
