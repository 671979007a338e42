//! Checks the invariants of ARCHITECTURE.md that a machine can check.

use std::process::Command;

fn dependency_tree(package: &str) -> String {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs the tests, so it can run `cargo tree`");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo tree prints UTF-8")
}

fn crate_names(tree: &str) -> Vec<&str> {
    tree.lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect()
}

/// **Architecture Invariant:** a user of autoseg-planner gets no libtorch, no rayon and no NIfTI.
#[test]
fn planner_is_pure() {
    let tree = dependency_tree("autoseg-planner");
    let names = crate_names(&tree);
    for banned in [
        "tch",
        "torch-sys",
        "rayon",
        "nifti",
        "autoseg-preprocessing",
    ] {
        assert!(
            !names.contains(&banned),
            "autoseg-planner depends on {banned}:\n{tree}"
        );
    }
}

/// **Architecture Invariant:** tch appears only in network/, trainer/ and inference/.
#[test]
fn libtorch_stays_in_network_trainer_and_inference() {
    for package in [
        "autoseg-preprocessing",
        "autoseg-evaluation",
        "autoseg-fixtures",
    ] {
        let tree = dependency_tree(package);
        let names = crate_names(&tree);
        assert!(
            !names.contains(&"tch") && !names.contains(&"torch-sys"),
            "{package} depends on libtorch:\n{tree}"
        );
    }
}

/// **Architecture Invariant:** dependency arrows go down the table of design.md, never up.
#[test]
fn crates_depend_only_downwards() {
    let allowed: &[(&str, &[&str])] = &[
        ("autoseg-planner", &[]),
        ("autoseg-preprocessing", &["autoseg-planner"]),
        ("autoseg-network", &["autoseg-planner"]),
        (
            "autoseg-evaluation",
            &["autoseg-preprocessing", "autoseg-planner"],
        ),
        (
            "autoseg-fixtures",
            &["autoseg-preprocessing", "autoseg-planner"],
        ),
        (
            "autoseg-inference",
            &[
                "autoseg-network",
                "autoseg-preprocessing",
                "autoseg-evaluation",
                "autoseg-planner",
            ],
        ),
        (
            "autoseg-trainer",
            &[
                "autoseg-network",
                "autoseg-preprocessing",
                "autoseg-inference",
                "autoseg-evaluation",
                "autoseg-planner",
            ],
        ),
    ];
    for (package, deps) in allowed {
        let tree = dependency_tree(package);
        for name in crate_names(&tree).into_iter().skip(1) {
            if name.starts_with("autoseg-") {
                assert!(
                    deps.contains(&name),
                    "{package} reaches {name}, which design.md does not allow"
                );
            }
        }
    }
}
