//! The artifacts directory and what goes into it: [`pack`] compresses a core (streaming,
//! hole-aware gzip, verified before it is published), [`local`] owns the directory (names,
//! unique stems, atomic writes), [`manifest`] lists every artifact with its size and sha256,
//! merged across the runs that share the directory. Also here: [`safe_stem`], the one place
//! artifact names are made from untrusted process names.

pub mod bundle;
pub mod encrypt;
pub mod local;
pub mod manifest;
pub mod pack;
pub mod publish;

pub use local::{Artifact, DirError, LocalDir};

/// The names of the files in `dir`, sorted (the artifacts modules' tests check what they leave).
#[cfg(test)]
pub(crate) fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Longest stem [`safe_stem`] returns, in bytes. [`LocalDir::unique_stem`] may add a `-N` suffix
/// and callers add a kind such as `.core.gz`; all of that stays far below the 255-byte file name
/// and 1024-byte S3 key limits.
pub const MAX_STEM: usize = 100;

/// Longest part of the stem taken from the executable's name.
const MAX_EXE_PART: usize = 64;

/// An artifact stem `core.<pid>.<exe>` safe as a file name and as an S3 object key, whatever the
/// kernel's `%E` (path with `/` turned into `!`) or `comm` contained.
///
/// `<exe>` is the last component of `exe` (split at `/` and `!`), with every character outside
/// `[A-Za-z0-9._-]` replaced by `_` (runs collapsed), leading and trailing `.`/`_` removed and
/// cut to 64 bytes; `unknown` when nothing is left. The result is ASCII, at most [`MAX_STEM`]
/// bytes, never starts with a dot and is never `.` or `..`.
pub fn safe_stem(pid: i32, exe: &str) -> String {
    let base = exe
        .trim_end_matches(['/', '!'])
        .rsplit(['/', '!'])
        .next()
        .unwrap_or("");
    let mut name = String::with_capacity(base.len().min(MAX_EXE_PART));
    for c in base.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
            c
        } else {
            '_'
        };
        if !(c == '_' && name.ends_with('_')) {
            name.push(c);
        }
    }
    let mut name = name.trim_matches(['.', '_']);
    if name.len() > MAX_EXE_PART {
        // ASCII only by now, so any byte index is a char boundary.
        name = name[..MAX_EXE_PART].trim_end_matches(['.', '_']);
    }
    if name.is_empty() {
        name = "unknown";
    }
    let stem = format!("core.{pid}.{name}");
    debug_assert!(stem.len() <= MAX_STEM);
    stem
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_safe(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_STEM
            && !s.starts_with('.')
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    }

    #[test]
    fn plain_names() {
        assert_eq!(
            safe_stem(1234, "/usr/bin/python3.12"),
            "core.1234.python3.12"
        );
        assert_eq!(safe_stem(7, "my-app_v2"), "core.7.my-app_v2");
        // %E: the path with '/' replaced by '!'.
        assert_eq!(safe_stem(42, "!usr!local!bin!server"), "core.42.server");
    }

    #[test]
    fn nasty_names() {
        let long = "x".repeat(5000);
        let cases: &[(&str, &str)] = &[
            ("", "core.1.unknown"),
            (".", "core.1.unknown"),
            ("..", "core.1.unknown"),
            ("../../etc/passwd", "core.1.passwd"),
            ("/", "core.1.unknown"),
            ("!!!", "core.1.unknown"),
            ("dir/", "core.1.dir"),
            ("my prog\nname", "core.1.my_prog_name"),
            ("a b\tc\0d", "core.1.a_b_c_d"),
            ("ünïcødé", "core.1.n_c_d"),
            ("日本語", "core.1.unknown"),
            (".hidden", "core.1.hidden"),
            ("...x...", "core.1.x"),
            ("a$(rm -rf)`b`", "core.1.a_rm_-rf_b"),
            ("key?x=1&y#z%20", "core.1.key_x_1_y_z_20"),
        ];
        for (exe, want) in cases {
            let got = safe_stem(1, exe);
            assert_eq!(&got, want, "for {exe:?}");
            assert!(is_safe(&got), "{got:?}");
        }
        let got = safe_stem(i32::MIN, &long);
        assert!(is_safe(&got), "{got:?}");
        assert_eq!(got, format!("core.-2147483648.{}", "x".repeat(64)));
        let got = safe_stem(i32::MAX, &"é.".repeat(1000));
        assert!(is_safe(&got), "{got:?}");
    }
}
