//! The layout stays a layered one: no import cycle between the top-level modules of any crate
//! (a stage imports only what lies below it), and the check itself finds a planted cycle.

use std::path::Path;

use faceswap_tests::architecture::{cycles, module_graph};

const CRATES: &[&str] = &[
    "options",
    "protocol",
    "models",
    "daemon",
    "ofx-plugin",
    "tests",
];

#[test]
fn no_crate_has_an_import_cycle_between_its_top_level_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in CRATES {
        let graph = module_graph(&root.join(krate).join("src")).unwrap();
        // The reader must see the modules of every crate with several (tests and options have one).
        assert!(
            graph.len() > 1 || matches!(*krate, "tests" | "options"),
            "{krate}: {graph:?}"
        );
        let found = cycles(&graph);
        println!("{krate}: {} modules, cycles {found:?}", graph.len());
        assert!(
            found.is_empty(),
            "{krate}: import cycles between top-level modules: {found:?}; move the shared \
             piece below both (ARCHITECTURE.md shows the layers)"
        );
    }
}

/// The daemon's foundation (the faceset on disk, geometry, image sampling and warps, the
/// checkpoint format) sits below every stage: it names none of them, so any stage can use it.
#[test]
fn the_daemons_foundation_names_no_stage() {
    const FOUNDATION: &[&str] = &["faceset", "geometry", "sampling", "warp", "checkpoint"];
    const STAGES: &[&str] = &[
        "extract", "track", "masks", "train", "tools", "merge", "import",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let graph = module_graph(&root.join("daemon").join("src")).unwrap();
    for module in FOUNDATION {
        let names = graph
            .get(*module)
            .unwrap_or_else(|| panic!("daemon has no top-level module {module}: {graph:?}"));
        let up: Vec<&String> = names
            .iter()
            .filter(|n| STAGES.contains(&n.as_str()))
            .collect();
        assert!(
            up.is_empty(),
            "foundation module {module} names the stages {up:?}"
        );
    }
    // Every stage stands on the foundation (else the list above is stale).
    for stage in STAGES {
        assert!(
            graph[*stage]
                .iter()
                .any(|n| FOUNDATION.contains(&n.as_str())),
            "{stage} names no foundation module: {:?}",
            graph[*stage]
        );
    }
}

#[test]
fn a_planted_cycle_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("stage")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod base;\npub mod stage;\npub mod top;\n",
    )
    .unwrap();
    std::fs::write(src.join("base.rs"), "pub struct Base;\n").unwrap();
    std::fs::write(
        src.join("stage/mod.rs"),
        "use crate::base::Base;\n// crate::top in a comment does not count\n",
    )
    .unwrap();
    std::fs::write(
        src.join("top.rs"),
        "use crate::{base::Base, stage};\n#[cfg(test)]\nmod tests { use crate::x; }\n",
    )
    .unwrap();
    // A test module in its own file (declared under `#[cfg(test)]`) may name anything.
    std::fs::write(
        src.join("stage/mod.rs"),
        "use crate::base::Base;\n// crate::top in a comment does not count\n#[cfg(test)]\npub(crate) mod build_tests;\n",
    )
    .unwrap();
    std::fs::write(src.join("stage/build_tests.rs"), "use crate::top;\n").unwrap();
    let graph = module_graph(src).unwrap();
    assert!(cycles(&graph).is_empty(), "{graph:?}");
    assert!(!graph["top"].contains("x"), "test code is left out");
    assert!(!graph["stage"].contains("top"), "test files are left out");
    // Plant one: the stage now names the module above it.
    std::fs::write(
        src.join("stage/run.rs"),
        // After a one-line test module declaration, the code still counts.
        "#[cfg(test)]\nmod tests;\npub fn run() { crate::top::go() }\n",
    )
    .unwrap();
    let graph = module_graph(src).unwrap();
    assert_eq!(
        cycles(&graph),
        [vec!["stage".to_string(), "top".to_string()]]
    );
}
