//! The app's modules import in one direction: from the pages at the top, through the session and
//! the store, down to the settings and the client crate; no module imports one that imports it
//! back, no route module imports another (or the router, `routes.rs`), and the error type knows
//! nothing of the middleware or the session.
//!
//! The check reads `src/` itself: every `crate::` path (in `use` declarations, `use` groups and
//! inline paths) and every `super::` path of every module, outside comments and `#[cfg(test)]`
//! modules, becomes an edge from the module to the one it names. A module's private child modules
//! count as the module itself (a `store/` file and `store.rs` are one unit), except under
//! `routes/`, where every page is a unit of its own. Templates may call `crate::templates` only,
//! the leaf every page may use.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Source files under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/routes/signin.rs` is `["routes", "signin"]`; `src/lib.rs` is `[]`, the crate root.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file
        .strip_prefix(src)
        .expect("under src/")
        .with_extension("");
    let segments: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if segments == ["lib"] {
        Vec::new()
    } else {
        segments
    }
}

/// The unit a path belongs to: its top-level module, `routes::<page>` for the pages, or `crate`
/// for what the crate root itself defines.
fn unit(path: &[String], modules: &BTreeSet<String>, routes: &BTreeSet<String>) -> String {
    match path {
        [first, second, ..] if first == "routes" && routes.contains(second) => {
            format!("routes::{second}")
        }
        [first, ..] if modules.contains(first) => first.clone(),
        _ => "crate".into(),
    }
}

/// The code without comments and without its `#[cfg(test)] mod tests` (always last here).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a use tree names, e.g. `a::{b, c::{d, e}}` is `a::b`, `a::c::d`, `a::c::e`.
fn use_tree(text: &str) -> Vec<Vec<String>> {
    fn tree(chars: &[char], at: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = prefix;
        loop {
            while *at < chars.len() && chars[*at].is_whitespace() {
                *at += 1;
            }
            if chars.get(*at) == Some(&'{') {
                *at += 1;
                loop {
                    tree(chars, at, path.clone(), out);
                    while *at < chars.len() && chars[*at].is_whitespace() {
                        *at += 1;
                    }
                    match chars.get(*at) {
                        Some(',') => *at += 1,
                        _ => break,
                    }
                    while *at < chars.len() && chars[*at].is_whitespace() {
                        *at += 1;
                    }
                    if chars.get(*at) == Some(&'}') {
                        break;
                    }
                }
                if chars.get(*at) == Some(&'}') {
                    *at += 1;
                }
                return;
            }
            let start = *at;
            while *at < chars.len() && (chars[*at].is_alphanumeric() || chars[*at] == '_') {
                *at += 1;
            }
            if *at > start {
                path.push(chars[start..*at].iter().collect());
            }
            if chars.get(*at) == Some(&':') && chars.get(*at + 1) == Some(&':') {
                *at += 2;
                continue;
            }
            if !path.is_empty() {
                out.push(path);
            }
            return;
        }
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    tree(&chars, &mut 0, Vec::new(), &mut out);
    out
}

/// Every path `code` names from `module`, from the crate root: `crate::`, `super::` and `self::`
/// paths, and paths through `children` (the module's own child modules, named without a prefix).
fn named_paths(module: &[String], children: &[String], code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut keywords = vec![
        ("crate::".to_owned(), Vec::new()),
        (
            "super::".to_owned(),
            module[..module.len().saturating_sub(1)].to_vec(),
        ),
        ("self::".to_owned(), module.to_vec()),
    ];
    for child in children {
        keywords.push((
            format!("{child}::"),
            [module, &[child.clone()][..]].concat(),
        ));
    }
    for (keyword, base) in keywords {
        let mut rest = code;
        while let Some(at) = rest.find(keyword.as_str()) {
            let preceded_by_ident = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            rest = &rest[at + keyword.len()..];
            if preceded_by_ident {
                continue;
            }
            for path in use_tree(rest) {
                paths.push(base.iter().cloned().chain(path).collect());
            }
        }
    }
    paths
}

struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
    templates: Vec<(String, String)>,
}

