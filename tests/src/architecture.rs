//! The shape of the code, checked: which top-level modules of a crate name which others
//! (`crate::x` paths), and the import cycles among them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its code names through `crate::` paths. Test code
/// (files of modules declared under `#[cfg(test)]`, and everything from a file's
/// `#[cfg(test)]` on) and comments are left out; the crate root (`lib.rs`, `main.rs`) is not a
/// module here.
pub fn module_graph(src: &Path) -> std::io::Result<BTreeMap<String, BTreeSet<String>>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    collect_rs(src, &mut files)?;
    let mut test_only = BTreeSet::new();
    for file in &files {
        test_only.extend(test_module_files(file, &std::fs::read_to_string(file)?));
    }
    for file in files {
        if test_only
            .iter()
            .any(|t: &std::path::PathBuf| file.starts_with(t))
        {
            continue;
        }
        let rel = file.strip_prefix(src).unwrap_or(&file);
        let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
        let Some(first) = parts.next() else { continue };
        let module = first.trim_end_matches(".rs").to_string();
        if matches!(module.as_str(), "lib" | "main" | "bin")
            || rel.file_name().is_some_and(|n| n == "tests.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&file)?;
        let code = &text[..inline_test_code_start(&text)];
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let names = graph.entry(module.clone()).or_default();
        for named in crate_paths(&code) {
            if named != module {
                names.insert(named);
            }
        }
    }
    Ok(graph)
}

/// Where a file's inline test code starts: the first `#[cfg(test)]` not on a one-line module
/// declaration (`#[cfg(test)] mod tests;` leaves the code after it in).
fn inline_test_code_start(text: &str) -> usize {
    text.match_indices("#[cfg(test)]")
        .map(|(at, _)| at)
        .find(|&at| {
            let next = text[at + "#[cfg(test)]".len()..].trim_start();
            let line = next.lines().next().unwrap_or_default().trim_end();
            !(line.contains("mod ") && line.ends_with(';'))
        })
        .unwrap_or(text.len())
}

/// The files (`name.rs`) and folders (`name/`) of the modules `file` declares under
/// `#[cfg(test)]` (`#[cfg(test)] mod tests;`, `#[cfg(test)] pub(crate) mod build_tests;`).
fn test_module_files(file: &Path, text: &str) -> Vec<std::path::PathBuf> {
    let Some(parent) = file.parent() else {
        return Vec::new();
    };
    // Child modules of `a/mod.rs` or `lib.rs` sit beside it; those of `a.rs` in `a/`.
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let dir = if matches!(stem, "mod" | "lib" | "main") {
        parent.to_path_buf()
    } else {
        parent.join(stem)
    };
    let mut out = Vec::new();
    for (at, _) in text.match_indices("#[cfg(test)]") {
        let next = text[at + "#[cfg(test)]".len()..].trim_start();
        let decl = next.lines().next().unwrap_or_default().trim();
        let decl = decl
            .strip_prefix("pub(crate) ")
            .or_else(|| decl.strip_prefix("pub(super) "))
            .or_else(|| decl.strip_prefix("pub "))
            .unwrap_or(decl);
        if let Some(name) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            out.push(dir.join(format!("{}.rs", name.trim())));
            out.push(dir.join(name.trim()));
        }
    }
    out
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The first segment after each `crate::` in `code`, groups (`crate::{a, b::c}`) included.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            for item in inner.split(',') {
                let name = ident(item.trim());
                if name.starts_with(|c: char| c.is_ascii_lowercase()) && name != "self" {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            // `crate::Type` names the root's re-exports, not a module.
            if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                out.insert(name);
            }
        }
    }
    out
}

/// The cycles of `graph`: each strongly connected group of two or more modules, sorted.
pub fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Two modules share a cycle when each reaches the other.
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut groups: BTreeSet<Vec<String>> = BTreeSet::new();
    for (m, from_m) in &reached {
        let mut group: Vec<String> = from_m
            .iter()
            .filter(|o| reached.get(o).is_some_and(|r| r.contains(*m)))
            .cloned()
            .collect();
        if !group.is_empty() {
            if !group.contains(m) {
                group.push((*m).clone());
            }
            group.sort();
            group.dedup();
            if group.len() > 1 {
                groups.insert(group);
            }
        }
    }
    groups.into_iter().collect()
}
