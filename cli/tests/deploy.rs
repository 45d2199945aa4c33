//! The deployment files in `deploy/` cannot run here, so what can be checked is: they
//! parse, the config they give roomflow passes `roomflow config --check`, and the
//! pipeline's StatefulSet and host list agree.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// Every document of a YAML file, with merge keys applied.
fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let mut v = Value::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}"));
            v.apply_merge().unwrap();
            v
        })
        .collect()
}

fn strings(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
            };
            (k.as_str().unwrap().to_owned(), v)
        })
        .collect()
}

/// `roomflow [--config file] config --check` with only `env` set: Ok, or what it printed.
fn checked(config: Option<&str>, env: &BTreeMap<String, String>) -> Result<(), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roomflow"));
    cmd.env_clear().envs(env);
    let dir = std::env::temp_dir().join(format!("roomflow-deploy-{}", std::process::id()));
    if let Some(toml) = config {
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("roomflow.toml");
        std::fs::write(&file, toml).unwrap();
        cmd.arg("--config").arg(file);
    }
    let out = cmd.args(["config", "--check"]).output().unwrap();
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn check(config: Option<&str>, env: &BTreeMap<String, String>) {
    if let Err(printed) = checked(config, env) {
        panic!("config --check failed: {printed}");
    }
}

/// `env` with every example value replaced by one from a secret store.
fn real_secrets(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let stored = "Vb3kQ9-from-the-secret-store-7Yx2Lp0w";
    env.iter()
        .map(|(k, v)| {
            let v = v.replace("change-me-to-32-random-characters", stored);
            (k.clone(), v.replace("change-me", stored))
        })
        .collect()
}

