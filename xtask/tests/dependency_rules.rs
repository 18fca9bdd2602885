//! The crate-boundary rules of docs/ARCHITECTURE.md, checked against `cargo metadata`:
//! dependencies point one way, segment kinds never depend on each other (only on the shared
//! segment-file layer), and the crates that do no I/O depend on nothing that does.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// For each workspace crate, the workspace crates it may depend on (normal and build deps).
/// xtask reaches below the engine on purpose: its benchmarks measure each tier on its own.
const ALLOWED: &[(&str, &[&str])] = &[
    ("strata-quantize", &[]),
    ("strata-storage", &[]),
    // Schemas, filters and attribute columns: a leaf, like quantize.
    ("strata-attributes", &[]),
    ("strata-memtable", &["strata-quantize", "strata-attributes"]),
    ("strata-segment", &["strata-quantize", "strata-storage"]),
    ("strata-segment-flat", &["strata-quantize", "strata-storage", "strata-segment"]),
    ("strata-segment-diskann", &["strata-quantize", "strata-storage", "strata-segment"]),
    ("strata-manifest", &["strata-storage"]),
    // Tests' shared helpers: a dev-dependency only, which no crate's list below names.
    ("strata-test-support", &["strata-storage"]),
    (
        "strata",
        &[
            "strata-quantize",
            "strata-storage",
            "strata-attributes",
            "strata-memtable",
            "strata-segment",
            "strata-segment-flat",
            "strata-segment-diskann",
            "strata-manifest",
        ],
    ),
    // The Python module binds the public API only, like any embedder.
    ("strata-python", &["strata"]),
    (
        "xtask",
        &[
            "strata",
            "strata-quantize",
            "strata-storage",
            "strata-attributes",
            "strata-memtable",
            "strata-segment",
            "strata-segment-flat",
            "strata-segment-diskann",
        ],
    ),
];

/// Crates that must do no I/O, and what they may therefore not depend on or name in source.
const NO_IO_CRATES: &[&str] = &["strata-quantize", "strata-attributes", "strata-memtable"];
const IO_DEPENDENCIES: &[&str] =
    &["memmap2", "object_store", "tokio", "strata-storage", "tempfile"];
const IO_SOURCE_PATTERNS: &[&str] = &[
    "std::fs",
    "std::net",
    " fs::",
    "{fs",
    ", fs",
    "File::",
    "memmap2",
    "OpenOptions",
    "TcpStream",
];

/// The one exception: the memtable maps *anonymous* memory to ask for huge pages, through
/// memmap2, in one file. Without `std::fs` or `File` (still forbidden there) it has no file to
/// map, so this is allocation, not I/O.
const ANONYMOUS_MAPPINGS: &[(&str, &str, &str)] = &[("strata-memtable", "memmap2", "pages.rs")];

/// Whether `crate_name` may name `pattern` (a dependency or a source pattern) in `file`
/// (`None`: as a dependency).
fn anonymous_mapping_allowed(crate_name: &str, pattern: &str, file: Option<&Path>) -> bool {
    ANONYMOUS_MAPPINGS.iter().any(|&(name, dep, only_file)| {
        name == crate_name
            && dep == pattern
            && file.is_none_or(|f| f.file_name().is_some_and(|n| n == only_file))
    })
}

/// Every rule broken by the workspace that `metadata` (the JSON of `cargo metadata --no-deps`)
/// describes. Source scans read files under each package's directory.
fn violations(metadata: &Value) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    let packages = metadata["packages"].as_array().expect("packages");
    let workspace: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    for package in packages {
        let name = package["name"].as_str().expect("name");
        let Some(may_use) = allowed.get(name) else {
            problems.push(format!("{name}: a workspace crate without a dependency rule"));
            continue;
        };
        for dep in package["dependencies"].as_array().expect("dependencies") {
            let dep_name = dep["name"].as_str().expect("dependency name");
            let is_dev = dep["kind"].as_str() == Some("dev");
            if workspace.contains(&dep_name)
                && dep_name != name
                && !is_dev
                && !may_use.contains(&dep_name)
            {
                problems.push(format!("{name} may not depend on {dep_name}"));
            }
            if NO_IO_CRATES.contains(&name)
                && !is_dev
                && IO_DEPENDENCIES.contains(&dep_name)
                && !anonymous_mapping_allowed(name, dep_name, None)
            {
                problems.push(format!("{name} does no I/O, so it may not depend on {dep_name}"));
            }
        }
        if NO_IO_CRATES.contains(&name) {
            let manifest = Path::new(package["manifest_path"].as_str().expect("manifest_path"));
            scan_sources(&manifest.with_file_name("src"), name, &mut problems);
        }
    }
    problems
}

fn scan_sources(dir: &Path, crate_name: &str, problems: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.map(|e| e.expect("dir entry")) {
        let path = entry.path();
        if path.is_dir() {
            scan_sources(&path, crate_name, problems);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).expect("read source");
            for pattern in IO_SOURCE_PATTERNS {
                if source.contains(pattern)
                    && !anonymous_mapping_allowed(crate_name, pattern, Some(&path))
                {
                    problems.push(format!(
                        "{crate_name} does no I/O, but {} uses {pattern}",
                        path.display()
                    ));
                }
            }
        }
    }
}

fn workspace_metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("metadata JSON")
}

