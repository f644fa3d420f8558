//! The library's module graph stays one-way (README "Architecture"): this scans `src/**/*.rs`
//! for `crate::<module>` paths and fails on any cycle between top-level modules, on `config`
//! importing anything but `vocab`, and on anything but `app` importing `routes`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The binary's own files (`main.rs` and its modules), which `crate::` does not reach.
const BINARY: [&str; 4] = ["main.rs", "commands.rs", "example_page.rs", "output.rs"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names through `crate::`, including `use crate::{a, b::c}`.
fn imports(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `vonage_sessions::crate…` or `foo_crate::`, not a crate path
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of a grouped `use`: those at brace depth 0 after a `,` or `{`.
            let mut depth = 0;
            let mut expect_name = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expect_name = true,
                    c if expect_name && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                        found.insert(ident(&group[i..]));
                        expect_name = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let top = |path: &Path| -> Option<String> {
        let relative = path.strip_prefix(&src).unwrap();
        let first = relative.components().next()?.as_os_str().to_str()?;
        if relative.components().count() == 1 && (first == "lib.rs" || BINARY.contains(&first)) {
            return None;
        }
        Some(first.trim_end_matches(".rs").to_owned())
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|path| top(path)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let Some(from) = top(path) else { continue };
        let source = std::fs::read_to_string(path).unwrap();
        let targets = graph.entry(from.clone()).or_default();
        for to in imports(&source) {
            if to != from && modules.contains(&to) {
                targets.insert(to);
            }
        }
    }
    graph
}

/// A cycle through `graph`, as the list of modules on it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_scanner_reads_plain_grouped_and_nested_crate_paths() {
    let found = imports(
        "use crate::auth::Caller;\nuse crate::{config::{A, B}, video};\n\
         let x = crate::metrics::install(); // crate::routes in a comment\n",
    );
    let expected: BTreeSet<String> = ["auth", "config", "metrics", "video"]
        .map(str::to_owned)
        .into();
    assert_eq!(found, expected);
    let mut cyclic = BTreeMap::new();
    cyclic.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    cyclic.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert!(find_cycle(&cyclic).is_some(), "a cycle is found");
}

#[test]
fn top_level_modules_import_one_way() {
    let graph = graph();
    assert!(
        graph.contains_key("routes") && graph.contains_key("config"),
        "{graph:?}"
    );
    let picture: String = graph
        .iter()
        .map(|(from, to)| format!("{from} -> {to:?}\n"))
        .collect();
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import cycle {}: move what both sides need below both (README Architecture)\n{picture}",
            cycle.join(" -> ")
        );
    }
    let config: Vec<&String> = graph["config"].iter().filter(|m| *m != "vocab").collect();
    assert!(config.is_empty(), "config is a leaf but imports {config:?}");
    for (from, to) in &graph {
        assert!(
            from == "app" || !to.contains("routes"),
            "{from} imports routes; only app wires routes\n{picture}"
        );
    }
}
