//! Headcount per office (and department) from the HR system: Workday (a custom report
//! over RaaS, JSON), SAP SuccessFactors (OData v2) or a CSV file.
//!
//! Aggregates only. Each source's records are read one at a time, and only two values
//! are taken from each: its location (mapped to an office) and, if configured, its
//! department. Everything else (names, ids, emails, titles) is dropped as the record is
//! read; what leaves this module is a count per (office, department, day).

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::calendar::http::{get, Http};

/// The heads of one office (and department) on one day.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Row)]
pub struct Heads {
    /// Days since 1970-01-01 (ClickHouse `Date`).
    pub day: u16,
    /// The office.
    pub office_id: String,
    /// The department, or empty.
    pub department: String,
    /// People.
    pub heads: u32,
    /// `workday`, `successfactors`, `csv` or `simulator`.
    pub source: String,
    /// Higher replaces lower (ms of the import).
    pub version: u64,
}

/// How HR locations become offices.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// HR location name → office id; a location not listed is counted as `unmapped`.
    #[serde(default)]
    pub locations: BTreeMap<String, String>,
    /// The field holding the location in the source's records.
    pub location_field: String,
    /// The field holding the department, if departments are wanted.
    pub department_field: Option<String>,
}

/// Counts per (office, department); locations no office maps to are counted apart.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// (office, department) → heads.
    pub heads: BTreeMap<(String, String), u32>,
    /// Records whose location maps to no office.
    pub unmapped: u32,
    /// Records without a location.
    pub without_location: u32,
}

impl Counts {
    /// Counts one record by its location and department (`None`: not in the record).
    pub fn add(
        &mut self,
        mapping: &Mapping,
        location: Option<&str>,
        department: Option<&str>,
        n: u32,
    ) {
        let Some(location) = location.map(str::trim).filter(|l| !l.is_empty()) else {
            self.without_location += n;
            return;
        };
        let office = match mapping.locations.get(location) {
            Some(office) => office.clone(),
            None if mapping.locations.is_empty() => location.to_owned(),
            None => {
                self.unmapped += n;
                return;
            }
        };
        let department = if mapping.department_field.is_some() {
            department.unwrap_or("").trim().to_owned()
        } else {
            String::new()
        };
        *self.heads.entry((office, department)).or_default() += n;
    }

    /// The rows of `day`.
    pub fn rows(&self, day: u16, source: &str, version: u64) -> Vec<Heads> {
        self.heads
            .iter()
            .map(|((office_id, department), heads)| Heads {
                day,
                office_id: office_id.clone(),
                department: department.clone(),
                heads: *heads,
                source: source.to_owned(),
                version,
            })
            .collect()
    }
}

/// Splits one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("one field at least");
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => field.push(c),
        }
    }
    fields
}

/// Counts a CSV: one row per person (any columns, only the location and department ones
/// read), or one per office and department with a `headcount` column.
pub fn from_csv(text: &str, mapping: &Mapping) -> Result<Counts, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = csv_fields(lines.next().ok_or("the file is empty")?);
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let location = column(&mapping.location_field).ok_or_else(|| {
        format!(
            "location_field: no column {:?} in the header",
            mapping.location_field
        )
    })?;
    let department = match &mapping.department_field {
        Some(d) => Some(column(d).ok_or_else(|| format!("department_field: no column {d:?}"))?),
        None => None,
    };
    let headcount = column("headcount");
    let mut counts = Counts::default();
    for (i, line) in lines.enumerate() {
        let f = csv_fields(line);
        let n = match headcount {
            Some(c) => f
                .get(c)
                .and_then(|v| v.trim().parse::<u32>().ok())
                .ok_or_else(|| format!("line {}: headcount is not a whole number", i + 2))?,
            None => 1,
        };
        let dept = department.and_then(|d| f.get(d)).map(String::as_str);
        counts.add(mapping, f.get(location).map(String::as_str), dept, n);
    }
    Ok(counts)
}

