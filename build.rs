//! Build script: the one-line version `corecatch --version` prints, with the git commit the
//! binary was built from and the features compiled in, so a binary found in a CI image says
//! exactly what it is. Cargo gives build scripts the enabled features (`CARGO_FEATURE_*`) and the
//! target's features (`CARGO_CFG_TARGET_FEATURE`: `crt-static` for the static dist build).
//! `CORECATCH_GIT_COMMIT` overrides the commit (a build from a source tarball has no .git).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CORECATCH_GIT_COMMIT");
    let commit = env::var("CORECATCH_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());

    let mut features: Vec<String> = env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(str::to_owned))
        .filter(|f| f != "DEFAULT")
        .map(|f| f.to_ascii_lowercase().replace('_', "-"))
        .collect();
    features.sort();
    let features = if features.is_empty() {
        "none".to_string()
    } else {
        features.join(",")
    };
    let linkage = match env::var("CARGO_CFG_TARGET_FEATURE") {
        Ok(f) if f.split(',').any(|f| f == "crt-static") => "static",
        _ => "dynamic",
    };
    let target = env::var("TARGET").unwrap_or_default();
    println!(
        "cargo:rustc-env=CORECATCH_LONG_VERSION={} (commit {commit}; features {features}; {target}, {linkage})",
        env::var("CARGO_PKG_VERSION").unwrap()
    );
}

/// The commit HEAD names, and the files whose change means a new one (HEAD, the branch's ref,
/// packed-refs), or None outside a git checkout or without git.
fn git_commit() -> Option<String> {
    let out = |args: &[&str]| -> Option<String> {
        let o = Command::new("git").args(args).output().ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let git_dir = PathBuf::from(out(&["rev-parse", "--git-dir"])?);
    let common = out(&["rev-parse", "--git-common-dir"]).map(PathBuf::from);
    // Only files that exist: cargo reruns the script on every build for a missing one.
    let watch = |p: PathBuf| {
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    };
    watch(git_dir.join("HEAD"));
    if let Some(branch) = out(&["symbolic-ref", "-q", "HEAD"]) {
        let base = common.as_ref().unwrap_or(&git_dir);
        watch(base.join(&branch));
        watch(base.join("packed-refs"));
    }
    out(&["rev-parse", "--short=12", "HEAD"])
}
