//! The crate's import rule, checked on the source: faces (the binary, cli, receiver, query, server)
//! use stages, stages use pure modules and the store, and nothing imports upwards. A pure
//! module (no I/O, no clock, no tokio) imports only other pure modules: never config, the
//! store, telemetry or a stage. The layers below the stages (store, config, telemetry) import
//! no stage and no face. Within a layer, the modules form no cycle.
//!
//! It reads every `crate::<module>` path outside comments and outside each file's trailing
//! `#[cfg(test)] mod tests` (tests may build whatever fixtures they need).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
enum Layer {
    Pure,
    Below, // store, config, telemetry
    Stage,
    Face,
    Tool, // synth: traffic for the loadgen and benches
}

/// The module a path under `src/` belongs to (`stages::intake`, `traces`, `store`, ...), and
/// its layer.
fn module_of(rel: &str) -> (String, Layer) {
    let parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
    let top = parts[0];
    let module = if top == "stages" && parts.len() > 1 {
        format!("stages::{}", parts[1])
    } else {
        top.to_string()
    };
    (module.clone(), layer_of(&module))
}

fn layer_of(module: &str) -> Layer {
    match module.split("::").next().unwrap_or("") {
        "traces" | "series" | "log_templates" | "alerts" | "sampling" | "otlp" => Layer::Pure,
        "store" | "config" | "telemetry" => Layer::Below,
        "stages" => Layer::Stage,
        // The query API's generated messages belong to the face that serves them: layers
        // below hand out snapshots of their own, which `query` maps to proto.
        "main" | "bin" | "cli" | "receiver" | "query" | "server" | "lib" | "proto" | "fuzzing" => {
            Layer::Face
        }
        "synth" => Layer::Tool,
        other => panic!("tests/layout.rs does not know the module `{other}`: add it to a layer"),
    }
}

/// May a module of layer `from` import `to`?
fn allowed(from: Layer, to_module: &str) -> bool {
    let to = layer_of(to_module);
    match from {
        Layer::Face => true,
        Layer::Stage => to != Layer::Face && to != Layer::Tool,
        Layer::Below => matches!(to, Layer::Pure | Layer::Below),
        Layer::Pure => to == Layer::Pure,
        Layer::Tool => matches!(to, Layer::Pure | Layer::Below),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its trailing test module.
fn code(text: &str) -> String {
    let text = match text.find("\n#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a[::b]` in `code`, as the module it names (`stages::b` for stages).
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let word = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let first = word(rest);
        if first == "stages" {
            let second = word(rest.get("stages::".len()..).unwrap_or(""));
            if !second.is_empty() {
                found.insert(format!("stages::{second}"));
                continue;
            }
        }
        if !first.is_empty() {
            found.insert(first);
        }
    }
    found
}

/// The imports of every module of the crate: module -> (imported module -> first file).
fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in files {
        let rel = f
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let (module, _) = module_of(&rel);
        let text = std::fs::read_to_string(&f).expect("read source");
        let edges = graph.entry(module.clone()).or_default();
        for to in imports(&code(&text)) {
            if to != module && !to.starts_with(&format!("{module}::")) {
                edges.entry(to).or_insert_with(|| rel.clone());
            }
        }
    }
    graph
}

#[test]
fn imports_run_one_way() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (from, edges) in &graph {
        for (to, file) in edges {
            if !allowed(layer_of(from), to) {
                wrong.push(format!(
                    "{file}: {from} ({:?}) imports {to} ({:?})",
                    layer_of(from),
                    layer_of(to)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the rule:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn modules_form_no_cycle() {
    let graph = graph();
    // Depth-first search for a back edge; reports the cycle it closes.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for to in graph.get(m).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(to, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(cycle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

/// The checker itself: it finds what it must, so a pass means something.
#[test]
fn the_checker_sees_imports_and_layers() {
    let c = code(
        "use crate::config::X; // crate::store\n/// [`crate::query`]\nfn f() { crate::stages::export::send(); }\n#[cfg(test)]\nmod tests { use crate::store; }",
    );
    let found: Vec<String> = imports(&c).into_iter().collect();
    assert_eq!(found, ["config", "stages::export"]);
    assert!(!allowed(Layer::Pure, "config"));
    assert!(!allowed(Layer::Below, "stages::export"));
    assert!(allowed(Layer::Stage, "store"));
    assert!(
        !allowed(Layer::Stage, "proto"),
        "stages hand out snapshots, not proto"
    );
    assert!(allowed(Layer::Face, "stages::intake"));
    assert_eq!(module_of("stages/intake/pipeline.rs").0, "stages::intake");
}
