//! The one integration-test binary: real processes, real crashes, real cores.
//! Each module covers one area; shared helpers live in `util`.

mod apport;
mod arm;
mod bad_input;
mod bundle;
mod capture;
mod ci_reports;
mod cross;
mod deb;
mod debuginfod;
mod dist;
mod encrypt;
mod golden;
mod hostile;
mod install;
mod pattern;
mod peer_cores;
mod run;
mod s3;
mod scrub;
mod store;
mod systemd;
mod util;
mod vars;
mod zoo;
