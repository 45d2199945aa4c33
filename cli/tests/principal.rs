//! Tenants' producer principals on a broker that requires SASL/SCRAM: nisshi with
//! `--authentication` on SQLite storage of its own (port 19094). roomflow connects as its
//! own principal; `tenant create --producer-principal`, `producer-principal rotate` and
//! `delete` act on the broker's SCRAM users, and a producer gets in with exactly the
//! password roomflow last printed. nisshi 0.8.1 has no authorizer: it answers ACL
//! creation with SECURITY_DISABLED, so the test checks that roomflow then refuses and
//! creates no unrestricted user (the ACLs themselves are unit-tested); and it describes
//! no SCRAM users, so rotation cannot tell a missing user from an existing one here.

mod common;

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};

use common::*;

const PORT: u16 = 19094;
const ADMIN_PASSWORD: &str = "roomflow-test-admin-password";

/// Records what librdkafka reports, to tell a refused login from a broker that is down.
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.lock().unwrap().push(format!("{error}: {reason}"));
    }
}

/// Produces one record to `topic` as `user`; the errors librdkafka reported if it could not.
async fn produce_as(user: &str, password: &str, topic: &str) -> Result<(), String> {
    let errors = Errors::default();
    let producer: FutureProducer<Errors> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{PORT}"))
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("message.timeout.ms", "8000")
        .create_with_context(errors.clone())
        .unwrap();
    let record = FutureRecord::to(topic).key("lon").payload("x");
    let refused = async {
        // A refused login is final: no need to wait for the message to time out.
        while !errors
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("Authentication"))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        sent = producer.send(record, Duration::from_secs(10)) => match sent {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(format!("{e}; {:?}", errors.0.lock().unwrap())),
        },
        () = refused => Err(format!("{:?}", errors.0.lock().unwrap())),
    }
}

/// `roomflow <args>` as roomflow's own principal on the private broker.
fn roomflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roomflow"))
        .args(args)
        .env("ROOMFLOW_KAFKA__BROKERS", format!("127.0.0.1:{PORT}"))
        .env("ROOMFLOW_KAFKA__SECURITY__PROTOCOL", "sasl_plaintext")
        .env("ROOMFLOW_KAFKA__SECURITY__MECHANISM", "SCRAM-SHA-512")
        .env("ROOMFLOW_KAFKA__SECURITY__USERNAME", "roomflow")
        .env("ROOMFLOW_KAFKA__SECURITY__PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The password in "… password P (shown once)".
fn printed_password(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("(shown once)"))
        .unwrap_or_else(|| panic!("no password printed: {}", text(out)));
    let after = line.split(" password ").nth(1).unwrap();
    after.split_whitespace().next().unwrap().to_owned()
}

fn refused(result: Result<(), String>) -> String {
    let why = result.expect_err("the broker let the producer in");
    assert!(why.contains("SASL") || why.contains("uthenticat"), "{why}");
    why
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_principals_are_refused_without_an_authorizer_rotated_and_deleted() {
    let tenant = fresh_tenant("principal");
    let other = fresh_tenant("principal-b");
    let producer = format!("{tenant}-producer");
    let dir = repo_root().join(".data/test-principal");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // roomflow's own principal and one producer made outside roomflow (as a cluster's
    // operators would), while the broker still lets anyone in; then it requires SASL.
    let broker = Broker::start(&dir, PORT, &[]);
    let url = format!("tcp://127.0.0.1:{PORT}");
    for (user, password) in [
        ("roomflow", ADMIN_PASSWORD),
        (producer.as_str(), "made-outside"),
    ] {
        let out = Command::new(nisshi())
            .args(["user", "create", "--broker", &url, user, password])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    broker.kill();
    let _broker = Broker::start(&dir, PORT, &["--authentication"]);

    let mut s = settings(&tenant);
    s.kafka.brokers = format!("127.0.0.1:{PORT}");
    s.kafka.security.protocol = "sasl_plaintext".into();
    s.kafka.security.mechanism = "SCRAM-SHA-512".into();
    s.kafka.security.username = "roomflow".into();
    s.kafka.security.password = rf_sinks::config::Secret::new(ADMIN_PASSWORD);
    create_tenant_on(&s, &tenant).await;
    let readings = tenant.readings_topic();
    refused(produce_as("nobody", "guess", &readings).await);
    produce_as(&producer, "made-outside", &readings)
        .await
        .expect("the producer made outside gets in");

    // A new tenant's principal: the broker cannot restrict it (no authorizer), so
    // roomflow says so, in one line naming the flag, and creates no user.
    let out = roomflow(&["tenant", "create", other.as_str(), "--producer-principal"]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--producer-principal"), "{stderr}");
    assert!(stderr.contains("no authorizer"), "{stderr}");
    assert!(stderr.contains("no principal was created"), "{stderr}");
    let why = refused(
        produce_as(
            &format!("{other}-producer"),
            "guess",
            &other.readings_topic(),
        )
        .await,
    );
    assert!(why.contains("unknown-user"), "{why}");

    // An existing principal is left as it is.
    let out = roomflow(&["tenant", "create", tenant.as_str(), "--producer-principal"]);
    assert!(!out.status.success(), "{}", text(&out));
    produce_as(&producer, "made-outside", &readings)
        .await
        .expect("a refused create leaves an existing principal alone");

    // Rotated: the new password gets in, the old one no longer does.
    let out = roomflow(&["tenant", "producer-principal", "rotate", tenant.as_str()]);
    assert!(out.status.success(), "{}", text(&out));
    let password = printed_password(&out);
    assert_eq!(password.len(), 36);
    produce_as(&producer, &password, &readings)
        .await
        .expect("the rotated password gets in");
    let why = refused(produce_as(&producer, "made-outside", &readings).await);
    assert!(!why.contains("unknown-user"), "{why}");

    // Deleted: the user is gone.
    let out = roomflow(&["tenant", "producer-principal", "delete", tenant.as_str()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("deleted"), "{}", text(&out));
    let why = refused(produce_as(&producer, &password, &readings).await);
    assert!(why.contains("unknown-user"), "{why}");

    // Erasure removes it too: a tenant made again with this id must not find the old
    // sensors' password valid.
    let out = roomflow(&["tenant", "producer-principal", "rotate", tenant.as_str()]);
    let password = printed_password(&out);
    produce_as(&producer, &password, &readings).await.unwrap();
    let cold = rf_jobs::cold::ColdConfig::default();
    let step = rf_jobs::erase::Step::Users;
    let done = rf_jobs::erase::step(&s, std::path::Path::new(""), &cold, &tenant, "", step)
        .await
        .unwrap();
    assert!(
        done.ends_with("and 1 producer principal credentials"),
        "{done}"
    );
    let why = refused(produce_as(&producer, &password, &readings).await);
    assert!(why.contains("unknown-user"), "{why}");
}
