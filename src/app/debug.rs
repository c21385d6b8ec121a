//! `corecatch debug TARGET [DEBUGGER ARGS...]`: gdb on a stored crash, with everything it
//! needs in place. TARGET is opened as `bt` opens it ([`super::open`]); for the chosen core a
//! sysroot of links is made in the cache (`sysroots/<core>-<pid>/<path the core names>`,
//! removed when gdb exits; `sysroots/<core>/` kept for `--print-command`), each to the
//! bundle's file of the core's build-id, else to this machine's file when its build-id matches,
//! and gdb is started on the executable and the core with that sysroot, the bundles' debug
//! directories before this machine's, and the crashed thread selected. What neither the bundle
//! nor this machine has is named before gdb starts.

use crate::config::DebugConfig;
use crate::error::warn;
use crate::exit_code;
use crate::source::core_file::MappedCore;
use std::path::{Path, PathBuf};

pub(super) fn debug(cfg: DebugConfig) -> i32 {
    let Some(opened) = super::open::open_and_say(&cfg.target, cfg.identity.as_deref()) else {
        return exit_code::INCOMPLETE;
    };
    let (core, shown) = match opened.cores.as_slice() {
        [one] => one,
        many => {
            let names: Vec<String> = many.iter().map(|(_, s)| s.display().to_string()).collect();
            warn(format!(
                "{} holds {} cores; name one: corecatch debug {}",
                cfg.target.display(),
                many.len(),
                names.join(" | ")
            ));
            return exit_code::USAGE;
        }
    };
    let mapped = match MappedCore::open(core) {
        Ok(m) => m,
        Err(e) => {
            warn(crate::error::chain(&e));
            return exit_code::INCOMPLETE;
        }
    };
    let parsed = match crate::elf_core::parse(mapped.bytes()) {
        Ok(c) => c,
        Err(e) => {
            warn(format!("{}: {e}", shown.display()));
            return exit_code::INCOMPLETE;
        }
    };
    // One tree per core for --print-command (the printed line must stay usable), else one per
    // gdb session, removed when gdb exits: two sessions on one core never share a tree.
    let mut key = crate::artifacts::pack::sha256_hex(core.display().to_string().as_bytes());
    if !cfg.print_command {
        key = format!("{key}-{}", std::process::id());
    }
    let sysroot = super::open::cache_root().join("sysroots").join(key);
    let (exe, dirs, missing) = match link_sysroot(&parsed, &opened, &sysroot) {
        Ok(v) => v,
        Err(e) => {
            warn(format!(
                "cannot make the sysroot {}: {e}",
                sysroot.display()
            ));
            return exit_code::INCOMPLETE;
        }
    };
    for m in &missing {
        warn(m);
    }
    let crashed = parsed
        .crashed_thread()
        .and_then(|c| parsed.threads.iter().position(|t| t.tid == c.tid));
    let mut debug_dirs: Vec<String> = opened
        .bundle_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    debug_dirs.push("/usr/lib/debug".into());
    // gdb reads the host's architecture; another one's core needs gdb-multiarch.
    let native = matches!(
        (parsed.machine, std::env::consts::ARCH),
        (crate::elf_core::Machine::X86_64, "x86_64")
            | (crate::elf_core::Machine::Aarch64, "aarch64")
    );
    let debugger = cfg
        .debugger
        .clone()
        .unwrap_or_else(|| if native { "gdb" } else { "gdb-multiarch" }.to_string());
    let mut argv: Vec<String> = vec![
        debugger,
        "-q".into(),
        "-iex".into(),
        format!("set sysroot {}", sysroot.display()),
        "-iex".into(),
        format!("set debug-file-directory {}", debug_dirs.join(":")),
    ];
    // With DEBUGINFOD_URLS set, gdb asks the same servers (through elfutils' client and cache)
    // for what neither the bundle nor this machine has; in batch mode it would not ask at all.
    if std::env::var("DEBUGINFOD_URLS").is_ok_and(|u| !u.trim().is_empty()) {
        argv.push("-iex".into());
        argv.push("set debuginfod enabled on".into());
    }
    // The dynamic linker's list may name a library by another path than the core's file
    // table (/lib/... for /usr/lib/... on a merged /usr): gdb then finds it by file name in
    // the sysroot's directories.
    if !dirs.is_empty() {
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        argv.push("-iex".into());
        argv.push(format!("set solib-search-path {}", dirs.join(":")));
    }
    // A core without NT_FILE (QEMU's, old kernels') names its executable only by AT_EXECFN
    // (as it was run, maybe relative): that file, when it is here.
    let exe = exe.or_else(|| {
        parsed
            .executable()
            .map(PathBuf::from)
            .filter(|p| p.is_file())
    });
    match &exe {
        Some(e) => argv.push(e.display().to_string()),
        None => warn("the core names no executable that is in the bundle or on this machine"),
    }
    argv.push(core.display().to_string());
    // gdb numbers a core's threads in the order of its NT_PRSTATUS notes and starts on the
    // first; the crashed one is not always first (QEMU's and gcore's cores).
    if let Some(i) = crashed.filter(|&i| i > 0) {
        argv.push("-ex".into());
        argv.push(format!("thread {}", i + 1));
    }
    argv.extend(cfg.args.iter().cloned());
    drop(parsed);
    drop(mapped);
    if cfg.print_command {
        println!("{}", crate::report::text::shell_words(&argv));
        return exit_code::OK;
    }
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .status();
    let _ = std::fs::remove_dir_all(&sysroot);
    match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            exit_code::from_wait(s.code(), s.signal())
        }
        Err(e) => {
            warn(format!("cannot start {}: {e}", argv[0]));
            exit_code::INCOMPLETE
        }
    }
}

