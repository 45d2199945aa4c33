//! The cold tier: a tenant's months past its hot retention, kept as Parquet files in a
//! directory or an S3 bucket, each month with a manifest of its files' rows, sizes and
//! SHA-256 checksums, and brought back into ClickHouse on demand (`restore-cold`).
//!
//! Layout under the configured URL: `<tenant>/<YYYYMM>/<table>.parquet` and
//! `<tenant>/<YYYYMM>/manifest.json`. A file is uploaded, read back and checked before
//! the manifest names it, and the manifest before the month's partition is dropped, so
//! a crash at any step leaves the month hot, cold, or both, never neither.

pub mod parquet;

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use rf_schemas::TenantId;

use crate::JobError;
pub use parquet::Column;

/// Where cold months go and how long they stay.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColdConfig {
    /// A directory (a path, or `file:///…`) or an S3 bucket (`s3://bucket/prefix`);
    /// `{region}` is replaced by the tenant's region, so each region's months stay in
    /// it. Empty: months past retention are dropped and not kept.
    pub url: String,
    /// The object store's settings, e.g. `aws_endpoint`, `aws_region`,
    /// `aws_allow_http`; credentials come from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`) or from here.
    pub options: BTreeMap<String, String>,
    /// A cold month is deleted this many days after it ended (7 years).
    pub keep_days: u32,
}

impl Default for ColdConfig {
    fn default() -> Self {
        Self {
            url: "cold".into(),
            options: BTreeMap::new(),
            keep_days: 2557,
        }
    }
}

impl ColdConfig {
    /// Checks the fields; the message names the one that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        crate::store::validate("jobs.cold", &self.url, &self.options)?;
        if self.keep_days == 0 {
            return Err("jobs.cold.keep_days: must be at least 1".into());
        }
        Ok(())
    }
}

/// A month's manifest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The tenant.
    pub tenant: String,
    /// The month, `YYYYMM`.
    pub month: u32,
    /// One file per table.
    pub files: Vec<ColdFile>,
    /// While a restored month is kept hot, ms: retention leaves it until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_until_ms: Option<i64>,
}

impl Manifest {
    /// Refuses a manifest whose names could not have been written by retention: its
    /// tables, files, partitioning columns and column names reach SQL and paths, and a
    /// bucket is not trusted to hold only what roomflow put there.
    pub fn check(&self) -> Result<(), JobError> {
        let name = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !s.starts_with(|c: char| c.is_ascii_digit())
        };
        for f in &self.files {
            let known = crate::retention::COLD_TABLES.contains(&f.table.as_str())
                && f.file == format!("{}.parquet", f.table)
                && ["window_start", "day", "ts"].contains(&f.partitioned_by.as_str())
                && f.columns.iter().all(|c| name(&c.name));
            if !known {
                return Err(cold_err(format!(
                    "the manifest of {} {} names a file roomflow did not write ({:?}); nothing was restored",
                    self.tenant, self.month, f.file
                )));
            }
        }
        Ok(())
    }
}

/// One table's month in the cold tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColdFile {
    /// The table.
    pub table: String,
    /// The file, beside the manifest.
    pub file: String,
    /// The column whose month the rows share (`toYYYYMM` of it is the partition).
    pub partitioned_by: String,
    /// Its rows.
    pub rows: u64,
    /// Its size, bytes.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The table's columns when it was exported.
    pub columns: Vec<Column>,
    /// When, ms.
    pub exported_ms: i64,
}

/// One region's cold store.
#[derive(Clone, Debug)]
pub struct ColdStore {
    store: Arc<dyn ObjectStore>,
    files: crate::store::Store,
    /// Where it is, for messages.
    pub location: String,
    /// Where files are staged on their way in and out (made when first needed).
    scratch: PathBuf,
    /// The directory, for a store that is one.
    local_dir: Option<PathBuf>,
}

fn cold_err(what: impl std::fmt::Display) -> JobError {
    JobError::Cold(what.to_string())
}

impl ColdStore {
    /// `config`'s store for `region` (None when the cold tier is off); `scratch` is a
    /// local directory for files on their way.
    pub fn open(
        config: &ColdConfig,
        region: &str,
        scratch: &FsPath,
    ) -> Result<Option<Self>, JobError> {
        if config.url.is_empty() {
            return Ok(None);
        }
        let url = config.url.replace("{region}", region);
        let files = crate::store::open("jobs.cold", &url, &config.options).map_err(cold_err)?;
        Ok(Some(Self {
            store: files.store.clone(),
            location: url,
            scratch: scratch.to_path_buf(),
            local_dir: files.local_dir.clone(),
            files,
        }))
    }

