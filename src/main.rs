//! The corecatch binary: parse arguments, call the library, exit with the status it returns.
//! Exit codes are documented in `exit_code` and the README.

fn main() {
    let command = corecatch::cli::Cli::parse_args();
    std::process::exit(corecatch::app::run(command));
}
