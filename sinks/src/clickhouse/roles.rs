//! `rf_platform.roles`: the role of each API key and signed-in user of a tenant, written
//! by the CLI (keys) and the query service (users, the admin's changes).

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// A row of `rf_platform.roles`.
#[derive(Clone, Debug, Row, Serialize, Deserialize)]
pub struct RoleRow {
    /// The tenant.
    pub tenant: String,
    /// `apikey:<key_id>` or `user:<sub>`.
    pub principal: String,
    /// The key's name, or the user's.
    pub name: String,
    /// The user's e-mail address (keys: empty).
    pub email: String,
    /// What the tenant's admin set: a role, `none`, or empty (a user follows the claims).
    pub role: String,
    /// A user's role from the identity provider's claims at the last sign-in.
    pub idp_role: String,
    /// A user's last sign-in (keys: creation), seconds.
    pub last_seen: u32,
    /// Who set `role`.
    pub updated_by: String,
    /// The latest wins.
    pub version: u64,
}

/// Writes `rows` into `rf_platform.roles` with `client` (of the home ClickHouse).
pub async fn write(client: &clickhouse::Client, rows: &[RoleRow]) -> clickhouse::error::Result<()> {
    let mut insert = client
        .clone()
        .with_database("rf_platform")
        .insert::<RoleRow>("roles")
        .await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}

/// `tenant`'s row of `principal`, if any.
pub async fn read(
    client: &clickhouse::Client,
    tenant: &str,
    principal: &str,
) -> clickhouse::error::Result<Option<RoleRow>> {
    let rows: Vec<RoleRow> = client
        .query(
            "SELECT tenant, principal, name, email, role, idp_role, toUInt32(last_seen), updated_by, version \
             FROM rf_platform.roles FINAL WHERE tenant = ? AND principal = ?",
        )
        .bind(tenant)
        .bind(principal)
        .fetch_all()
        .await?;
    Ok(rows.into_iter().next())
}
