//! The checked-in completions and man pages match the clap definitions.
//! When this fails, run `cargo run -- generate` and commit the result.

use std::collections::BTreeMap;
use std::path::Path;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.unwrap();
        out.insert(
            entry.file_name().to_string_lossy().into_owned(),
            std::fs::read(entry.path()).unwrap(),
        );
    }
    out
}

#[test]
fn report_schemas_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (stem, schema) in smmctl::schemas::generated() {
        let path = root.join("schemas").join(format!("{stem}.schema.json"));
        let expected = smmctl::schemas::file_text(&schema).unwrap();
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "{} is stale: run `cargo run -- generate` and commit the result",
            path.display()
        );
    }
}

#[test]
fn completions_and_man_pages_are_fresh() {
    let fresh = tempfile::tempdir().unwrap();
    let written = smmctl::commands::generate::write_all(fresh.path()).unwrap();
    assert!(written > 10, "only {written} files generated");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["completions", "man"] {
        let expected = files(&fresh.path().join(dir));
        let actual = files(&root.join(dir));
        let expected_names: Vec<_> = expected.keys().collect();
        let actual_names: Vec<_> = actual.keys().collect();
        assert_eq!(
            actual_names, expected_names,
            "{dir}/ is stale: run `cargo run -- generate`"
        );
        for (name, bytes) in &expected {
            assert!(
                actual.get(name) == Some(bytes),
                "{dir}/{name} is stale: run `cargo run -- generate` and commit the result"
            );
        }
    }
    let man = files(&root.join("man"));
    for page in [
        "smmctl.1",
        "smmctl-topics.1",
        "smmctl-topics-apply.1",
        "smmctl-lag.1",
    ] {
        assert!(man.contains_key(page), "man/{page} missing");
    }
}
