//! Bookings on the real stack: booking versions published by the connectors' publisher
//! (a meeting moved after its first version, one cancelled) and a sensor's readings go
//! through the pipeline into `booking_usage`, whose rows equal a plain minute-by-minute
//! model; the ghost-booking ranking reads them; a meeting cancelled while the pipeline is
//! stopped rewrites its windows after the restart.

mod common;

use rf_jobs::calendar::publish::Publisher;
use rf_schemas::Booking;
use rf_service::ServiceConfig;

use common::{
    assert_accounts, clickhouse_lines, create_tenant, fresh_tenant, get_with_token,
    run_until_caught_up, serve, settings, stack_is_up, two_rooms_two_days_ago,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn booking(id: &str, version: i64, room: &str, start: i64, end: i64, cancelled: bool) -> Booking {
    Booking {
        booking_id: id.into(),
        version,
        office_id: "lon".into(),
        room_id: room.into(),
        start_ts: start,
        end_ts: end,
        cancelled,
        source: "test".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booked_and_used_minutes_equal_the_model_and_rank_ghost_bookings() {
    let tenant = fresh_tenant("book");
    let s = settings(&tenant);
    stack_is_up(&s);
    let ids = create_tenant(&tenant).await;

    // Three hours from 9:00 two days ago: lon-a busy from 0:10 to 0:40 and from 1:30 on;
    // lon-b always empty, its sensor silent from 1:50 to 2:00.
    let day = 24 * HOUR;
    let t0 = (chrono::Utc::now().timestamp_millis() / day - 2) * day + 9 * HOUR;
    let people = move |room: &str, ts: i64| -> Option<i32> {
        let m = (ts - t0) / MIN;
        match room {
            "lon-a" => Some(i32::from((10..40).contains(&m) || m >= 90) * 3),
            _ if (110..120).contains(&m) => None,
            _ => Some(0),
        }
    };
    assert_eq!(two_rooms_two_days_ago(&s, &tenant, ids, people).await, t0);
    let versions = vec![
        // Used: 0:00-0:30 on lon-a (the first 10 minutes empty).
        booking("m1", 1, "lon-a", t0, t0 + 30 * MIN, false),
        // Moved: first 0:45-1:00, then 1:20-2:00 on lon-a.
        booking("m2", 1, "lon-a", t0 + 45 * MIN, t0 + 60 * MIN, false),
        booking("m2", 2, "lon-a", t0 + 80 * MIN, t0 + 120 * MIN, false),
        // A ghost and no-show: lon-b 1:00-2:00, nobody there.
        booking("m3", 1, "lon-b", t0 + HOUR, t0 + 2 * HOUR, false),
        // Cancelled: lon-b 0:00-0:30.
        booking("m4", 1, "lon-b", t0, t0 + 30 * MIN, false),
        booking("m4", 2, "lon-b", t0, t0 + 30 * MIN, true),
    ];
    let publisher = Publisher::new(&s.kafka, &s.registry, &tenant).unwrap();
    for b in &versions {
        publisher.publish(b).unwrap();
    }
    publisher.flush().unwrap();

    let report = run_until_caught_up(&s).await;
    assert_accounts(&report);

    // The model: the latest versions, minute by minute.
    let live: Vec<&Booking> = versions
        .iter()
        .filter(|b| {
            !versions
                .iter()
                .any(|o| o.booking_id == b.booking_id && o.version > b.version)
        })
        .filter(|b| !b.cancelled)
        .collect();
    let model = |room: &str, from: i64, to: i64| -> [u32; 7] {
        let mut c = [0u32; 7];
        for ts in (from..to).step_by(MIN as usize) {
            let booked = live
                .iter()
                .any(|b| b.room_id == room && b.start_ts <= ts && ts < b.end_ts);
            let seen = people(room, ts);
            let used = seen.is_some_and(|p| p > 0);
            c[0] += u32::from(booked);
            c[1] += u32::from(booked && used);
            c[2] += u32::from(booked && seen == Some(0));
            c[3] += u32::from(booked && seen.is_none());
            c[4] += u32::from(used && !booked);
        }
        for b in live
            .iter()
            .filter(|b| b.room_id == room && (from..to).contains(&b.start_ts))
        {
            c[5] += 1;
            let first15 = (b.start_ts..b.start_ts + 15 * MIN).step_by(MIN as usize);
            let seen: Vec<Option<i32>> = first15.map(|ts| people(room, ts)).collect();
            c[6] += u32::from(
                seen.iter().any(Option::is_some) && !seen.iter().any(|p| p.unwrap_or(0) > 0),
            );
        }
        c
    };
    // Each window's latest revision, 15m and 1h.
    let usage = || {
        clickhouse_lines(&format!(
            "SELECT granularity, room_id, toUInt32(window_start), argMax(booked_minutes, version), \
             argMax(booked_used_minutes, version), argMax(ghost_minutes, version), \
             argMax(booked_unreported_minutes, version), argMax(unbooked_used_minutes, version), \
             argMax(meetings, version), argMax(no_shows, version) \
             FROM {}.booking_usage WHERE granularity IN ('15m', '1h') \
             GROUP BY granularity, room_id, window_start ORDER BY granularity, room_id, window_start",
            tenant.clickhouse_db()
        ))
    };
    let rows = usage();
    let mut checked = 0;
    for line in &rows {
        let f: Vec<&str> = line.split('\t').collect();
        let (g, room, start) = (f[0], f[1], f[2].parse::<i64>().unwrap() * 1000);
        let len = if g == "15m" { 15 * MIN } else { HOUR };
        if start + len > t0 + 3 * HOUR {
            continue; // the next day's
        }
        let got: Vec<u32> = f[3..].iter().map(|x| x.parse().unwrap()).collect();
        let want = if room.is_empty() {
            let (a, b) = (
                model("lon-a", start, start + len),
                model("lon-b", start, start + len),
            );
            (0..7).map(|i| a[i] + b[i]).collect::<Vec<_>>()
        } else {
            model(room, start, start + len).to_vec()
        };
        assert_eq!(got, want, "{g} {room:?} {start}");
        checked += 1;
    }
    // 3 hours × (2 rooms + office), and quarters; rows of nothing may be left out.
    assert!(checked >= 9 + 12, "{rows:#?}");
    let hour = |room: &str, h: i64| {
        rows.iter()
            .find(|l| l.starts_with(&format!("1h\t{room}\t{}\t", (t0 + h * HOUR) / 1000)))
            .cloned()
            .unwrap_or_default()
    };
    // The moved meeting left 0:45-1:00 and the cancelled one left nothing.
    assert!(
        hour("lon-b", 1).ends_with("\t60\t0\t50\t10\t0\t1\t1"),
        "{}",
        hour("lon-b", 1)
    );
    assert!(
        hour("lon-a", 0).starts_with(&format!(
            "1h\tlon-a\t{}\t30\t20\t10\t0\t10\t1\t0",
            t0 / 1000
        )),
        "{}",
        hour("lon-a", 0)
    );

    // A restarted pipeline reads the rooms' minutes back and changes no row.
    assert_accounts(&run_until_caught_up(&s).await);
    assert_eq!(usage(), rows);

    // The no-show rule's daily check: lon-b's one meeting was a no-show, lon-a's were not.
    let day_end = t0 - 9 * HOUR + 24 * HOUR;
    let frequent =
        rf_pipelines::alerts::digest::frequent_no_shows(&s.clickhouse, &tenant, day_end, 0.5, 1)
            .await
            .unwrap();
    assert_eq!(frequent, [("lon".to_string(), "lon-b".to_string(), 1, 1)]);

    // The ranking: lon-b's booking sat empty every minute a sensor saw it.
    let config = ServiceConfig::default();
    let base = serve(&config, &s).await;
    let token = rf_service::mint(&config.jwt_secret, &tenant, "ghosts", 300);
    let to = chrono::DateTime::from_timestamp_millis(t0 - 9 * HOUR + day)
        .unwrap()
        .to_rfc3339();
    let url = format!(
        "{base}/v1/insights/ghost-bookings?days=1&to={}",
        urlencode(&to)
    );
    let body = get_with_token(url, token).await;
    let ranked = body["rooms"].as_array().unwrap();
    assert_eq!(ranked.len(), 2, "{body}");
    assert_eq!(ranked[0]["room_id"], "lon-b", "{body}");
    assert_eq!(ranked[0]["ghost_share"], 1.0, "{body}");
    assert_eq!(ranked[0]["no_show_rate"], 1.0, "{body}");
    assert_eq!(
        ranked[0]["summary"],
        "lon-b was booked but empty 100% of the time"
    );
    // lon-a: 70 booked minutes, 20 of them empty (the first ten of each meeting).
    assert_eq!(ranked[1]["booked_minutes"], 70, "{body}");
    assert_eq!(ranked[1]["ghost_minutes"], 20, "{body}");

    // While the pipeline is stopped, m1 is cancelled, and a reading comes the next day.
    // The restarted pipeline has only the rows it wrote for lon-a's first hour (booked
    // 0:00-0:30) and the bookings as they are now: it rewrites those rows.
    publisher
        .publish(&booking("m1", 2, "lon-a", t0, t0 + 30 * MIN, true))
        .unwrap();
    publisher.flush().unwrap();
    let later = t0 - 9 * HOUR + day + 90 * MIN;
    let readings = common::minute_readings(ids.0, (later, later + 1), &["lon-b"], |_, _| Some(0));
    let producer: rdkafka::producer::FutureProducer = s.kafka.client_config().create().unwrap();
    common::produce_all(&producer, &tenant.readings_topic(), &readings).await;
    assert_accounts(&run_until_caught_up(&s).await);
    let rows = usage();
    let row = |g: &str, room: &str, at: i64| {
        let key = format!("{g}\t{room}\t{}\t", at / 1000);
        let line = rows.iter().find(|l| l.starts_with(&key));
        line.map(|l| l[key.len()..].to_string()).unwrap_or_default()
    };
    // lon-a's first hour: 30 minutes used, none booked (0:10-0:40).
    assert_eq!(row("1h", "lon-a", t0), "0\t0\t0\t0\t30\t0\t0");
    assert_eq!(row("1h", "", t0), "0\t0\t0\t0\t30\t0\t0");
    assert_eq!(row("15m", "lon-a", t0), "0\t0\t0\t0\t5\t0\t0");
    assert_eq!(row("15m", "lon-a", t0 + 15 * MIN), "0\t0\t0\t0\t15\t0\t0");
    // The rest as before.
    assert_eq!(row("1h", "lon-b", t0 + HOUR), "60\t0\t50\t10\t0\t1\t1");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