    /// A file of the staging directory.
    fn staging(&self, name: &str) -> Result<PathBuf, JobError> {
        std::fs::create_dir_all(&self.scratch)
            .map_err(|e| cold_err(format!("cannot create {}: {e}", self.scratch.display())))?;
        Ok(self.scratch.join(name))
    }

    fn manifest_path(tenant: &TenantId, month: u32) -> Path {
        Path::from(format!("{tenant}/{month}/manifest.json"))
    }

    /// The month's manifest, if the month is cold.
    pub async fn manifest(
        &self,
        tenant: &TenantId,
        month: u32,
    ) -> Result<Option<Manifest>, JobError> {
        let path = Self::manifest_path(tenant, month);
        let bytes = match self.store.get(&path).await {
            Ok(got) => got.bytes().await.map_err(cold_err)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(cold_err(e)),
        };
        let manifest =
            serde_json::from_slice(&bytes).map_err(|e| cold_err(format!("{path}: {e}")))?;
        Ok(Some(manifest))
    }

    /// Writes the month's manifest, replacing the one there.
    pub async fn put_manifest(&self, manifest: &Manifest) -> Result<(), JobError> {
        let tenant = TenantId::parse(&manifest.tenant).map_err(cold_err)?;
        let path = Self::manifest_path(&tenant, manifest.month);
        let body = serde_json::to_vec_pretty(manifest).map_err(cold_err)?;
        self.store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(cold_err)?;
        Ok(())
    }

    /// The tenant's cold months, with their manifests' files (`YYYYMM` → keys).
    pub async fn objects(&self, tenant: &TenantId) -> Result<Vec<Path>, JobError> {
        let prefix = Path::from(tenant.as_str());
        let mut found = Vec::new();
        let mut listed = self.store.list(Some(&prefix));
        while let Some(meta) = listed.next().await {
            found.push(meta.map_err(cold_err)?.location);
        }
        Ok(found)
    }

    /// The months the tenant has in the cold tier (those with a manifest).
    pub async fn months(&self, tenant: &TenantId) -> Result<Vec<u32>, JobError> {
        let mut months: Vec<u32> = self
            .objects(tenant)
            .await?
            .iter()
            .filter(|p| p.filename() == Some("manifest.json"))
            .filter_map(|p| p.parts().nth(1)?.as_ref().parse().ok())
            .collect();
        months.sort_unstable();
        months.dedup();
        Ok(months)
    }

    /// Deletes every file under `<tenant>/` or, with `month`, under `<tenant>/<month>/`
    /// (the manifest first, so a month half deleted is no longer cold); returns how
    /// many went.
    pub async fn delete(&self, tenant: &TenantId, month: Option<u32>) -> Result<u64, JobError> {
        let mut paths = self.objects(tenant).await?;
        if let Some(m) = month {
            let m = m.to_string();
            paths.retain(|p| p.parts().nth(1).is_some_and(|part| part.as_ref() == m));
        }
        paths.sort_by_key(|p| p.filename() != Some("manifest.json"));
        for path in &paths {
            match self.store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(cold_err(e)),
            }
        }
        // A directory's emptied folders go too (a folder's name is the tenant's id);
        // only these two levels, never the directory itself or above it.
        if let Some(dir) = &self.local_dir {
            let tenant_dir = dir.join(tenant.as_str());
            let months: Vec<PathBuf> = match month {
                Some(m) => vec![tenant_dir.join(m.to_string())],
                None => std::fs::read_dir(&tenant_dir)
                    .map(|entries| entries.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default(),
            };
            for folder in months.iter().chain([&tenant_dir]) {
                // Not empty (a file written meanwhile) or already gone: left as it is.
                let _ = std::fs::remove_dir(folder);
            }
        }
        Ok(paths.len() as u64)
    }

