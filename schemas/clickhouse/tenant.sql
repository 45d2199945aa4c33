-- One tenant's database. `{db}` is rf_<tenant with - replaced by _>; the SQL runs on
-- ClickHouse 18.16 and 24.x. Readers use FINAL (or argMax(..., version)).
CREATE DATABASE IF NOT EXISTS {db};

CREATE TABLE IF NOT EXISTS {db}.room_utilization (
    granularity Enum8('15m' = 1, '1h' = 2, '1d' = 3),
    office_id String,
    room_id String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    samples UInt32,
    avg_people Float64,
    peak_people UInt32,
    occupied_ratio Float64,
    capacity UInt32,
    utilization Float64,
    final UInt8,
    version UInt64,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (granularity, office_id, room_id, window_start);

CREATE TABLE IF NOT EXISTS {db}.office_utilization (
    granularity Enum8('15m' = 1, '1h' = 2, '1d' = 3),
    office_id String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    rooms_reporting UInt32,
    avg_people Float64,
    peak_people Float64,
    capacity UInt32,
    utilization Float64,
    final UInt8,
    version UInt64,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (granularity, office_id, window_start);

-- Each room's final day windows, one row per room and local date (`day`, in the zone
-- of the room's office), written by the pipeline as a day becomes final: the table the
-- portfolio's slices, changes over time and benchmarks read. Keyed by date, so a
-- period of the whole portfolio is one contiguous read; a restatement adds a revision.
CREATE TABLE IF NOT EXISTS {db}.room_days (
    day Date,
    office_id String,
    room_id String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    samples UInt32,
    avg_people Float64,
    peak_people UInt32,
    occupied_ratio Float64,
    capacity UInt32,
    utilization Float64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, office_id, room_id);

CREATE TABLE IF NOT EXISTS {db}.rooms (
    room_id String,
    office_id String,
    office_name String,
    region String,
    country_code String,
    timezone String,
    floor Int32,
    name String,
    kind Enum8('DESK' = 1, 'MEETING' = 2, 'FOCUS' = 3, 'OPEN_SPACE' = 4, 'COLLAB' = 5, 'OTHER' = 6),
    capacity UInt32,
    area_m2 Nullable(Float32),
    monthly_cost Nullable(Float64),
    effective_from DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (office_id, room_id, effective_from);

-- Every counted reading with all its fields (v1 and v2), written once its room's 15m
-- window is final; of a duplicate (room, sensor, ts) the later revision (higher offset).
-- `ts` to the second for date functions, `ts_ms` exact; `version` is the source offset.
CREATE TABLE IF NOT EXISTS {db}.readings (
    office_id String,
    room_id String,
    sensor_id String,
    ts DateTime('UTC'),
    ts_ms Int64,
    people_count Int32,
    temperature Nullable(Float32),
    humidity Nullable(Float32),
    co2_ppm Nullable(Int32),
    battery_pct Nullable(Float32),
    schema_id UInt32,
    source_partition Int32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(ts)
ORDER BY (office_id, room_id, ts_ms, sensor_id);

-- Every data access of the query service to this tenant (the only thing the service
-- writes), and every call the tenant's calendar and HR connectors make (subject
-- `connector:<name>`): who, what, the answer and how long it took.
CREATE TABLE IF NOT EXISTS {db}.audit (
    ts DateTime('UTC'),
    ts_ms UInt64,
    tenant String,
    subject String,
    route String,
    path String,
    query String,
    status UInt16,
    duration_ms Float64,
    request_id String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (ts, request_id);

-- Anomalies found by the pipeline (kinds in the contract). An anomaly that lasts is
-- revised as it goes on under the same key and a growing version (2 × its window_end in
-- ms, plus 1 once it ended).
CREATE TABLE IF NOT EXISTS {db}.anomalies (
    kind Enum8('occupancy' = 1, 'capacity_breach' = 2, 'stuck_sensor' = 3, 'silent_sensor' = 4, 'implausible_value' = 5),
    entity_kind Enum8('room' = 1, 'office' = 2, 'sensor' = 3),
    entity_id String,
    office_id String,
    room_id String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    score Float64,
    severity Enum8('low' = 1, 'medium' = 2, 'high' = 3),
    details String,
    ongoing UInt8,
    version UInt64,
    detected_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (kind, entity_kind, entity_id, window_start);

-- Forecasts: `1h` rows forecast an hour's mean people, `1d` rows a local day's peak.
-- The latest issue of each window replaces the earlier ones (version: issued_at, ms).
CREATE TABLE IF NOT EXISTS {db}.forecasts (
    granularity Enum8('15m' = 1, '1h' = 2, '1d' = 3),
    entity_kind Enum8('room' = 1, 'office' = 2, 'sensor' = 3),
    entity_id String,
    office_id String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    expected Float64,
    low Float64,
    high Float64,
    issued_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (granularity, entity_kind, entity_id, window_start);

-- The pipeline's learnt models of each room and office (JSON), restored at start.
CREATE TABLE IF NOT EXISTS {db}.model_state (
    office_id String,
    entity_kind Enum8('room' = 1, 'office' = 2, 'sensor' = 3),
    entity_id String,
    state String,
    version UInt64,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (office_id, entity_kind, entity_id);

-- Bookings set against occupancy, per room (`room_id` set) and office (`room_id` empty,
-- the sum of its booked rooms), per window. A minute is booked when a booking covers its
-- first instant, used when a counted reading in it saw somebody, reported when any did:
-- booked_minutes = booked_used_minutes + ghost_minutes + booked_unreported_minutes.
-- A booking moved or cancelled later rewrites its windows with a higher version. A room's
-- 15m rows carry its minutes (bit i: minute i used / reported): a restarted pipeline
-- sets later booking changes against them.
CREATE TABLE IF NOT EXISTS {db}.booking_usage (
    granularity Enum8('15m' = 1, '1h' = 2, '1d' = 3),
    office_id String,
    room_id String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    booked_minutes UInt32,
    booked_used_minutes UInt32,
    ghost_minutes UInt32,
    booked_unreported_minutes UInt32,
    unbooked_used_minutes UInt32,
    meetings UInt32,
    no_shows UInt32,
    used_mask UInt16,
    reported_mask UInt16,
    version UInt64,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (granularity, office_id, room_id, window_start);

-- Headcount per office (and department, or '') per day from the HR system: aggregates
-- only, no person-level field ever reaches it. The latest import of a day replaces the
-- earlier ones (version: ms of the import).
CREATE TABLE IF NOT EXISTS {db}.headcount (
    day Date,
    office_id String,
    department String,
    heads UInt32,
    source String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (day, office_id, department);