/// Fill `root` (made anew) with a link per file the core maps, at the path the core names: to
/// the bundle's file of the same build-id, else to this machine's file when its build-id
/// matches (or the core recorded none). The executable's link, the directories links were made
/// in, and a line per file that is neither in a bundle nor on this machine.
fn link_sysroot(
    core: &crate::elf_core::Core<'_>,
    opened: &super::open::Opened,
    root: &Path,
) -> std::io::Result<(Option<PathBuf>, Vec<PathBuf>, Vec<String>)> {
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    std::fs::create_dir_all(root)?;
    let (modules, _) = crate::modules::modules_from_core(core);
    let exe_path = core.executable();
    let mut exe = None;
    let mut missing = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for m in modules
        .iter()
        .filter(|m| m.kind == crate::modules::ModuleKind::File)
    {
        let Some(rel) = m
            .path
            .strip_prefix('/')
            .filter(|r| r.split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
        else {
            continue;
        };
        let id = m.build_id.as_deref().map(crate::modules::hex);
        let from_bundle = opened
            .bundles
            .iter()
            .find_map(|b| b.object(&m.path, id.as_deref()));
        let target = match from_bundle {
            Some(t) => Some(t),
            None => {
                let host = PathBuf::from(&m.path);
                match crate::symbolize::loader::load(&host) {
                    Ok(o)
                        if id.is_none() || o.info.build_id.as_deref() == m.build_id.as_deref() =>
                    {
                        Some(host)
                    }
                    Ok(o) => {
                        missing.push(format!(
                            "{}: not in the bundle, and this machine's has build-id {} (the \
                             core's: {})",
                            m.path,
                            o.info
                                .build_id
                                .as_deref()
                                .map(crate::modules::hex)
                                .unwrap_or_else(|| "none".into()),
                            id.as_deref().unwrap_or("none")
                        ));
                        None
                    }
                    Err(_) if m.build_id.is_none() => None, // not an ELF object (a data file)
                    Err(_) => {
                        missing.push(format!(
                            "{}{}: neither in the bundle nor on this machine",
                            m.path,
                            id.map(|i| format!(" (build-id {i})")).unwrap_or_default()
                        ));
                        None
                    }
                }
            }
        };
        let Some(target) = target else { continue };
        let link = root.join(rel);
        if let Some(d) = link.parent() {
            std::fs::create_dir_all(d)?;
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
        }
        match std::os::unix::fs::symlink(&target, &link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if exe_path.as_deref() == Some(m.path.as_str()) {
            exe = Some(link);
        }
    }
    Ok((exe, dirs, missing))
}
