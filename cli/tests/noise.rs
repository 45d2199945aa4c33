//! 100,000 random and malformed messages mixed into good traffic on the real stack: the
//! pipeline neither panics nor lets the noise touch a result. Every noise message is a
//! dead letter (or replaced by a later noise message with the same key), and the rows
//! and live state are those of the same traffic without the noise.

mod common;

use rf_jobs::simulate::{Fleet, FleetSpec};
use rf_schemas::framing::frame_header;
use rf_schemas::Reading;

use common::*;

const NOISE: usize = 100_000;

/// One noise message: bytes that cannot become a counted reading, whatever their kind.
fn noise(rng: &mut Rng, good: &[u8], reading_id: u32) -> Vec<u8> {
    let random = |rng: &mut Rng, n: usize| (0..n).map(|_| rng.next() as u8).collect::<Vec<_>>();
    let len = (rng.next() % 64) as usize;
    match rng.next() % 5 {
        // Not framed: the first byte is not the magic 0.
        0 => {
            let mut v = random(rng, len + 1);
            v[0] |= 1;
            v
        }
        // Framed with an id nobody registered.
        1 => {
            let mut v = Vec::new();
            frame_header(0x7fff_0000 | (rng.next() as u32 & 0xffff), &mut v);
            v.extend(random(rng, len));
            v
        }
        // A good message cut short.
        2 => good[..5 + (rng.next() as usize % (good.len() - 5))].to_vec(),
        // A good message with some bytes flipped.
        3 => {
            let mut v = good.to_vec();
            for _ in 0..1 + rng.next() % 4 {
                let i = 5 + rng.next() as usize % (v.len() - 5);
                v[i] ^= 1 << (rng.next() % 8);
            }
            v
        }
        // The right schema id around random bytes.
        _ => {
            let mut v = Vec::new();
            frame_header(reading_id, &mut v);
            v.extend(random(rng, len));
            v
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_is_dead_lettered_and_changes_no_result() {
    let quiet = fresh_tenant("quiet");
    let noisy = fresh_tenant("noisy");
    stack_is_up(&settings(&quiet));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("noise test seed {seed}");
    let mut rng = Rng(seed);
    let fleet = Fleet::new(&FleetSpec {
        tenants: vec![quiet.clone()],
        offices: 3,
        rooms: 30,
        seed: 9,
    });
    let (reading_id, _) = create_tenant(&quiet).await;
    let good = messy_stream(&fleet, 6 * 60, reading_id, &mut rng);

    // Noise between the good records, on the same keys (so the same partitions), with
    // the record timestamps around them. A flipped byte may still make a valid reading,
    // which is then no noise but a reading (it may even move the watermark): those are
    // redrawn, so that the noise is exactly what decoding and validation reject.
    let decoder = rf_schemas::reading::ReadingDecoder::new(
        &apache_avro::Schema::parse_str(rf_schemas::OCCUPANCY_READING_AVSC).unwrap(),
    )
    .unwrap();
    let mut mixed = Vec::with_capacity(good.len() + NOISE);
    let per_record = NOISE.div_ceil(good.len());
    let mut made = 0;
    for (key, value, ts) in &good {
        mixed.push((key.clone(), value.clone(), *ts));
        for _ in 0..per_record {
            if made == NOISE {
                break;
            }
            let bytes = loop {
                let candidate = noise(&mut rng, value, reading_id);
                if !valid(&decoder, &candidate, reading_id, key, *ts) {
                    break candidate;
                }
            };
            mixed.push((key.clone(), bytes, *ts));
            made += 1;
        }
    }
    assert_eq!(made, NOISE);
    provision(&quiet, &fleet, &good).await;
    provision(&noisy, &fleet, &mixed).await;

    let reference = run_until_caught_up(&settings(&quiet)).await;
    let report = run_until_caught_up(&settings(&noisy)).await;
    assert_accounts(&reference);
    assert_accounts(&report);
    let (q, n) = (&reference.stats, &report.stats);
    assert_eq!(n.consumed, (good.len() + NOISE) as u64);
    assert_eq!(
        (n.counted, n.replaced, n.pending),
        (q.counted, q.replaced, q.pending)
    );
    assert_eq!(n.dead_letters, q.dead_letters + NOISE as u64);

    assert_eq!(
        window_rows(&quiet),
        window_rows(&noisy),
        "the rows are untouched"
    );
    let s = settings(&quiet);
    assert_eq!(
        redis_state(&s.redis.url, &quiet).await,
        redis_state(&s.redis.url, &noisy).await
    );
    for t in [&quiet, &noisy] {
        clickhouse_lines(&format!("DROP DATABASE {}", t.clickhouse_db()));
    }
}

/// Whether bytes pass decoding and validation as a reading (possible for a good message
/// with a flipped byte that stays well formed).
fn valid(
    decoder: &rf_schemas::reading::ReadingDecoder,
    bytes: &[u8],
    reading_id: u32,
    key: &str,
    record_ts: i64,
) -> bool {
    let Ok((id, body)) = rf_schemas::framing::unframe(bytes) else {
        return false;
    };
    let decoded: Option<Reading> = (id == reading_id)
        .then(|| decoder.decode(body).ok())
        .flatten();
    decoded.is_some_and(|r| r.validate(record_ts, Some(key.as_bytes())).is_ok())
}
