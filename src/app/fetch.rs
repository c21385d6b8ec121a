//! `corecatch fetch SOURCE DEST`: a build's artifacts back onto this machine, through the
//! engine in `remote::fetch`; then the debug bundles' files kept in a build-id store, into the
//! cache (`super::open`), so `bt` and `debug` need no network afterwards (an encrypted bundle
//! only with `--identity`).

use crate::artifacts::encrypt::Identities;
use crate::config::FetchConfig;
use crate::error::{chain, warn};
use crate::exit_code;
use crate::remote::fetch::{fetch_all, open_remote, Remote};

/// `corecatch fetch`: exit 0 when every file is in DEST complete and verified, 1 otherwise.
pub(super) fn fetch(cfg: FetchConfig) -> i32 {
    // A bad identity file fails before anything is downloaded.
    let identities = match cfg.identity.as_deref().map(Identities::from_file) {
        None => None,
        Some(Ok(ids)) => Some(ids),
        Some(Err(e)) => {
            warn(chain(&e));
            return exit_code::INCOMPLETE;
        }
    };
    let remote: Box<dyn Remote> = match open_remote(&cfg.source, &cfg.connection, &cfg.circleci_url)
    {
        Ok(r) => r,
        Err(e) => {
            warn(chain(&e));
            return exit_code::INCOMPLETE;
        }
    };
    let summary = fetch_all(remote.as_ref(), &cfg.dest, cfg.jobs, cfg.verbose);
    for e in &summary.errors {
        warn(e);
    }
    warn(format!(
        "fetched {} files ({} bytes) into {}, {} already complete{}",
        summary.fetched,
        summary.bytes,
        cfg.dest.display(),
        summary.skipped,
        match summary.errors.len() {
            0 => String::new(),
            n => format!(", {n} failed"),
        }
    ));
    if summary.errors.is_empty() {
        // Bundles that keep files in a build-id store: those files too, into the cache.
        for n in super::open::prefetch_bundles(&cfg.dest, &cfg.connection, identities.as_ref()) {
            warn(n);
        }
        exit_code::OK
    } else {
        exit_code::INCOMPLETE
    }
}
