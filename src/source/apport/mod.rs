//! apport (Ubuntu) as a source of cores: its reports live in [`REPORT_DIR`], and the core inside
//! a report's `CoreDump` field (the pure parsing is [`format`]) is streamed out into a temporary
//! core file in the artifacts directory. The report itself is never changed.

pub mod format;

use crate::artifacts::publish;
use crate::error::chain;
use crate::source::{self, Found};
use std::path::Path;

/// Where apport writes its reports.
pub const REPORT_DIR: &str = "/var/crash";

/// Whether a file's name is an apport report's.
pub fn is_report_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "crash")
}

/// Takes the core out of `report` into a temporary file in `out` (the caller removes it when
/// done; on error nothing is left).
pub fn extract_core(report: &Path, out: &Path) -> Result<Found, String> {
    let mapped = source::core_file::MappedCore::open(report).map_err(|e| chain(&e))?;
    let bytes = mapped.bytes();
    if !format::report_fields(bytes).has_core {
        return Err("no CoreDump field (apport keeps cores only for some crashes)".into());
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let name = report
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dest = publish::path_in(out, &format!("apport-{name}.core"));
    let result = std::fs::File::create(&dest)
        .map_err(|e| format!("cannot create {}: {e}", dest.display()))
        .and_then(|f| {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            let n = format::extract_core(bytes, &mut w).map_err(|e| chain(&e))?;
            std::io::Write::flush(&mut w)
                .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
            Ok(n)
        })
        .and_then(|_| source::check_file(&dest).map_err(|e| format!("CoreDump: {e}")));
    if result.is_err() {
        let _ = std::fs::remove_file(&dest);
    }
    result
}