#[test]
fn the_workspace_keeps_its_dependency_rules() {
    let metadata = workspace_metadata();
    let names: Vec<_> =
        metadata["packages"].as_array().unwrap().iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names.len(), ALLOWED.len(), "every crate has a rule: {names:?}");
    let problems = violations(&metadata);
    assert!(problems.is_empty(), "dependency rules broken:\n{}", problems.join("\n"));
}

#[test]
fn broken_rules_are_reported() {
    let package = |name: &str, deps: &[(&str, Option<&str>)]| {
        serde_json::json!({
            "name": name,
            "manifest_path": "/nonexistent/Cargo.toml",
            "dependencies": deps.iter().map(|(d, kind)| serde_json::json!({"name": d, "kind": kind})).collect::<Vec<_>>(),
        })
    };
    let metadata = serde_json::json!({ "packages": [
        package("strata-segment-flat", &[("strata-segment-diskann", None), ("strata-quantize", None)]),
        package("strata-segment-diskann", &[("strata-manifest", None)]),
        package("strata-manifest", &[("strata-storage", None)]),
        package("strata-storage", &[]),
        package("strata-quantize", &[("memmap2", None), ("tempfile", Some("dev"))]),
        package("strata-memtable", &[("strata-storage", None), ("memmap2", None)]),
        package("strata-newcomer", &[]),
    ]});
    let problems = violations(&metadata);
    for expected in [
        "strata-segment-flat may not depend on strata-segment-diskann",
        "strata-segment-diskann may not depend on strata-manifest",
        "strata-quantize does no I/O, so it may not depend on memmap2",
        "strata-memtable may not depend on strata-storage",
        "strata-memtable does no I/O, so it may not depend on strata-storage",
        "strata-newcomer: a workspace crate without a dependency rule",
    ] {
        assert!(problems.iter().any(|p| p == expected), "missing {expected:?} in {problems:#?}");
    }
    assert_eq!(problems.len(), 6, "{problems:#?}");
}

#[test]
fn the_anonymous_mapping_exception_is_one_file_of_one_crate() {
    let memtable = "strata-memtable";
    assert!(anonymous_mapping_allowed(memtable, "memmap2", None));
    assert!(anonymous_mapping_allowed(memtable, "memmap2", Some(Path::new("src/pages.rs"))));
    assert!(!anonymous_mapping_allowed(memtable, "memmap2", Some(Path::new("src/rows.rs"))));
    assert!(!anonymous_mapping_allowed(memtable, "std::fs", Some(Path::new("src/pages.rs"))));
    assert!(!anonymous_mapping_allowed("strata-quantize", "memmap2", None));
}

/// The engine stays split by concept (docs/ARCHITECTURE.md): no source file over this many
/// lines, so a reader finds the write path, a commit or a search in a file of its own.
const ENGINE_FILE_LINES: usize = 600;

/// Every `.rs` file under `dir` with more than `limit` lines, with its count.
fn long_files(dir: &Path, limit: usize, found: &mut Vec<(String, usize)>) {
    for entry in std::fs::read_dir(dir).expect("read dir").map(|e| e.expect("dir entry")) {
        let path = entry.path();
        if path.is_dir() {
            long_files(&path, limit, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let lines = std::fs::read_to_string(&path).expect("read source").lines().count();
            if lines > limit {
                found.push((path.display().to_string(), lines));
            }
        }
    }
}

#[test]
fn engine_sources_stay_small() {
    let engine = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/src");
    let mut found = Vec::new();
    long_files(&engine, ENGINE_FILE_LINES, &mut found);
    assert!(found.is_empty(), "engine files over {ENGINE_FILE_LINES} lines: {found:?}");
    // The walk sees nested modules: with a limit of one line, every file is reported.
    let mut all = Vec::new();
    long_files(&engine, 1, &mut all);
    assert!(all.iter().any(|(path, _)| path.ends_with("db/commit.rs")), "{all:?}");
}

/// The modules of `xtask/src` each names (`crate::module`), outside its tests.
fn xtask_module_imports() -> BTreeMap<String, Vec<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: Vec<String> = std::fs::read_dir(&src)
        .expect("xtask/src")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().expect("stem").to_string_lossy().into_owned())
        .collect();
    let mut imports = BTreeMap::new();
    for module in &modules {
        let source = std::fs::read_to_string(src.join(format!("{module}.rs"))).expect("source");
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        // `crate::a::...` and `use crate::{a, b::...}`.
        let mut named: Vec<String> = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let words: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group.split('}').next().unwrap_or_default().split(',').collect(),
                None => vec![rest],
            };
            for word in words {
                let name: String = word
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                if modules.contains(&name) && name != *module && !named.contains(&name) {
                    named.push(name);
                }
            }
        }
        imports.insert(module.clone(), named);
    }
    imports
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.iter().any(|n| n == node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.push(node.to_owned());
        None
    }
    let mut done = Vec::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn xtask_modules_import_without_a_circle() {
    let imports = xtask_module_imports();
    assert!(imports["bench"].contains(&"measure".to_owned()), "the scan sees imports: {imports:?}");
    assert_eq!(find_cycle(&imports), None, "{imports:?}");
    // The check itself finds a circle when there is one.
    let mut circle = imports.clone();
    circle.get_mut("measure").expect("measure").push("bench".to_owned());
    assert!(find_cycle(&circle).is_some());
}