    /// Exports the month `month` of `db.table` (its partition `toYYYYMM(column)`) to
    /// `<tenant>/<month>/<table>.parquet`: every stored row, versions included, so a
    /// restore brings back exactly what was there. The file is read back and checked
    /// before this returns its entry for the manifest.
    pub async fn export(
        &self,
        client: &clickhouse::Client,
        tenant: &TenantId,
        table: &str,
        column: &str,
        month: u32,
    ) -> Result<ColdFile, JobError> {
        let db = tenant.clickhouse_db();
        let columns: Vec<(String, String)> = client
            .query("SELECT name, type FROM system.columns WHERE database = ? AND table = ?")
            .bind(&db)
            .bind(table)
            .fetch_all()
            .await?;
        let columns: Vec<Column> = columns
            .into_iter()
            .map(|(name, ch_type)| Column { name, ch_type })
            .collect();
        let select =
            parquet::select_list(&columns).map_err(|e| cold_err(format!("{table}: {e}")))?;
        let filter = format!("toYYYYMM({column}) = {month}");
        let expected: u64 = client
            .query(&format!("SELECT count() FROM {db}.{table} WHERE {filter}"))
            .fetch_one()
            .await?;
        let staged = self.staging(&format!("{tenant}-{month}-{table}.parquet"))?;
        let metadata = vec![
            ("roomflow.tenant".to_string(), tenant.to_string()),
            ("roomflow.table".to_string(), table.to_string()),
            ("roomflow.month".to_string(), month.to_string()),
        ];
        let mut writer = parquet::Writer::create(&staged, &columns, metadata).map_err(cold_err)?;
        let mut cursor = client
            .query(&format!(
                "SELECT {select} FROM {db}.{table} WHERE {filter} FORMAT JSONEachRow"
            ))
            .with_setting("output_format_json_quote_64bit_integers", "0")
            .fetch_bytes("JSONEachRow")?;
        // One JSON object a line; a chunk may end mid-line.
        let mut pending: Vec<u8> = Vec::new();
        let mut push = |line: &[u8]| {
            let row: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)
                .map_err(|e| cold_err(format!("{table}: a row ClickHouse sent: {e}")))?;
            writer.push(&row).map_err(cold_err)
        };
        while let Some(chunk) = cursor.next().await? {
            pending.extend_from_slice(&chunk);
            let Some(last) = pending.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            for line in pending[..last].split(|b| *b == b'\n') {
                push(line)?;
            }
            pending.drain(..=last);
        }
        if !pending.iter().all(u8::is_ascii_whitespace) {
            push(&pending)?;
        }
        let rows = writer.finish().map_err(cold_err)?;
        if rows != expected {
            let _ = std::fs::remove_file(&staged);
            return Err(cold_err(format!(
                "{table} {month}: wrote {rows} rows of {expected}; the month changed while it was exported"
            )));
        }
        let file = format!("{table}.parquet");
        let path = Path::from(format!("{tenant}/{month}/{file}"));
        let outcome = self.files.upload(&staged, &path).await;
        let _ = std::fs::remove_file(&staged);
        let (bytes, sha256) = outcome.map_err(cold_err)?;
        Ok(ColdFile {
            table: table.to_string(),
            file,
            partitioned_by: column.to_string(),
            rows,
            bytes,
            sha256,
            columns,
            exported_ms: rf_schemas::unix_ms(),
        })
    }

    /// Brings the month's `file` back into its table: the file is downloaded and its
    /// checksum checked first, the partition's rows (a previous restore's) dropped, the
    /// rows inserted, and their count checked. Returns the rows.
    pub async fn restore(
        &self,
        client: &clickhouse::Client,
        tenant: &TenantId,
        month: u32,
        file: &ColdFile,
    ) -> Result<u64, JobError> {
        let path = Path::from(format!("{tenant}/{month}/{}", file.file));
        let staged = self.staging(&format!("{tenant}-{month}-{}", file.file))?;
        let fetched = self
            .files
            .download(&path, &staged, file.bytes, &file.sha256)
            .await
            .map_err(|e| cold_err(format!("{e}; nothing was restored from it")));
        let outcome = match fetched {
            Ok(()) => self.insert(client, tenant, month, file, &staged).await,
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&staged);
        outcome
    }

    async fn insert(
        &self,
        client: &clickhouse::Client,
        tenant: &TenantId,
        month: u32,
        file: &ColdFile,
        staged: &FsPath,
    ) -> Result<u64, JobError> {
        let db = tenant.clickhouse_db();
        let table = &file.table;
        client
            .query(&format!("ALTER TABLE {db}.{table} DROP PARTITION {month}"))
            .execute()
            .await?;
        let names: Vec<String> = file
            .columns
            .iter()
            .map(|c| format!("`{}`", c.name))
            .collect();
        let mut insert = client
            .insert_formatted_with(format!(
                "INSERT INTO {db}.{table} ({}) FORMAT TabSeparated",
                names.join(", ")
            ))
            .buffered();
        // Chunks go from the (blocking) file reader to the insert through a channel.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let columns = file.columns.clone();
        let path = staged.to_path_buf();
        let reader = tokio::task::spawn_blocking(move || {
            parquet::to_tab_separated(&path, &columns, 4 << 20, |chunk| {
                tx.blocking_send(chunk.to_vec())
                    .map_err(|_| "the insert stopped".to_string())
            })
        });
        while let Some(chunk) = rx.recv().await {
            let mut rest = chunk.as_slice();
            while !rest.is_empty() {
                let n = insert.write(rest).await?;
                rest = &rest[n..];
            }
        }
        let read = reader.await.map_err(cold_err)?.map_err(cold_err)?;
        insert.end().await?;
        if read != file.rows {
            return Err(cold_err(format!(
                "{table} {month}: the manifest says {} rows, the file holds {read}",
                file.rows
            )));
        }
        Ok(read)
    }
}

