-- The platform's own tables, beside the tenants' databases; the SQL runs on ClickHouse
-- 18.16 and 24.x. Readers use FINAL (or argMax(..., version)).
CREATE DATABASE IF NOT EXISTS rf_platform;

-- A mirror of the tenant registry (the compacted topic roomflow.tenants): one revision per
-- change, the latest by version (updated_ms). A deleted tenant keeps a row with deleted = 1
-- until it is erased.
CREATE TABLE IF NOT EXISTS rf_platform.tenants (
    tenant String,
    display_name String,
    industry String,
    tier String,
    region String,
    retention_days UInt32,
    alert_targets UInt32,
    created_at DateTime('UTC'),
    updated_at DateTime('UTC'),
    deleted UInt8,
    deleted_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY tenant;

-- API keys of integrations: only the SHA-256 of each key is kept. One revision per
-- change, the latest by version; a revoked key keeps its row with revoked = 1.
CREATE TABLE IF NOT EXISTS rf_platform.api_keys (
    key_id String,
    tenant String,
    name String,
    sha256 String,
    created_at DateTime('UTC'),
    revoked UInt8,
    revoked_at DateTime('UTC'),
    version UInt64,
    offices Array(String)
) ENGINE = ReplacingMergeTree(version)
ORDER BY key_id;
-- `offices` (issue 26): the only offices an ingest key sends readings of (a site's
-- gateway); empty: any. Added to tables made before it (PLATFORM_ADDED_COLUMNS).

-- Roles in a tenant, one row per principal: an API key (`apikey:<key_id>`) or a user
-- who signed in to the web app (`user:<sub>`). `role` is what the tenant's admin set
-- (viewer, analyst, admin, or none: no access); empty, a user's role follows the identity
-- provider's claims (`idp_role`, as of `last_seen`), and a key without a row reads as an
-- analyst (keys made before roles). The latest by version.
CREATE TABLE IF NOT EXISTS rf_platform.roles (
    tenant String,
    principal String,
    name String,
    email String,
    role String,
    idp_role String,
    last_seen DateTime('UTC'),
    updated_by String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, principal);

-- Jobs (backfills, retention, erasure, reports): a mirror of the compacted topic
-- roomflow.job-status, one revision per status change, the latest by version (updated_ms).
CREATE TABLE IF NOT EXISTS rf_platform.jobs (
    id String,
    tenant String,
    kind String,
    state Enum8('queued' = 1, 'running' = 2, 'succeeded' = 3, 'failed' = 4, 'cancelled' = 5),
    done UInt64,
    total UInt64,
    message String,
    attempts UInt32,
    submitted_at DateTime('UTC'),
    started_at DateTime('UTC'),
    finished_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- Bearer-token revocations: a tenant's tokens issued (iat) before not_before are refused.
-- `roomflow token revoke` adds a row; the service reads the latest per tenant.
CREATE TABLE IF NOT EXISTS rf_platform.token_revocations (
    tenant String,
    not_before DateTime('UTC'),
    revoked_at DateTime('UTC'),
    reason String
) ENGINE = MergeTree
ORDER BY (tenant, not_before);

-- Tenants' data keys: the webhook URLs and signing secrets in roomflow.tenants are sealed
-- (AES-256-GCM) under them, and each is wrapped under a platform key (kek_id) from the
-- key file. One row per key and wrapping, the latest by version; erasure deletes a
-- tenant's rows, which makes every sealed value it left in the topic unreadable.
CREATE TABLE IF NOT EXISTS rf_platform.tenant_keys (
    tenant String,
    key_id String,
    kek_id String,
    wrapped String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, key_id);

-- Consent to cross-tenant benchmarks, mirrored from the registry with every change of
-- the tenant's entry: the latest by version (updated_ms). Opted out: opted_in = 0.
CREATE TABLE IF NOT EXISTS rf_platform.benchmark_consent (
    tenant String,
    opted_in UInt8,
    opted_in_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY tenant;

-- Each computation of the cross-tenant benchmarks: the local days it covered and how
-- many tenants contributed.
CREATE TABLE IF NOT EXISTS rf_platform.benchmark_runs (
    run UInt64,
    computed_at DateTime('UTC'),
    from_day Date,
    to_day Date,
    contributors UInt32,
    published UInt32,
    suppressed UInt32
) ENGINE = MergeTree
ORDER BY run;

-- The cohorts a run published: by industry, rooms' region and kind of room ('all' for
-- any), the quartiles across the contributing tenants' own figures, noised and rounded.
-- No row names a tenant; readers take the latest run's rows only.
CREATE TABLE IF NOT EXISTS rf_platform.benchmarks (
    run UInt64,
    industry String,
    region String,
    kind String,
    metric String,
    tenants UInt32,
    p25 Float64,
    p50 Float64,
    p75 Float64
) ENGINE = MergeTree
ORDER BY (run, industry, region, kind, metric);
