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

/// `roomflow [--config file] config --check` with only `env` set.
fn check(config: Option<&str>, env: &BTreeMap<String, String>) {
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
    assert!(
        out.status.success(),
        "config --check failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
    let hosts = parsed["pipeline"]["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), replicas, "pipeline.hosts lists every pod");
    for (i, host) in hosts.iter().enumerate() {
        let host = host.as_str().unwrap();
        assert!(
            host.starts_with(&format!("roomflow-pipeline-{i}.roomflow-pipeline.")),
            "{host}"
        );
    }
    // Every pod's config, as its process index makes it.
    for process in 0..replicas {
        let mut env = secrets.clone();
        env.insert("ROOMFLOW_PIPELINE__PROCESS".into(), process.to_string());
        check(Some(toml), &env);
    }
    let service = documents("k8s/service.yaml");
    let args = &kind(&service, "Deployment", "roomflow-service")["spec"]["template"]["spec"]
        ["containers"][0]["args"];
    assert_eq!(args[2], "serve");
    check(Some(toml), &secrets);
}

#[test]
fn the_compose_file_gives_each_roomflow_service_a_valid_config() {
    let compose = &documents("docker/docker-compose.yml")[0];
    let mut checked = 0;
    for (name, service) in compose["services"].as_mapping().unwrap() {
        if service["image"] != "roomflow:local" {
            continue;
        }
        let mut env = strings(&service["environment"]);
        for value in env.values_mut() {
            if value.starts_with("${") {
                *value = "a-secret-from-the-environment-0123".into();
            }
        }
        assert_eq!(env["ROOMFLOW_KAFKA__BROKERS"], "kafka:9092", "{name:?}");
        check(None, &env);
        checked += 1;
    }
    assert_eq!(checked, 3, "setup, pipeline and service");
}
