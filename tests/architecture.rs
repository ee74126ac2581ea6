//! Architecture invariants (see ARCHITECTURE.md), checked against the source tree.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn mentions(text: &str, krate: &str) -> bool {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//"))
        .any(|l| {
            l.contains(&format!("{krate}::"))
                || l.contains(&format!("use {krate}"))
                || l.contains(&format!("extern crate {krate}"))
        })
}

/// Architecture invariant: `src/domain/` is pure: no async runtime, database, HTTP or chat crates.
#[test]
fn domain_imports_no_io_crates() {
    let domain = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let files = rust_files(&domain);
    assert!(
        files.len() >= 5,
        "expected the domain modules under {}",
        domain.display()
    );
    let forbidden = [
        "tokio",
        "sqlx",
        "axum",
        "serenity",
        "octocrab",
        "reqwest",
        "hyper",
        "crate::store",
        "crate::workflow",
    ];
    let mut offences = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("readable source");
        for krate in forbidden {
            if mentions(&text, krate) {
                offences.push(format!("{} uses {krate}", file.display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "domain must stay pure:\n{}",
        offences.join("\n")
    );
}

/// Architecture invariant: source files stay small enough to read in one sitting.
#[test]
fn source_files_stay_readable_in_one_sitting() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let too_long: Vec<String> = rust_files(&src)
        .into_iter()
        .filter_map(|f| {
            let lines = fs::read_to_string(&f).ok()?.lines().count();
            (lines > 700).then(|| format!("{} has {lines} lines", f.display()))
        })
        .collect();
    assert!(
        too_long.is_empty(),
        "split these files:\n{}",
        too_long.join("\n")
    );
}

/// The checker itself must notice an offence.
#[test]
fn the_purity_check_detects_an_import() {
    assert!(mentions("use tokio::sync::Mutex;", "tokio"));
    assert!(mentions("let x = sqlx::query(\"\");", "sqlx"));
    assert!(!mentions("// tokio:: is not allowed here", "tokio"));
}
