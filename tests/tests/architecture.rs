//! The dependency rules of ARCHITECTURE.md, checked against `cargo metadata` (and, for the
//! client's modules, against its sources) so a change that breaks one fails the build instead of
//! eroding the design quietly.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
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
fn authentication_is_pure_and_stands_alone() {
    let dependencies = dependencies();
    assert!(
        dependencies.contains_key("strata-auth"),
        "strata-auth is missing from the workspace"
    );
    let strata_crates: Vec<&str> = dependencies
        .keys()
        .map(String::as_str)
        .filter(|name| name.starts_with("strata-") && *name != "strata-auth")
        .collect();
    assert_free_of(&dependencies, "strata-auth", &strata_crates);
    assert_free_of(
        &dependencies,
        "strata-auth",
        &["tokio", "tonic", "prost", "openraft"],
    );
}

#[test]
fn tls_stands_alone_beneath_every_crate_that_connects() {
    let dependencies = dependencies();
    let strata_crates: Vec<&str> = dependencies
        .keys()
        .map(String::as_str)
        .filter(|name| name.starts_with("strata-") && *name != "strata-tls")
        .collect();
    assert_free_of(&dependencies, "strata-tls", &strata_crates);
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

/// Module name to the modules it names, as `crate::<module>` paths.
type ModuleGraph = BTreeMap<String, BTreeSet<String>>;

/// The `.rs` files under `directory`, at any depth.
fn rust_files(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).expect("source directory reads") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

/// The first segments of the `crate::` paths in `source`, e.g. `a` and `b` for
/// `use crate::a::X; use crate::{b, c::Y};` gives `a`, `b` and `c`. Comment lines are skipped.
fn crate_paths(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let identifier = |text: &str| -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            found.push(identifier(rest));
            continue;
        };
        // `crate::{a, b::{c, d}}`: the first segment of each item at the outer level.
        let mut depth = 0;
        let mut item_start = true;
        for (index, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                _ if item_start && !c.is_whitespace() => {
                    found.push(identifier(&group[index..]));
                    item_start = false;
                }
                _ => {}
            }
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

/// The client crate's modules (`src/<name>.rs`, or `src/<name>/` with its submodules as one) and
/// the other modules each names.
fn client_module_graph() -> ModuleGraph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/client/src");
    let module_of = |file: &Path| -> Option<String> {
        let first = file.strip_prefix(&src).ok()?.components().next()?;
        let first = first.as_os_str().to_str()?;
        let name = first.strip_suffix(".rs").unwrap_or(first);
        (name != "lib").then(|| name.to_string())
    };
    let files = rust_files(&src);
    let mut graph: ModuleGraph = files
        .iter()
        .filter_map(|file| Some((module_of(file)?, BTreeSet::new())))
        .collect();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let source = std::fs::read_to_string(file).expect("source file reads");
        for target in crate_paths(&source) {
            if target != module && graph.contains_key(&target) {
                graph.get_mut(&module).expect("known module").insert(target);
            }
        }
    }
    graph
}

/// A cycle of `graph` as the modules along it, first one repeated at the end; `None` if acyclic.
fn find_cycle(graph: &ModuleGraph) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &ModuleGraph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|on_path| on_path == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_client_modules_import_each_other_without_cycles() {
    let graph = client_module_graph();
    assert!(
        graph.contains_key("grpc") && graph.values().any(|imports| !imports.is_empty()),
        "the client's sources were not found or not read: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "strata-client's modules import each other in a cycle: {} (lower layers must not \
             import higher ones; see the layering in crates/client/src/lib.rs)",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_module_scan_sees_grouped_imports_and_reports_cycles() {
    let source = "use crate::a::X;\n// crate::commented\nuse crate::{b, c::{D, E}};\n";
    assert_eq!(crate_paths(source), ["a", "b", "c"]);
    let graph = |edges: &[(&str, &str)]| {
        let mut graph = ModuleGraph::new();
        for (from, to) in edges {
            graph.entry(to.to_string()).or_default();
            graph
                .entry(from.to_string())
                .or_default()
                .insert(to.to_string());
        }
        graph
    };
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(
            vec!["a", "b", "c", "a"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
}
