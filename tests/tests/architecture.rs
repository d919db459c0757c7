//! The dependency rules of ARCHITECTURE.md, checked against `cargo metadata` so a change that
//! breaks one fails the build instead of eroding the design quietly.

use serde_json::Value;
use std::collections::HashMap;
use std::process::Command;

/// Each workspace crate's normal (non-dev, non-build) dependencies, by package name.
fn dependencies() -> HashMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            let name = package["name"].as_str().expect("name").to_string();
            let dependencies = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|dependency| dependency["kind"].is_null())
                .map(|dependency| {
                    dependency["name"]
                        .as_str()
                        .expect("dependency name")
                        .to_string()
                })
                .collect();
            (name, dependencies)
        })
        .collect()
}

fn assert_free_of(dependencies: &HashMap<String, Vec<String>>, package: &str, forbidden: &[&str]) {
    let Some(actual) = dependencies.get(package) else {
        return;
    };
    for name in forbidden {
        assert!(
            !actual.iter().any(|dependency| dependency == name),
            "{package} must not depend on {name} (see ARCHITECTURE.md)"
        );
    }
}

#[test]
fn storage_knows_nothing_of_networking_raft_or_groups() {
    let dependencies = dependencies();
    assert_free_of(
        &dependencies,
        "strata-storage",
        &[
            "tokio",
            "tonic",
            "prost",
            "openraft",
            "strata-proto",
            "strata-broker",
            "strata-client",
            "strata-controller",
            "strata-coordinator",
        ],
    );
}

#[test]
fn the_record_format_and_common_types_do_no_io() {
    let dependencies = dependencies();
    for package in ["strata-common", "strata-record"] {
        assert_free_of(
            &dependencies,
            package,
            &[
                "tokio",
                "tonic",
                "prost",
                "memmap2",
                "strata-storage",
                "strata-proto",
            ],
        );
    }
}

#[test]
fn the_controller_knows_nothing_of_brokers_or_clients() {
    let dependencies = dependencies();
    assert_free_of(
        &dependencies,
        "strata-controller",
        &["strata-broker", "strata-client", "strata-cli"],
    );
}

#[test]
fn the_client_never_depends_on_server_crates() {
    let dependencies = dependencies();
    assert_free_of(
        &dependencies,
        "strata-client",
        &[
            "strata-broker",
            "strata-storage",
            "strata-controller",
            "strata-coordinator",
            "openraft",
        ],
    );
}

#[test]
fn only_the_proto_crate_compiles_protobuf_and_only_the_controller_sees_raft() {
    let dependencies = dependencies();
    for (package, actual) in &dependencies {
        if package != "strata-proto" {
            assert!(
                !actual
                    .iter()
                    .any(|dependency| dependency == "prost" || dependency == "tonic-prost"),
                "{package} must reach prost types only through strata-proto"
            );
        }
        if package != "strata-controller" {
            assert!(
                !actual.iter().any(|dependency| dependency == "openraft"),
                "{package} must not import openraft; it stays behind strata-controller"
            );
        }
    }
}

#[test]
fn the_group_coordinator_core_is_pure() {
    let dependencies = dependencies();
    assert_free_of(
        &dependencies,
        "strata-coordinator",
        &[
            "tokio",
            "tonic",
            "prost",
            "openraft",
            "strata-storage",
            "strata-proto",
            "strata-broker",
            "strata-client",
            "strata-controller",
        ],
    );
}

#[test]
fn test_helpers_stay_out_of_shipped_code_and_depend_on_no_strata_crate() {
    let dependencies = dependencies();
    assert_free_of(
        &dependencies,
        "strata-tests",
        &[
            "strata-common",
            "strata-record",
            "strata-storage",
            "strata-proto",
            "strata-broker",
            "strata-client",
            "strata-controller",
            "strata-coordinator",
        ],
    );
    for (package, needs) in &dependencies {
        assert!(
            !needs.iter().any(|name| name == "strata-tests"),
            "{package} depends on strata-tests outside its dev-dependencies"
        );
    }
}

#[test]
fn the_broker_never_depends_on_the_client() {
    let dependencies = dependencies();
    assert_free_of(&dependencies, "strata-broker", &["strata-client"]);
}

#[test]
fn the_cli_reaches_storage_only_through_the_broker() {
    let dependencies = dependencies();
    assert_free_of(
        &dependencies,
        "strata-cli",
        &[
            "strata-storage",
            "strata-controller",
            "strata-coordinator",
            "openraft",
        ],
    );
}
