//! Crash safety: a pipeline killed with SIGKILL three times at random points, then
//! restarted, ends with exactly the ClickHouse rows (`FINAL`), Redis state and dead
//! letters of an uninterrupted run over the same messy input.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::producer::FutureProducer;

use rf_jobs::simulate::{Fleet, FleetSpec};
use rf_schemas::framing::frame_header;
use rf_schemas::{Reading, TenantId};

use common::*;

const MIN: i64 = 60_000;
/// 2026-03-28T18:00:00Z, a Saturday: the input spans London's spring-forward day.
const START: i64 = 1_774_720_800_000;

/// xorshift64*: a small, seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn framed(id: u32, r: &Reading) -> Vec<u8> {
    let mut v = Vec::new();
    frame_header(id, &mut v);
    r.encode_v1(&mut v);
    v
}

/// The fleet's readings minute by minute, messed up: about 10% arrive 1 to 3 minutes
/// late (out of order, within the allowed lateness), 0.5% arrive 30 minutes late (past
/// it), 1.5% are followed by a revision with the same key, 0.2% are replaced by bytes
/// that do not decode.
fn messy_stream(
    fleet: &Fleet,
    minutes: i64,
    schema_id: u32,
    rng: &mut Rng,
) -> Vec<(String, Vec<u8>, i64)> {
    let rooms = &fleet.tenants[0].1;
    let mut out = Vec::new();
    let mut delayed: Vec<(i64, Reading)> = Vec::new();
    for m in 0..minutes + 40 {
        let now = START + m * MIN;
        if m < minutes {
            for room in rooms {
                let r = fleet.reading(room, now);
                let u = rng.unit();
                if u < 0.10 {
                    delayed.push((m + 1 + (rng.next() % 3) as i64, r));
                } else if u < 0.105 {
                    delayed.push((m + 30, r));
                } else if u < 0.107 {
                    out.push((
                        r.office_id.clone(),
                        b"\x00\x00\x00\x00garbage".to_vec(),
                        now + 1_000,
                    ));
                } else {
                    if u < 0.122 {
                        let revision = Reading {
                            people_count: r.people_count + 1,
                            ..r.clone()
                        };
                        delayed.push((m + 1, revision));
                    }
                    out.push((r.office_id.clone(), framed(schema_id, &r), now + 1_000));
                }
            }
        }
        let (due, rest): (Vec<_>, Vec<_>) = delayed.into_iter().partition(|(at, _)| *at <= m);
        delayed = rest;
        for (_, r) in due {
            out.push((r.office_id.clone(), framed(schema_id, &r), now + 1_000));
        }
    }
    out
}

async fn provision(tenant: &TenantId, fleet: &Fleet, readings: &[(String, Vec<u8>, i64)]) {
    let s = settings(tenant);
    let created = rf_jobs::tenant::create(&s.kafka, &s.clickhouse, &s.registry, tenant)
        .await
        .unwrap();
    let room_id = created
        .schemas
        .iter()
        .find(|r| r.subject.starts_with("rooms."))
        .unwrap()
        .id;
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let schema = apache_avro::Schema::parse_str(rf_schemas::ROOM_AVSC).unwrap();
    let rooms: Vec<_> = fleet.tenants[0]
        .1
        .iter()
        .map(|r| {
            let mut value = Vec::new();
            frame_header(room_id, &mut value);
            value.extend(r.version.encode(&schema));
            (r.version.key(), value, START)
        })
        .collect();
    produce_all(&producer, &tenant.rooms_topic(), &rooms).await;
    produce_all(&producer, &tenant.readings_topic(), readings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_three_times_equals_an_uninterrupted_run() {
    let clean = fresh_tenant("clean");
    let crash = fresh_tenant("crash");
    stack_is_up(&settings(&clean));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("fault test seed {seed}");
    let mut rng = Rng(seed);
    let fleet = Fleet::new(&FleetSpec {
        tenants: vec![clean.clone()],
        offices: 3,
        rooms: 40,
        seed: 5,
    });
    // Both tenants register the same two schemas, which the registry shares by content.
    let ids = rf_jobs::tenant::create(
        &settings(&clean).kafka,
        &settings(&clean).clickhouse,
        &settings(&clean).registry,
        &clean,
    )
    .await
    .unwrap()
    .schemas;
    let reading_id = ids
        .iter()
        .find(|r| r.subject.starts_with("occupancy."))
        .unwrap()
        .id;
    let readings = messy_stream(&fleet, 30 * 60, reading_id, &mut rng);
    provision(&clean, &fleet, &readings).await;
    provision(&crash, &fleet, &readings).await;

    let reference = tokio::task::spawn_blocking({
        let s = settings(&clean);
        move || run_until_caught_up(&s)
    })
    .await
    .unwrap();
    let st = &reference.stats;
    assert_eq!(st.consumed, readings.len() as u64);
    assert_eq!(
        st.consumed,
        st.counted + st.replaced + st.dead_letters + st.pending,
        "{st:?}"
    );
    assert!(
        st.replaced > 100 && st.dead_letters > 100,
        "the input is messy enough: {st:?}"
    );

    let crash_settings = settings(&crash);
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_roomflow"))
            .args(["run", "--tenant", crash.as_str()])
            .env("ROOMFLOW_KAFKA__GROUP_ID", &crash_settings.kafka.group_id)
            .env("ROOMFLOW_PIPELINE__METRICS_LISTEN", "")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the roomflow binary starts");
        let delay = Duration::from_millis(300 + rng.next() % 2_500);
        tokio::time::sleep(delay).await;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        eprintln!("round {round}: killed after {delay:?}");
    }
    let resumed = tokio::task::spawn_blocking(move || run_until_caught_up(&crash_settings))
        .await
        .unwrap();
    eprintln!("after the kills: {:?}", resumed.stats);

    let (clean_rooms, clean_offices) = window_rows(&clean);
    let (crash_rooms, crash_offices) = window_rows(&crash);
    assert!(clean_rooms.len() > 1_000, "{} room rows", clean_rooms.len());
    assert!(
        clean_rooms.iter().any(|r| r.starts_with("1d\tlon\t")
            && r.contains("2026-03-29 00:00:00\t2026-03-29 23:00:00")),
        "London's 23-hour day"
    );
    assert_eq!(clean_rooms.len(), crash_rooms.len());
    for (a, b) in clean_rooms.iter().zip(&crash_rooms) {
        assert_eq!(a, b, "room rows differ");
    }
    assert_eq!(clean_offices, crash_offices, "office rows differ");
    let s = settings(&clean);
    assert_eq!(
        redis_state(&s.redis.url, &clean).await,
        redis_state(&s.redis.url, &crash).await
    );
    let letters = dead_letter_set(&s.kafka, &clean, st.dead_letters as usize);
    assert_eq!(letters.len() as u64, st.dead_letters);
    assert_eq!(
        letters,
        dead_letter_set(&s.kafka, &crash, letters.len()),
        "the same readings were dead-lettered"
    );
    for t in [&clean, &crash] {
        clickhouse_lines(&format!("DROP DATABASE {}", t.clickhouse_db()));
    }
}
