//! What a quarterly real-estate review reads, on the real stack: week over week, month
//! over month and year over year per office, region, floor and kind from the rooms'
//! final days, with filters and the movers; the weekly digest's local weeks; and the
//! offices and floors forecast to pass a share of their seats.

mod common;

use chrono::NaiveDate;

use common::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn get(url: &str, token: &str) -> (u16, serde_json::Value) {
    status_and_json(url, token)
}

fn close(a: &serde_json::Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_compare_periods_per_slice_and_name_the_movers() {
    let tenant = fresh_tenant("changes");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant_on(&s, &tenant).await;
    let lon_meeting = DayRooms {
        office: "lon",
        region: "EMEA",
        country: "GB",
        zone: "Europe/London",
        floor: 1,
        kind: "MEETING",
        rooms: 2,
    };
    let lon_desk = DayRooms {
        floor: 2,
        kind: "DESK",
        ..lon_meeting
    };
    let nyc = DayRooms {
        office: "nyc",
        region: "AMER",
        country: "US",
        zone: "America/New_York",
        floor: 5,
        kind: "DESK",
        rooms: 2,
    };
    // Week of 23 November, then the week of 30 November; and November a year before.
    let (before, now) = (date(2026, 11, 23), date(2026, 11, 30));
    for (spec, was, is) in [
        (&lon_meeting, 0.4, 0.2),
        (&lon_desk, 0.4, 0.4),
        (&nyc, 0.5, 0.6),
    ] {
        store_room_days(&tenant, spec, before, 7, was);
        store_room_days(&tenant, spec, now, 7, is);
        store_room_days(&tenant, spec, date(2025, 11, 23), 7, 0.25);
    }

    // One hour of three rooms, Tuesday 1 December 10:00 in London (UTC in winter).
    let ten = date(2026, 12, 1)
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    let hour = |room: &str, people: f64| {
        format!(
            "('1h', 'lon', '{room}', {ten}, {}, 60, {people}, {}, 1, 10, {}, 1, 1, now())",
            ten + 3600,
            people.ceil(),
            people / 10.0
        )
    };
    clickhouse_lines(&format!(
        "INSERT INTO {}.room_utilization VALUES {}, {}, {}",
        tenant.clickhouse_db(),
        hour("lon-meeting-0", 5.0),
        hour("lon-meeting-1", 3.0),
        hour("lon-desk-0", 9.0)
    ));

    let mut config = rf_service::ServiceConfig::default();
    // Thirty-odd analytics requests, more than a tenant's minute allows.
    for limits in config.rate_limits.values_mut() {
        limits.analytics.requests = 1000;
    }
    let base = serve(&config, &s).await;
    let token = |who: &str, role| token_with_role(&config, &tenant, who, role);
    let analyst = token("analyst@example.com", rf_schemas::tenant::Role::Analyst);
    let viewer = token("fm@example.com", rf_schemas::tenant::Role::Viewer);
    tokio::task::spawn_blocking(move || {
        let ask = |q: &str| get(&format!("{base}/v1/insights/changes?{q}"), &analyst);
        let (status, week) = ask("compare=week&to_date=2026-12-07");
        assert_eq!(status, 200, "{week}");
        assert_eq!(week["current"]["from_date"], "2026-11-30");
        assert_eq!(week["previous"]["from_date"], "2026-11-23");
        let groups = week["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 2, "{week}");
        let lon = &groups[0];
        assert_eq!(lon["id"], "lon");
        assert_eq!(lon["name"], "Office lon");
        // London: 4 rooms, (0.2 + 0.4) / 2 = 0.3 this week against 0.4.
        assert!(close(&lon["current"]["utilization"], 0.3), "{lon}");
        assert!(close(&lon["previous"]["utilization"], 0.4), "{lon}");
        assert!(
            close(&lon["change"]["utilization"]["relative"], -0.25),
            "{lon}"
        );
        assert!(
            close(&lon["change"]["utilization"]["points"], -0.1),
            "{lon}"
        );
        assert_eq!(lon["current"]["room_days"], 28);
        // Peaks are twice the utilization here.
        assert!(close(&lon["current"]["peak"], 0.6), "{lon}");
        assert!(close(&lon["current"]["occupied"], 0.5), "{lon}");
        assert_eq!(week["up"][0]["id"], "nyc");
        assert_eq!(week["down"][0]["id"], "lon");
        assert_eq!(week["up"].as_array().unwrap().len(), 1);
        // The portfolio: (0.3 × 4 + 0.6 × 2) / 6 = 0.4 against (0.4 × 4 + 0.5 × 2) / 6.
        assert!(
            close(&week["total"]["current"]["utilization"], 0.4),
            "{week}"
        );

        // Slices: a floor, a kind, a region; and filters.
        let (_, floors) = ask("compare=week&to_date=2026-12-07&by=floor&office_id=lon");
        let ids: Vec<&str> = floors["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["lon/1", "lon/2"]);
        assert!(close(
            &floors["groups"][0]["change"]["utilization"]["relative"],
            -0.5
        ));
        assert_eq!(floors["down"][0]["name"], "Office lon, floor 1");
        assert!(
            floors["up"].as_array().unwrap().is_empty(),
            "floor 2 did not move"
        );
        let (_, kinds) = ask("compare=week&to_date=2026-12-07&by=kind&region=EMEA");
        let kinds: Vec<&str> = kinds["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["DESK", "MEETING"]);
        let (_, desks) = ask("compare=week&to_date=2026-12-07&by=region&kind=DESK");
        assert_eq!(desks["groups"].as_array().unwrap().len(), 2);
        let (_, rooms) = ask("compare=week&to_date=2026-12-07&by=room&limit=1&metric=peak");
        assert_eq!(rooms["up"].as_array().unwrap().len(), 1);
        assert_eq!(rooms["metric"], "peak");

        // Month over month: November against an October without days.
        let (_, month) = ask("compare=month&to_date=2026-12-01");
        assert_eq!(month["previous"]["from_date"], "2026-10-01");
        assert!(month["groups"][0]["change"]["utilization"]["relative"].is_null());
        assert!(month["up"].as_array().unwrap().is_empty());
        // Year over year: November against November 2025.
        let (_, year) = ask("compare=year&to_date=2026-12-01");
        assert_eq!(year["previous"]["from_date"], "2025-11-01");
        assert!(
            close(&year["groups"][1]["previous"]["utilization"], 0.25),
            "{year}"
        );

        // The same days as a series of a slice, and the offices ranked by one kind.
        let slice = |q: &str| {
            get(
                &format!("{base}/v1/portfolio/days?from_date=2026-11-30&to_date=2026-12-07&{q}"),
                &analyst,
            )
        };
        let (status, meeting) = slice("kind=MEETING");
        assert_eq!(status, 200, "{meeting}");
        let days = meeting["days"].as_array().unwrap();
        assert_eq!(days.len(), 7);
        assert_eq!(days[0]["date"], "2026-11-30");
        assert!(
            days.iter()
                .all(|d| close(&d["utilization"], 0.2) && d["rooms"] == 2),
            "{meeting}"
        );
        let (_, emea) = slice("region=EMEA");
        assert!(close(&emea["days"][3]["utilization"], 0.3), "{emea}");
        assert!(close(&emea["days"][3]["peak"], 0.6), "{emea}");
        let (_, upstairs) = slice("office_id=lon&floor=2");
        assert!(
            close(&upstairs["days"][0]["utilization"], 0.4),
            "{upstairs}"
        );
        let (_, nowhere) = slice("region=APAC");
        assert!(
            nowhere["days"].as_array().is_some_and(Vec::is_empty),
            "{nowhere}"
        );
        assert_eq!(
            get(&format!("{base}/v1/portfolio/days?kind=DESK"), &analyst).1["parameter"],
            "from_date"
        );
        let (status, desks) = get(
            &format!("{base}/v1/offices/ranking?from_date=2026-11-30&to_date=2026-12-07&kind=DESK"),
            &analyst,
        );
        assert_eq!(status, 200, "{desks}");
        let ranked: Vec<&str> = desks["offices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["office_id"].as_str().unwrap())
            .collect();
        assert_eq!(ranked, ["nyc", "lon"], "{desks}");
        assert!(close(&desks["offices"][0]["utilization"], 0.6));

        // The office's hours of one kind or floor of room.
        let heat = |q: &str| {
            get(
                &format!("{base}/v1/offices/lon/heatmap?weeks=1&to=2026-12-07T00:00:00Z&{q}"),
                &analyst,
            )
        };
        let (status, meeting) = heat("kind=MEETING");
        assert_eq!(status, 200, "{meeting}");
        assert!(close(&meeting["utilization"][1][10], 0.4), "{meeting}");
        assert_eq!(meeting["hours_seen"], 1);
        assert!(close(&heat("floor=2").1["utilization"][1][10], 0.9));
        assert!(
            heat("").1["utilization"][1][10].is_null(),
            "the office's own hours"
        );
        assert_eq!(heat("kind=SOFA").1["parameter"], "kind");
        let (status, none) = heat("kind=FOCUS");
        assert_eq!(status, 200, "no focus booths: an empty grid, {none}");
        assert_eq!(none["hours_seen"], 0);

        for (q, parameter) in [
            ("compare=day", "compare"),
            ("by=planet", "by"),
            ("metric=mood", "metric"),
            ("to_date=yesterday", "to_date"),
            ("limit=0", "limit"),
            ("floor=1", "floor"),
            ("kind=SOFA", "kind"),
        ] {
            let (status, body) = ask(q);
            assert_eq!(
                (status, body["parameter"].as_str()),
                (400, Some(parameter)),
                "{q}"
            );
        }
        let (status, _) = get(&format!("{base}/v1/insights/changes?compare=week"), &viewer);
        assert_eq!(status, 403, "analysts only");
    })
    .await
    .unwrap();
    clickhouse_lines(&format!("DROP DATABASE {}", tenant.clickhouse_db()));
}

/// The weekly digest reads each office's own Monday to Sunday: Sydney's week starts on
/// Sunday 13:00 UTC, so its UTC week would take one day of the next week instead of its
/// Monday.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_reads_each_offices_local_week_and_the_week_before() {
    use chrono::TimeZone;
    let tenant = fresh_tenant("digestweek");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant_on(&s, &tenant).await;
    let db = tenant.clickhouse_db();
    let monday = date(2026, 11, 30);
    for (office, zone) in [("syd", "Australia/Sydney"), ("lax", "America/Los_Angeles")] {
        let spec = DayRooms {
            office,
            region: "APAC",
            country: "AU",
            zone,
            floor: 1,
            kind: "DESK",
            rooms: 1,
        };
        store_room_days(&tenant, &spec, monday, 1, 0.5);
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let midnight = |d: NaiveDate| {
            tz.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
                .earliest()
                .unwrap()
                .timestamp()
        };
        // Local days from the Monday before to the Monday after: 0.25 the week before,
        // 0.5 the week, 0.9 the Monday after.
        let values: Vec<String> = (-7..8)
            .map(|d: i64| {
                let day = monday + chrono::Duration::days(d);
                let u = match d {
                    ..0 => 0.25,
                    0..7 => 0.5,
                    _ => 0.9,
                };
                format!(
                    "('1d', '{office}', {}, {}, 1, {}, {}, 100, {u}, 1, 1, now())",
                    midnight(day),
                    midnight(day + chrono::Duration::days(1)),
                    u * 100.0,
                    u * 150.0,
                )
            })
            .collect();
        clickhouse_lines(&format!(
            "INSERT INTO {db}.office_utilization VALUES {}",
            values.join(", ")
        ));
    }
    let week_start = monday
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_millis();
    let weeks = rf_pipelines::alerts::digest::office_weeks(&s.clickhouse, &tenant, week_start)
        .await
        .unwrap();
    let got: Vec<(String, f64, f64, Option<f64>)> = weeks
        .iter()
        .map(|w| (w.office_id.clone(), w.utilization, w.peak, w.week_before))
        .collect();
    assert_eq!(
        got,
        [
            ("lax".to_string(), 0.5, 0.75, Some(0.25)),
            ("syd".to_string(), 0.5, 0.75, Some(0.25)),
        ]
    );
    assert_eq!(weeks[0].change(), Some(1.0));
    clickhouse_lines(&format!("DROP DATABASE {db}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecast_flags_name_offices_and_floors_passing_a_share_of_seats() {
    use chrono::TimeZone;
    let tenant = fresh_tenant("flags");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant_on(&s, &tenant).await;
    let db = tenant.clickhouse_db();
    let london: chrono_tz::Tz = "Europe/London".parse().unwrap();
    let today = chrono::Utc::now().with_timezone(&london).date_naive();
    // Two floors of two rooms of 10 seats: 40 seats.
    for (floor, kind) in [(1, "MEETING"), (2, "DESK")] {
        let spec = DayRooms {
            office: "lon",
            region: "EMEA",
            country: "GB",
            zone: "Europe/London",
            floor,
            kind,
            rooms: 2,
        };
        store_room_days(&tenant, &spec, today - chrono::Days::new(3), 1, 0.3);
    }
    let at = |day: NaiveDate, hour: u32| {
        london
            .from_local_datetime(&day.and_hms_opt(hour, 0, 0).unwrap())
            .earliest()
            .unwrap()
            .timestamp()
    };
    let mut rows = Vec::new();
    // The office's daily peaks: 20, then 34 (85% of 40), then 30.
    for (d, peak) in [(1u64, 20.0), (2, 34.0), (3, 30.0)] {
        let day = today + chrono::Days::new(d);
        rows.push(format!(
            "('1d', 'office', 'lon', 'lon', {}, {}, {peak}, {}, {}, now(), 1)",
            at(day, 0),
            at(day + chrono::Days::new(1), 0),
            peak - 2.0,
            peak + 4.0
        ));
    }
    // The rooms' hours tomorrow: floor 1 holds 9 + 8 at 11:00 (85% of 20), floor 2 3 + 3.
    let tomorrow = today + chrono::Days::new(1);
    for (room, people) in [
        ("lon-meeting-0", [4.0, 9.0]),
        ("lon-meeting-1", [5.0, 8.0]),
        ("lon-desk-0", [3.0, 3.0]),
        ("lon-desk-1", [2.0, 3.0]),
    ] {
        for (i, hour) in [10, 11].into_iter().enumerate() {
            rows.push(format!(
                "('1h', 'room', '{room}', 'lon', {}, {}, {}, {}, {}, now(), 1)",
                at(tomorrow, hour),
                at(tomorrow, hour + 1),
                people[i],
                people[i] - 1.0,
                people[i] + 1.0
            ));
        }
    }
    clickhouse_lines(&format!(
        "INSERT INTO {db}.forecasts VALUES {}",
        rows.join(", ")
    ));

    let config = rf_service::ServiceConfig::default();
    let base = serve(&config, &s).await;
    let analyst = token_with_role(
        &config,
        &tenant,
        "analyst@example.com",
        rf_schemas::tenant::Role::Analyst,
    );
    tokio::task::spawn_blocking(move || {
        let ask = |q: &str| get(&format!("{base}/v1/insights/forecast-flags?{q}"), &analyst);
        let (status, over) = ask("threshold=0.8");
        assert_eq!(status, 200, "{over}");
        let flags = over["flags"].as_array().unwrap();
        assert_eq!(flags.len(), 2, "{over}");
        let office = &flags[0];
        assert_eq!(
            (office["kind"].as_str(), office["seats"].as_f64()),
            (Some("office"), Some(40.0))
        );
        let days = office["flag"]["passes_on"].as_array().unwrap();
        assert_eq!(days.len(), 1, "{office}");
        assert_eq!(days[0]["date"], (today + chrono::Days::new(2)).to_string());
        assert!(close(&days[0]["share"], 0.85));
        assert_eq!(days[0]["interval"], serde_json::json!([0.8, 0.95]));
        assert_eq!(days[0]["likely"], true);
        let floor = &flags[1];
        assert_eq!(
            (floor["kind"].as_str(), floor["floor"].as_i64()),
            (Some("floor"), Some(1))
        );
        let day = &floor["flag"]["passes_on"][0];
        assert_eq!(day["date"], tomorrow.to_string());
        assert!(
            close(&day["expected"], 17.0) && close(&day["share"], 0.85),
            "{floor}"
        );
        assert!(
            close(&day["low"], 15.0) && close(&day["high"], 19.0),
            "{floor}"
        );

        let (_, under) = ask("threshold=0.5&direction=under");
        let flags = under["flags"].as_array().unwrap();
        assert_eq!(flags.len(), 1, "{under}");
        assert_eq!(flags[0]["floor"], 2);
        let busiest = &flags[0]["flag"]["stays_under"]["busiest"];
        assert!(close(&busiest["share"], 0.3), "{busiest}");

        let (_, elsewhere) = ask("threshold=0.8&region=AMER");
        assert!(
            elsewhere["flags"].as_array().is_some_and(Vec::is_empty),
            "{elsewhere}"
        );
        for (q, parameter) in [
            ("direction=sideways", "direction"),
            ("threshold=5", "threshold"),
            ("days=0", "days"),
            ("floor=1&office_id=lon", "floor"),
        ] {
            let (status, body) = ask(q);
            assert_eq!(
                (status, body["parameter"].as_str()),
                (400, Some(parameter)),
                "{q}: {body}"
            );
        }
    })
    .await
    .unwrap();
    clickhouse_lines(&format!("DROP DATABASE {db}"));
}