/// `YYYYMM` from `YYYY-MM`, with a message naming `--month` otherwise.
pub fn parse_month(s: &str) -> Result<u32, String> {
    let bad = || format!("--month: {s:?} is not a month like 2024-03");
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    let (y, m): (u32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || s.len() != 7 {
        return Err(bad());
    }
    Ok(y * 100 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_bad_ones_name_the_flag() {
        assert_eq!(parse_month("2024-03"), Ok(202403));
        for bad in ["2024-3", "2024-13", "24-03", "march", "2024-00"] {
            assert!(
                parse_month(bad).unwrap_err().starts_with("--month: "),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_manifest_naming_what_retention_never_writes_is_refused() {
        let file = |table: &str, column: &str| ColdFile {
            table: table.into(),
            file: format!("{table}.parquet"),
            partitioned_by: "day".into(),
            rows: 1,
            bytes: 1,
            sha256: String::new(),
            columns: vec![Column {
                name: column.into(),
                ch_type: "Date".into(),
            }],
            exported_ms: 0,
        };
        let manifest = |f| Manifest {
            tenant: "acme".into(),
            month: 202401,
            files: vec![f],
            restored_until_ms: None,
        };
        assert!(manifest(file("room_days", "day")).check().is_ok());
        for bad in [
            file("rooms", "day"),
            file("room_days; DROP DATABASE x", "day"),
            file("room_days", "day`) FORMAT"),
        ] {
            assert!(manifest(bad).check().is_err());
        }
    }

    #[test]
    fn configs_name_the_wrong_field() {
        let mut c = ColdConfig::default();
        assert!(c.validate().is_ok());
        c.url = "gs://bucket".into();
        assert!(c.validate().unwrap_err().starts_with("jobs.cold.url: "));
        c.url = "s3://bucket/p".into();
        c.options
            .insert("aws_endpoint".into(), "http://127.0.0.1:1".into());
        assert!(c.validate().is_ok());
        c.options.insert("colour".into(), "blue".into());
        assert!(c.validate().unwrap_err().starts_with("jobs.cold.options: "));
    }

    #[tokio::test]
    async fn a_directory_store_lists_and_deletes_a_tenants_months() {
        let root = std::env::temp_dir().join(format!("rf-cold-store-{}", std::process::id()));
        let config = ColdConfig {
            url: root.join("{region}").display().to_string(),
            ..Default::default()
        };
        let store = ColdStore::open(&config, "eu", &root.join("scratch"))
            .unwrap()
            .unwrap();
        assert!(store.location.ends_with("/eu"));
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("acmex").unwrap();
        for (tenant, month) in [(&acme, 202401), (&acme, 202402), (&other, 202401)] {
            let manifest = Manifest {
                tenant: tenant.to_string(),
                month,
                ..Default::default()
            };
            store.put_manifest(&manifest).await.unwrap();
            assert_eq!(store.manifest(tenant, month).await.unwrap(), Some(manifest));
        }
        assert_eq!(store.months(&acme).await.unwrap(), [202401, 202402]);
        assert_eq!(store.delete(&acme, Some(202401)).await.unwrap(), 1);
        assert_eq!(store.months(&acme).await.unwrap(), [202402]);
        assert_eq!(store.delete(&acme, None).await.unwrap(), 1);
        assert!(store.months(&acme).await.unwrap().is_empty());
        assert!(!root.join("eu").join("acme").exists(), "its folders went");
        assert_eq!(
            store.months(&other).await.unwrap(),
            [202401],
            "another tenant's stay"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
