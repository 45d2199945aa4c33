//! API keys of a tenant's integrations: created, listed and revoked here, kept in
//! ClickHouse `rf_platform.api_keys` as SHA-256 hashes only. The key itself is shown once,
//! when it is created.

use clickhouse::Row;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use rf_schemas::tenant::api_key_hash as hash;
use rf_schemas::tenant::Role;
use rf_schemas::TenantId;
use rf_sinks::clickhouse::roles::RoleRow;
use rf_sinks::config::ClickHouseConfig;

use crate::JobError;

/// Every key starts with this, so that leaked keys are easy to find in code and logs.
pub const KEY_PREFIX: &str = "rfk_";

/// A key as listed: never the key itself.
#[derive(Clone, Debug, Row, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key's public id (part of the key).
    pub key_id: String,
    /// Its tenant.
    pub tenant: String,
    /// What it is for.
    pub name: String,
    /// When it was created, seconds since the Unix epoch.
    pub created_at: u32,
    /// Whether it was revoked.
    pub revoked: u8,
    /// When, seconds since the Unix epoch (0: not revoked).
    pub revoked_at: u32,
    /// What it may do (keys made before roles: analyst).
    #[serde(default = "analyst")]
    pub role: String,
    /// The only offices an ingest key sends readings of (its sites); empty: any.
    #[serde(default)]
    pub offices: Vec<String>,
}

fn analyst() -> String {
    Role::Analyst.as_str().into()
}

/// A key's principal in `rf_platform.roles`.
pub fn principal(key_id: &str) -> String {
    format!("apikey:{key_id}")
}

/// Writes rows of `rf_platform.roles`.
async fn write_roles(clickhouse: &ClickHouseConfig, rows: &[RoleRow]) -> Result<(), JobError> {
    let client = crate::platform(clickhouse).await?;
    Ok(rf_sinks::clickhouse::roles::write(&client, rows).await?)
}

#[derive(Row, Serialize, Deserialize)]
struct KeyRow {
    key_id: String,
    tenant: String,
    name: String,
    sha256: String,
    created_at: u32,
    revoked: u8,
    revoked_at: u32,
    version: u64,
    offices: Vec<String>,
}

/// Creates a key for `tenant` with `role`; returns it (shown once) and its listing.
pub async fn create(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    name: &str,
    role: Role,
) -> Result<(String, ApiKey), JobError> {
    create_for_sites(clickhouse, tenant, name, role, &[]).await
}

/// [`create`], for an ingest key that sends readings of `offices` only (a site's
/// gateway); empty: of any office.
pub async fn create_for_sites(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    name: &str,
    role: Role,
    offices: &[String],
) -> Result<(String, ApiKey), JobError> {
    if name.is_empty() || name.len() > 100 {
        return Err(JobError::Invalid(
            "--name: must be 1 to 100 characters".into(),
        ));
    }
    if !offices.is_empty() && role != Role::Ingest {
        return Err(JobError::Invalid(format!(
            "--office: only an ingest key is limited to sites; this one is a {role} key"
        )));
    }
    if let Some(bad) = offices
        .iter()
        .find(|o| o.is_empty() || o.len() > 100 || o.chars().any(char::is_control))
    {
        return Err(JobError::Invalid(format!(
            "--office: {bad:?} is not an office id"
        )));
    }
    let mut bytes = [0u8; 28];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key_id = hex[..12].to_owned();
    let key = format!("{KEY_PREFIX}{key_id}_{}", &hex[12..]);
    let now = now_secs();
    let row = KeyRow {
        key_id: key_id.clone(),
        tenant: tenant.to_string(),
        name: name.to_owned(),
        sha256: hash(&key),
        created_at: now,
        revoked: 0,
        revoked_at: 0,
        version: now_ms(),
        offices: offices.to_vec(),
    };
    // The role first: a key is never usable with the wrong one.
    write_roles(
        clickhouse,
        &[RoleRow {
            tenant: tenant.to_string(),
            principal: principal(&key_id),
            name: name.to_owned(),
            email: String::new(),
            role: role.as_str().into(),
            idp_role: String::new(),
            last_seen: now,
            updated_by: String::new(),
            version: now_ms(),
        }],
    )
    .await?;
    write(clickhouse, &row).await?;
    let listed = ApiKey {
        key_id,
        tenant: row.tenant,
        name: row.name,
        created_at: now,
        revoked: 0,
        revoked_at: 0,
        role: role.as_str().into(),
        offices: offices.to_vec(),
    };
    Ok((key, listed))
}