fn graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let routes: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(&src, f))
        .filter(|m| m.len() == 2 && m[0] == "routes")
        .map(|m| m[1].clone())
        .collect();
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_of(&src, f).first().cloned())
        .filter(|m| m != "main")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == ["main"] {
            continue; // the binary: another crate, using this one
        }
        let from = unit(&module, &modules, &routes);
        let text = std::fs::read_to_string(file).expect("a source file");
        let children: Vec<String> = files
            .iter()
            .map(|f| module_of(&src, f))
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(&module) && m != &["main"])
            .filter_map(|m| m.last().cloned())
            .collect();
        let targets = edges.entry(from.clone()).or_default();
        for path in named_paths(&module, &children, &code(&text)) {
            let to = unit(&path, &modules, &routes);
            if to != from {
                targets.insert(to);
            }
        }
    }
    let mut templates = Vec::new();
    let mut pages: Vec<_> = std::fs::read_dir(root.join("templates"))
        .expect("templates/ is readable")
        .map(|e| e.expect("an entry").path())
        .collect();
    pages.sort();
    for page in pages {
        let text = std::fs::read_to_string(&page).expect("a template");
        for path in named_paths(&[], &[], &text) {
            templates.push((
                page.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                path.join("::"),
            ));
        }
    }
    Graph { edges, templates }
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let here = path.last().cloned().unwrap_or_default();
        for next in graph.get(&here).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(graph, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

fn shown(graph: &Graph) -> String {
    graph
        .edges
        .iter()
        .map(|(from, to)| {
            format!(
                "{from} -> {}",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = graph();
    for module in graph.edges.keys() {
        if let Some(cycle) = cycle_from(&graph.edges, module) {
            panic!(
                "an import cycle: {}\n\nevery import:\n{}",
                cycle.join(" -> "),
                shown(&graph)
            );
        }
    }
}

#[test]
fn no_route_module_imports_another_or_the_router() {
    let graph = graph();
    for (from, targets) in &graph.edges {
        if !from.starts_with("routes::") {
            continue;
        }
        for to in targets {
            assert!(
                to != "routes" && !to.starts_with("routes::"),
                "{from} imports {to}: what pages share belongs below them\n\n{}",
                shown(&graph)
            );
        }
    }
}

#[test]
fn the_error_type_knows_nothing_of_the_middleware_or_the_session() {
    let graph = graph();
    let error = &graph.edges["error"];
    assert!(
        !error.contains("middleware") && !error.contains("session"),
        "error imports {error:?}"
    );
}

#[test]
fn templates_call_nothing_in_the_crate_but_the_templates_module() {
    let graph = graph();
    for (template, path) in &graph.templates {
        assert!(
            path.starts_with("templates::"),
            "{template} calls crate::{path}"
        );
    }
}

/// The check itself: it must see the imports that are there, or it proves nothing.
#[test]
fn the_check_sees_imports_in_every_form() {
    assert_eq!(
        use_tree("{a::b, c::{self, d}, e};"),
        [vec!["a", "b"], vec!["c", "self"], vec!["c", "d"], vec!["e"]]
    );
    let module = vec!["routes".to_owned(), "signin".to_owned()];
    let text = "use super::x;\nlet a = crate::tokens::end(1);\n// crate::commented::out\n";
    assert_eq!(
        named_paths(&module, &[], &code(text)),
        [vec!["tokens", "end"], vec!["routes", "x"]]
    );
    let graph = graph();
    assert!(graph.edges.len() > 15, "{}", shown(&graph));
    assert!(graph.edges["routes::signin"].contains("session"));
    assert!(graph.edges["session"].contains("error"));
    assert!(
        graph.edges["crate"].contains("middleware"),
        "lib.rs names it bare"
    );
    let modules: BTreeSet<String> = graph.edges.keys().cloned().collect();
    assert_eq!(
        unit(&["serve".to_owned()], &modules, &BTreeSet::new()),
        "crate",
        "crate::serve is the root's"
    );
    assert!(graph.edges["routes"].contains("routes::signin"));
    assert!(!graph.templates.is_empty(), "the layout calls templates::");
}
