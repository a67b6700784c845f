//! The module layering docs/architecture.md promises, read from the source: which
//! top-level module of `src/` names which other one (`crate::x`, outside comments), and
//! that no two of them need each other, directly or round a longer loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level module a file of `src/` belongs to: `src/app/plan.rs` → `app`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let name = first.as_os_str().to_str()?;
    Some(name.strip_suffix(".rs").unwrap_or(name).to_string())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each module → the modules its code (tests included, comments not) names as `crate::x`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else { continue };
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        for line in text.lines().map(str::trim_start).filter(|l| !l.starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let name: String =
                    line[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != module {
                    edges.insert(name);
                }
            }
        }
    }
    graph
}

/// A loop of modules each naming the next, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_modules_import_each_other_directly_or_round_a_loop() {
    let graph = imports();
    assert!(graph.len() > 10, "read too few modules: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("an import cycle: {}\nthe whole graph: {graph:#?}", cycle.join(" → "));
    }
}

#[test]
fn the_lower_layers_know_nothing_of_the_composition_root() {
    let graph = imports();
    for lower in ["cadence", "daemon", "config", "model", "rank", "render", "source", "store", "mail"] {
        let named = &graph[lower];
        assert!(!named.contains("app") && !named.contains("dispatch"), "{lower} imports {named:?}");
    }
    assert_eq!(
        graph["rank"],
        BTreeSet::from(["model".to_string()]),
        "ranking is pure: it needs only the model"
    );
}

#[test]
fn a_loop_is_found_and_a_layered_graph_passes() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            g.entry((*from).to_string()).or_default().insert((*to).to_string());
            g.entry((*to).to_string()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&graph(&[("app", "mail"), ("mail", "config"), ("app", "config")])), None);
    let cycle = find_cycle(&graph(&[("app", "mail"), ("mail", "config"), ("config", "mail")])).unwrap();
    assert_eq!(cycle.first(), cycle.last(), "{cycle:?}");
    assert!(cycle.contains(&"config".to_string()) && cycle.contains(&"mail".to_string()), "{cycle:?}");
    assert!(!cycle.contains(&"app".to_string()), "app is on the way in, not in the loop: {cycle:?}");
}