/// A key file holding `text`, readable by its owner and group only, as mounted.
fn key_file(name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("roomflow-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o440)).unwrap();
    file.display().to_string()
}

/// A generated platform key, as `roomflow keys generate` prints it.
fn generated_key() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_roomflow"))
        .env_clear()
        .args(["keys", "generate"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn kubernetes_manifests_carry_a_valid_config() {
    let config = documents("k8s/config.yaml");
    for file in [
        "k8s/namespace.yaml",
        "k8s/pipeline.yaml",
        "k8s/service.yaml",
    ] {
        for d in documents(file) {
            assert_eq!(
                d["metadata"]["namespace"].as_str().unwrap_or("roomflow"),
                "roomflow"
            );
        }
    }
    let toml = kind(&config, "ConfigMap", "roomflow")["data"]["roomflow.toml"]
        .as_str()
        .unwrap();
    let secrets = strings(&kind(&config, "Secret", "roomflow")["stringData"]);
    assert!(secrets.keys().all(|k| k.starts_with("ROOMFLOW_")));

    let pipeline = documents("k8s/pipeline.yaml");
    let set = kind(&pipeline, "StatefulSet", "roomflow-pipeline");
    let replicas = set["spec"]["replicas"].as_u64().unwrap() as usize;
    let parsed: toml::Table = toml.parse().unwrap();
    assert_eq!(
        parsed["kafka"]["replication_factor"].as_integer(),
        Some(3),
        "no topic of a production cluster has a single copy"
    );
    let hosts = parsed["pipeline"]["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), replicas, "pipeline.hosts lists every pod");
    for (i, host) in hosts.iter().enumerate() {
        let host = host.as_str().unwrap();
        assert!(
            host.starts_with(&format!("roomflow-pipeline-{i}.roomflow-pipeline.")),
            "{host}"
        );
    }
    let platform_keys = key_file("platform.keys", &generated_key());
    // The placeholders as shipped are refused, each naming its field.
    let shipped = checked(Some(toml), &secrets).expect_err("placeholders are refused");
    assert!(shipped.contains("service.jwt_secret"), "{shipped}");
    for (field, key) in [
        ("clickhouse.password", "ROOMFLOW_CLICKHOUSE__PASSWORD"),
        ("redis.url", "ROOMFLOW_REDIS__URL"),
        ("redis.service_url", "ROOMFLOW_REDIS__SERVICE_URL"),
        ("redis.jobs_url", "ROOMFLOW_REDIS__JOBS_URL"),
    ] {
        let mut env = real_secrets(&secrets);
        env.insert(key.into(), secrets[key].clone());
        env.insert("ROOMFLOW_SECRETS__KEY_FILE".into(), platform_keys.clone());
        let refused = checked(Some(toml), &env).expect_err(field);
        assert!(refused.starts_with(&format!("error: {field}")), "{refused}");
        assert!(
            !refused.contains(":change-me@"),
            "no password shown: {refused}"
        );
    }
    // The key file: where the config looks is where both pods mount the Secret, and the
    // shipped placeholder is refused.
    let keys = strings(&kind(&config, "Secret", "roomflow-keys")["stringData"]);
    let key_path = parsed["secrets"]["key_file"].as_str().unwrap();
    let (mount, file) = key_path.rsplit_once('/').unwrap();
    assert!(keys.contains_key(file), "{keys:?}");
    let service = documents("k8s/service.yaml");
    for pod in [
        &kind(&pipeline, "StatefulSet", "roomflow-pipeline")["spec"]["template"]["spec"],
        &kind(&service, "Deployment", "roomflow-service")["spec"]["template"]["spec"],
    ] {
        let mounts = pod["containers"][0]["volumeMounts"].as_sequence().unwrap();
        let at = mounts.iter().find(|m| m["mountPath"] == mount).unwrap();
        let volume = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == at["name"])
            .unwrap();
        assert_eq!(volume["secret"]["secretName"], "roomflow-keys");
    }
    let mut env = real_secrets(&secrets);
    env.insert(
        "ROOMFLOW_SECRETS__KEY_FILE".into(),
        key_file("placeholder.keys", &keys[file]),
    );
    let refused = checked(Some(toml), &env).expect_err("the placeholder key");
    assert!(
        refused.starts_with("error: secrets.key_file: "),
        "{refused}"
    );
    let mut secrets = real_secrets(&secrets);
    secrets.insert("ROOMFLOW_SECRETS__KEY_FILE".into(), platform_keys);
    // Every pod's config, as its process index makes it.
    for process in 0..replicas {
        let mut env = secrets.clone();
        env.insert("ROOMFLOW_PIPELINE__PROCESS".into(), process.to_string());
        check(Some(toml), &env);
    }
    let args = &kind(&service, "Deployment", "roomflow-service")["spec"]["template"]["spec"]
        ["containers"][0]["args"];
    assert_eq!(args[2], "serve");
    check(Some(toml), &secrets);
}

#[test]
fn the_compose_file_gives_each_roomflow_service_a_valid_config() {
    let compose = &documents("docker/docker-compose.yml")[0];
    let mut services = 0;
    for (name, service) in compose["services"].as_mapping().unwrap() {
        if service["image"] != "roomflow:local" {
            continue;
        }
        let mut env = strings(&service["environment"]);
        for value in env.values_mut() {
            // Each ${VARIABLE:?message} the operator sets.
            while let Some(start) = value.find("${") {
                let end = start + value[start..].find('}').unwrap();
                value.replace_range(start..=end, "a-secret-from-the-environment-0123");
            }
        }
        assert_eq!(env["ROOMFLOW_KAFKA__BROKERS"], "kafka:9092", "{name:?}");
        assert_eq!(env["ROOMFLOW_KAFKA__REPLICATION_FACTOR"], "3", "{name:?}");
        // The platform key file is the compose secret each roomflow service mounts.
        assert_eq!(
            env["ROOMFLOW_SECRETS__KEY_FILE"], "/run/secrets/platform_keys",
            "{name:?}"
        );
        assert_eq!(service["secrets"][0], "platform_keys", "{name:?}");
        let without = checked(None, &env).expect_err("no key file here");
        assert!(
            without.starts_with("error: secrets.key_file: "),
            "{without}"
        );
        env.insert(
            "ROOMFLOW_SECRETS__KEY_FILE".into(),
            key_file("compose.keys", &generated_key()),
        );
        check(None, &env);
        services += 1;
    }
    assert_eq!(services, 3, "setup, pipeline and service");
    // Redis: no `default` user, and each component's own user, none with every right.
    let redis: Vec<&str> = compose["services"]["redis"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let line = redis.join(" ");
    assert!(line.contains("--user default off"), "{line}");
    for user in ["rf-pipeline", "rf-service", "rf-jobs"] {
        assert!(line.contains(&format!("--user {user} on >${{")), "{line}");
    }
    assert!(!line.contains("+@all") && line.matches("-@dangerous").count() == 3);
    assert!(compose["secrets"]["platform_keys"]["file"]
        .as_str()
        .unwrap()
        .starts_with("${ROOMFLOW_PLATFORM_KEYS:?"));
}
