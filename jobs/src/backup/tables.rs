//! ClickHouse tables in a backup: each table's rows as TabSeparated with its columns and
//! its `CREATE` statement, read over HTTP (so a remote cluster backs up like the local
//! server, ClickHouse 18.16 or current), and inserted again on restore.

use std::io::Write;
use std::path::Path;

use super::TableBackup;
use crate::JobError;

fn err(what: impl std::fmt::Display) -> JobError {
    JobError::Backup(what.to_string())
}

/// The tables of `db` that hold rows (MergeTree engines: views hold none of their own).
pub async fn tables(client: &clickhouse::Client, db: &str) -> Result<Vec<String>, JobError> {
    Ok(client
        .query(
            "SELECT name FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree' ORDER BY name",
        )
        .bind(db)
        .fetch_all::<String>()
        .await?)
}

/// A table's columns, name and type, in order.
async fn columns(
    client: &clickhouse::Client,
    db: &str,
    table: &str,
) -> Result<Vec<(String, String)>, JobError> {
    Ok(client
        .query("SELECT name, type FROM system.columns WHERE database = ? AND table = ?")
        .bind(db)
        .bind(table)
        .fetch_all()
        .await?)
}

/// Writes `db.table`'s rows matching `filter` (SQL, or empty) to the file `to`.
pub async fn dump(
    client: &clickhouse::Client,
    db: &str,
    table: &str,
    filter: &str,
    to: &Path,
) -> Result<TableBackup, JobError> {
    let columns = columns(client, db, table).await?;
    let create: String = client
        .query(&format!("SHOW CREATE TABLE {db}.{table}"))
        .fetch_one()
        .await?;
    let names: Vec<String> = columns.iter().map(|(n, _)| format!("`{n}`")).collect();
    let filter = match filter {
        "" => String::new(),
        f => format!(" WHERE {f}"),
    };
    let mut cursor = client
        .query(&format!(
            "SELECT {} FROM {db}.{table}{filter} FORMAT TabSeparated",
            names.join(", ")
        ))
        .fetch_bytes("TabSeparated")?;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(to).map_err(|e| err(format!("{}: {e}", to.display())))?,
    );
    // TabSeparated escapes line breaks in values: a row is a line.
    let mut rows = 0u64;
    while let Some(chunk) = cursor.next().await? {
        rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        out.write_all(&chunk).map_err(err)?;
    }
    out.flush().map_err(err)?;
    Ok(TableBackup {
        database: db.to_string(),
        table: table.to_string(),
        columns,
        create,
        filter: filter.trim_start_matches(" WHERE ").to_string(),
        rows,
        file: String::new(),
        bytes: 0,
        sha256: String::new(),
    })
}

/// Whether `db.table` exists.
pub async fn exists(client: &clickhouse::Client, db: &str, table: &str) -> Result<bool, JobError> {
    let n: u64 = client
        .query("SELECT count() FROM system.tables WHERE database = ? AND name = ?")
        .bind(db)
        .bind(table)
        .fetch_one()
        .await?;
    Ok(n > 0)
}

/// The rows the table holds now of those the backup took (its filter).
pub async fn count(client: &clickhouse::Client, t: &TableBackup) -> Result<u64, JobError> {
    if !exists(client, &t.database, &t.table).await? {
        return Ok(0);
    }
    let filter = match t.filter.as_str() {
        "" => String::new(),
        f => format!(" WHERE {f}"),
    };
    Ok(client
        .query(&format!(
            "SELECT count() FROM {}.{}{filter}",
            t.database, t.table
        ))
        .fetch_one()
        .await?)
}

/// Inserts the rows of the file `from` into the table, by the backed-up column names.
pub async fn load(
    client: &clickhouse::Client,
    t: &TableBackup,
    from: &Path,
) -> Result<(), JobError> {
    use std::io::Read;
    if t.rows == 0 {
        return Ok(());
    }
    let names: Vec<String> = t.columns.iter().map(|(n, _)| format!("`{n}`")).collect();
    let mut insert = client
        .insert_formatted_with(format!(
            "INSERT INTO {}.{} ({}) FORMAT TabSeparated",
            t.database,
            t.table,
            names.join(", ")
        ))
        .buffered();
    let mut file =
        std::fs::File::open(from).map_err(|e| err(format!("{}: {e}", from.display())))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let written = insert.write(rest).await?;
            rest = &rest[written..];
        }
    }
    insert.end().await?;
    Ok(())
}
