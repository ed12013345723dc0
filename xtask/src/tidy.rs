//! Repository invariants, checked as `#[test]`s so `cargo test` (and therefore
//! `cargo xtask test`) enforces them (rust-analyzer's `tidy.rs` idea).

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use crate::util::project_root;

    const CRATES: &[&str] = &[
        "grpo-core",
        "grpo-kernels",
        "grpo-model",
        "grpo-rollout",
        "grpo-rewards",
        "grpo-envs",
        "grpo-train",
        "grpo-cli",
        "xtask",
    ];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    rust_files(&p, out);
                }
            } else if name.ends_with(".rs") {
                out.push(p);
            }
        }
    }

    fn all_rust_files() -> Vec<PathBuf> {
        let mut v = Vec::new();
        for c in CRATES {
            rust_files(&project_root().join(c), &mut v);
        }
        v
    }

    #[test]
    fn every_rust_file_starts_with_a_module_doc() {
        let mut bad = Vec::new();
        for f in all_rust_files() {
            let text = fs::read_to_string(&f).unwrap();
            if !text.trim_start().starts_with("//!") {
                bad.push(f.display().to_string());
            }
        }
        assert!(
            bad.is_empty(),
            "files without a leading `//!` doc:\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn no_ignored_tests() {
        let mut bad = Vec::new();
        for f in all_rust_files() {
            if f.ends_with("tidy.rs") {
                continue;
            }
            let text = fs::read_to_string(&f).unwrap();
            if text.contains("#[ignore") {
                bad.push(f.display().to_string());
            }
        }
        assert!(
            bad.is_empty(),
            "`#[ignore]` found (skip loudly instead):\n{}",
            bad.join("\n")
        );
    }

    /// Internal dependencies each crate must NOT have (ARCHITECTURE.md, "API boundaries").
    #[test]
    fn crate_dependency_boundaries() {
        let forbidden: &[(&str, &[&str])] = &[
            (
                "grpo-core",
                &[
                    "grpo-kernels",
                    "grpo-model",
                    "grpo-rollout",
                    "grpo-rewards",
                    "grpo-envs",
                    "grpo-train",
                ],
            ),
            (
                "grpo-kernels",
                &["grpo-model", "grpo-rollout", "grpo-train", "grpo-core"],
            ),
            (
                "grpo-model",
                &[
                    "grpo-rollout",
                    "grpo-train",
                    "grpo-rewards",
                    "grpo-envs",
                    "grpo-core",
                ],
            ),
            ("grpo-rollout", &["grpo-train", "grpo-rewards", "grpo-envs"]),
            (
                "grpo-rewards",
                &[
                    "grpo-kernels",
                    "grpo-model",
                    "grpo-rollout",
                    "grpo-train",
                    "grpo-envs",
                ],
            ),
            (
                "grpo-envs",
                &["grpo-kernels", "grpo-model", "grpo-rollout", "grpo-train"],
            ),
        ];
        for (krate, deny) in forbidden {
            let manifest =
                fs::read_to_string(project_root().join(krate).join("Cargo.toml")).unwrap();
            for line in manifest.lines() {
                let dep = line.split(['=', '.', ' ']).next().unwrap_or("").trim();
                assert!(
                    !deny.contains(&dep),
                    "{krate} must not depend on {dep} (see ARCHITECTURE.md)"
                );
            }
        }
    }

    #[test]
    fn cudarc_only_in_grpo_kernels() {
        for c in CRATES.iter().filter(|c| **c != "grpo-kernels") {
            let manifest = fs::read_to_string(project_root().join(c).join("Cargo.toml")).unwrap();
            assert!(
                !manifest.contains("cudarc"),
                "{c} depends on cudarc directly; chain the `cuda` feature instead"
            );
        }
    }

    #[test]
    fn readme_starts_with_the_two_commands() {
        let readme = fs::read_to_string(project_root().join("README.md")).unwrap();
        let head: String = readme.lines().take(12).collect::<Vec<_>>().join("\n");
        assert!(
            head.contains("cargo xtask train"),
            "README must start with `cargo xtask train`"
        );
        assert!(
            head.contains("cargo xtask test"),
            "README must start with `cargo xtask test`"
        );
    }

    #[test]
    fn docs_mention_every_crate() {
        for doc in ["README.md", "ARCHITECTURE.md"] {
            let text = fs::read_to_string(project_root().join(doc)).unwrap();
            for c in CRATES {
                assert!(text.contains(c), "{doc} does not mention `{c}`");
            }
        }
    }

    #[test]
    fn ci_runs_the_readme_test_command() {
        let ci = fs::read_to_string(project_root().join(".ci/run")).unwrap();
        assert!(
            ci.contains("cargo xtask test"),
            ".ci/run must call `cargo xtask test`"
        );
    }

    /// Nothing the code, tests, configs, scripts or benchmarks use may live outside the
    /// repository: a user, a packager or a fork's CI has only the clone.
    #[test]
    fn nothing_reads_outside_the_repository() {
        let root = project_root();
        let mut files = all_rust_files();
        for dir in ["configs", "scripts", "xtask/peer", "grpo-envs/tests/data"] {
            for e in fs::read_dir(root.join(dir)).unwrap().flatten() {
                let p = e.path();
                if p.extension()
                    .is_some_and(|x| x == "toml" || x == "py" || x == "sh")
                {
                    files.push(p);
                }
            }
        }
        // Spelled in two pieces so this file does not match itself.
        let needle = format!("../{}", "shared");
        let bad: Vec<String> = files
            .iter()
            .filter(|f| {
                fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .any(|l| l.contains(&needle))
            })
            .map(|f| f.display().to_string())
            .collect();
        assert!(
            bad.is_empty(),
            "files that point outside the repository ({needle}):\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn ci_runs_the_suite_in_an_isolated_copy() {
        let ci = fs::read_to_string(project_root().join(".ci/run")).unwrap();
        assert!(
            ci.contains("mktemp -d") && ci.contains("cd \"$ISOLATED/grpo-rs\""),
            ".ci/run must run the suite in a copy with nothing beside it"
        );
    }

    #[test]
    fn library_crates_deny_missing_docs() {
        for c in CRATES
            .iter()
            .filter(|c| !matches!(**c, "grpo-cli" | "xtask"))
        {
            let lib = fs::read_to_string(project_root().join(c).join("src/lib.rs")).unwrap();
            assert!(
                lib.contains("#![deny(missing_docs)]"),
                "{c}/src/lib.rs lacks #![deny(missing_docs)]"
            );
        }
    }
}
