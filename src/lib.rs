//! corecatch: wrap a command, catch the core dumps of everything it starts, print a backtrace of
//! every thread, and store the compressed cores as CI artifacts.
//!
//! # Data flow
//! ```text
//! argv -> cli -> config::Command -> app::run           (main turns the result into the exit code)
//!   app/run.rs       sys::rlimit, sys::kernel (core_pattern) -> source::capture::choose
//!                    sys::spawn | sys::ptrace (+ source::ptrace snapshots) -> CMD's status
//!   source/          this run's cores: kernel (core_pattern's files), ptrace, systemd, apport
//!   app/process.rs   per core: source::core_file -> elf_core::parse -> backtrace
//!                    (modules -> unwind -> symbolize) -> report -> artifacts (pack, reports,
//!                    page, manifest) -> remote (S3) -> CI reports (JUnit, GitHub)
//! exit with CMD's status
//! ```
//! Layers point one way: `app` -> `source`, `artifacts`, `remote`, `report` -> `backtrace` ->
//! `symbolize`, `unwind`, `modules` -> `elf_core`, `core_pattern`. `sys` is the leaf that makes
//! every syscall and /proc read; `error`, `exit_code` and `progress` are leaves used anywhere.
//! `make check-boundaries` holds these rules, and keeps the pure modules (`core_pattern`,
//! `elf_core`, `modules`, `unwind`, `report`, `source::capture` and the two `format` parsers)
//! away from `std::fs`, `std::process` and `sys`.
//!
//! # Glossary
//! - **AVMA**: an address in the crashed process (actual virtual memory address).
//! - **SVMA**: the same location as the ELF file states it (stated virtual memory address).
//! - **bias**: AVMA − SVMA for one loaded module.
//! - **CFA**: canonical frame address, the caller's stack pointer before the call.
//! - **return address** vs **lookup address**: a caller frame's pc is where execution resumes;
//!   it is symbolized at `pc − 1`, inside the call instruction.

pub mod app;
pub(crate) mod artifacts;
pub mod backtrace;
pub mod cli;
pub(crate) mod config;
pub(crate) mod core_pattern;
pub mod elf_core;
pub(crate) mod error;
pub(crate) mod escape;
pub(crate) mod exit_code;
pub(crate) mod link_map;
pub(crate) mod modules;
pub(crate) mod progress;
pub(crate) mod remote;
pub(crate) mod report;
pub(crate) mod source;
pub(crate) mod symbolize;
pub(crate) mod sys;
pub(crate) mod unwind;