/// `tenant`'s keys, revoked ones included, oldest first.
pub async fn list(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
) -> Result<Vec<ApiKey>, JobError> {
    let client = crate::platform(clickhouse).await?;
    client
        .query(
            "SELECT key_id, tenant, name, toUInt32(created_at), revoked, toUInt32(revoked_at), \
             if(role = '', 'analyst', role), offices \
             FROM (SELECT * FROM rf_platform.api_keys FINAL WHERE tenant = ?) \
             ANY LEFT JOIN (SELECT substring(principal, 8) AS key_id, role FROM rf_platform.roles FINAL \
                            WHERE tenant = ? AND startsWith(principal, 'apikey:')) USING key_id \
             ORDER BY created_at, key_id",
        )
        .bind(tenant.as_str())
        .bind(tenant.as_str())
        .fetch_all()
        .await
        .map_err(JobError::from)
}

/// Revokes `tenant`'s key `key_id`; revoking twice keeps the first time. A key of another
/// tenant is not found.
pub async fn revoke(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    key_id: &str,
) -> Result<ApiKey, JobError> {
    let client = crate::platform(clickhouse).await?;
    let rows: Vec<KeyRow> = client
        .query(
            "SELECT key_id, tenant, name, sha256, toUInt32(created_at), revoked, toUInt32(revoked_at), version, offices \
             FROM rf_platform.api_keys FINAL WHERE tenant = ? AND key_id = ?",
        )
        .bind(tenant.as_str())
        .bind(key_id)
        .fetch_all()
        .await?;
    let Some(mut row) = rows.into_iter().next() else {
        return Err(JobError::Invalid(format!(
            "tenant {tenant} has no API key {key_id}"
        )));
    };
    if row.revoked == 0 {
        row.revoked = 1;
        row.revoked_at = now_secs();
        row.version = now_ms().max(row.version + 1);
        write(clickhouse, &row).await?;
    }
    Ok(ApiKey {
        key_id: row.key_id,
        tenant: row.tenant,
        name: row.name,
        created_at: row.created_at,
        revoked: row.revoked,
        revoked_at: row.revoked_at,
        role: String::new(),
        offices: row.offices,
    })
}

async fn write(clickhouse: &ClickHouseConfig, row: &KeyRow) -> Result<(), JobError> {
    let ch = |e: clickhouse::error::Error| JobError::from(e);
    let client = crate::platform(clickhouse)
        .await?
        .with_database("rf_platform");
    let mut insert = client.insert::<KeyRow>("api_keys").await.map_err(ch)?;
    insert.write(row).await.map_err(ch)?;
    insert.end().await.map_err(ch)
}

fn now_ms() -> u64 {
    rf_schemas::unix_ms() as u64
}

fn now_secs() -> u32 {
    (now_ms() / 1000) as u32
}

#[derive(Row, Serialize)]
struct RevocationRow<'a> {
    tenant: &'a str,
    not_before: u32,
    revoked_at: u32,
    reason: &'a str,
}

/// Revokes every bearer token of `tenant` issued before now: the query service refuses
/// them within `service.directory_refresh_secs`. Returns the time (s) from which tokens
/// are accepted again.
pub async fn revoke_tokens(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    reason: &str,
) -> Result<u32, JobError> {
    let ch = |e: clickhouse::error::Error| JobError::from(e);
    let client = crate::platform(clickhouse)
        .await?
        .with_database("rf_platform");
    let now = now_secs();
    // Tokens minted in this very second are refused too: `iat` has whole seconds.
    let row = RevocationRow {
        tenant: tenant.as_str(),
        not_before: now + 1,
        revoked_at: now,
        reason,
    };
    let mut insert = client
        .insert::<RevocationRow>("token_revocations")
        .await
        .map_err(ch)?;
    insert.write(&row).await.map_err(ch)?;
    insert.end().await.map_err(ch)?;
    Ok(row.not_before)
}