/// One person in a report: only the two fields wanted are ever taken.
fn take(record: &serde_json::Value, field: &str) -> Option<String> {
    match record.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        // Workday renders references as objects with a descriptor.
        serde_json::Value::Object(o) => o.get("descriptor")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Counts a Workday custom report (RaaS, `?format=json`): `{"Report_Entry": [...]}`.
pub fn workday(
    http: &Http,
    report_url: &str,
    user: &str,
    password: &str,
    mapping: &Mapping,
) -> Result<Counts, String> {
    let url = if report_url.contains("format=json") {
        report_url.to_owned()
    } else if report_url.contains('?') {
        format!("{report_url}&format=json")
    } else {
        format!("{report_url}?format=json")
    };
    let body = basic_get(http, &url, user, password, "workday")?;
    #[derive(Deserialize)]
    struct Report {
        #[serde(rename = "Report_Entry", default)]
        entries: Vec<serde_json::Value>,
    }
    let report: Report =
        serde_json::from_slice(&body).map_err(|e| format!("workday report: {e}"))?;
    let mut counts = Counts::default();
    for entry in &report.entries {
        let dept = mapping
            .department_field
            .as_deref()
            .and_then(|d| take(entry, d));
        counts.add(
            mapping,
            take(entry, &mapping.location_field).as_deref(),
            dept.as_deref(),
            1,
        );
    }
    Ok(counts)
}

/// Counts SuccessFactors' active jobs (OData v2 `EmpJob`), following `__next` pages.
pub fn successfactors(
    http: &Http,
    api: &str,
    user: &str,
    password: &str,
    mapping: &Mapping,
) -> Result<Counts, String> {
    let mut select = mapping.location_field.clone();
    if let Some(d) = &mapping.department_field {
        select.push(',');
        select.push_str(d);
    }
    let mut url = format!(
        "{}/odata/v2/EmpJob?$select={select}&$filter=emplStatusNav/externalCode%20eq%20%27A%27&$format=json",
        api.trim_end_matches('/')
    );
    let mut counts = Counts::default();
    for _ in 0..10_000 {
        let body = basic_get(http, &url, user, password, "successfactors")?;
        #[derive(Deserialize)]
        struct Envelope {
            d: Page,
        }
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            results: Vec<serde_json::Value>,
            #[serde(rename = "__next")]
            next: Option<String>,
        }
        let page: Envelope =
            serde_json::from_slice(&body).map_err(|e| format!("successfactors page: {e}"))?;
        for job in &page.d.results {
            let dept = mapping
                .department_field
                .as_deref()
                .and_then(|d| take(job, d));
            counts.add(
                mapping,
                take(job, &mapping.location_field).as_deref(),
                dept.as_deref(),
                1,
            );
        }
        match page.d.next {
            Some(next) => url = next,
            None => return Ok(counts),
        }
    }
    Err("successfactors: more than 10,000 pages".into())
}

fn basic_get(
    http: &Http,
    url: &str,
    user: &str,
    password: &str,
    what: &str,
) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let mut request = get(url, "").map_err(|e| format!("{what}: {e}"))?;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    request.headers_mut().insert(
        "authorization",
        format!("Basic {credentials}")
            .parse()
            .map_err(|_| format!("{what}: the credentials do not fit a header"))?,
    );
    let answer = http.send(request).map_err(|e| format!("{what}: {e}"))?;
    match answer.status().as_u16() {
        200 => Ok(answer.into_body()),
        401 | 403 => Err(format!(
            "{what}: the credentials were refused (HTTP {})",
            answer.status().as_u16()
        )),
        status => Err(format!("{what}: HTTP {status}")),
    }
}

/// Writes `rows` into the tenant's `headcount` table (creating it if needed).
pub async fn store(
    clickhouse: &rf_sinks::config::ClickHouseConfig,
    tenant: &rf_schemas::TenantId,
    rows: &[Heads],
) -> clickhouse::error::Result<()> {
    let client = rf_sinks::clickhouse::client(clickhouse);
    for statement in rf_schemas::tenant_ddl(tenant) {
        client.query(&statement).execute().await?;
    }
    let mut insert = client
        .with_database(tenant.clickhouse_db())
        .insert::<Heads>("headcount")
        .await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Mapping {
        Mapping {
            locations: [("New York HQ".to_string(), "nyc".to_string())].into(),
            location_field: "Location".into(),
            department_field: Some("Dept".into()),
        }
    }

    #[test]
    fn a_person_level_csv_is_counted_and_nothing_else_kept() {
        let csv = "Name,Email,Location,Dept\n\"Roe, Jane\",jane@x,New York HQ,Sales\nJohn Doe,john@x,New York HQ,Sales\nAl,al@x,Atlantis,Ops\nBo,bo@x,,Ops\n";
        let c = from_csv(csv, &mapping()).unwrap();
        assert_eq!(
            c.heads,
            [(("nyc".to_string(), "Sales".to_string()), 2)].into()
        );
        assert_eq!((c.unmapped, c.without_location), (1, 1));
        let rows = format!("{:?}", c.rows(20_000, "csv", 1));
        assert!(!rows.contains("Jane") && !rows.contains("john@x"));
    }

    #[test]
    fn an_aggregate_csv_sums_its_headcount_column() {
        let csv = "Location,Dept,headcount\nNew York HQ,Sales,120\nNew York HQ,Ops,80\n";
        let c = from_csv(csv, &mapping()).unwrap();
        assert_eq!(c.heads.values().sum::<u32>(), 200);
        let err = from_csv("Office\nx\n", &mapping()).unwrap_err();
        assert!(err.contains("location_field"), "{err}");
        let err = from_csv(
            "Location,Dept,headcount\nNew York HQ,Sales,many\n",
            &mapping(),
        )
        .unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
