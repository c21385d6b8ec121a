//! corecatch: wrap a command, catch the core dumps of everything it starts, print a backtrace of
//! every thread, and store the compressed cores as CI artifacts.
//!
//! # Pipeline
//! ```text
//! argv -> cli -> Config -> app::run
//!   sys::rlimit          RLIMIT_CORE soft -> hard (-> infinity where permitted)
//!   sys::kernel          core_pattern, core_uses_pid -> core_pattern::CorePattern (pure parse)
//!   sys::spawn           stdio inherited, signals forwarded -> the child's wait status
//!   locate               CorePattern + run start + run token -> this run's cores on disk
//!   coredump_store       or, under a systemd-coredump pipe, its store's entries of the run,
//!                        decoded by systemd_coredump (pure) into temporary cores
//!   per core:  elf_core::parse -> report (registers, signal, process) -> text / json
//!              pack (gzip, verified) -> sink (local dir) -> manifest
//! exit with the command's status
//! ```
//! Layers point one way: `main -> cli, app -> everything`; `sys`, `locate`, `pack`, `sink` do I/O;
//! `core_pattern`, `elf_core` and `report` do none.
//!
//! # Glossary
//! - **AVMA**: an address in the crashed process (actual virtual memory address).
//! - **SVMA**: the same location as the ELF file states it (stated virtual memory address).
//! - **bias**: AVMA − SVMA for one loaded module.
//! - **CFA**: canonical frame address, the caller's stack pointer before the call.
//! - **return address** vs **lookup address**: a caller frame's pc is where execution resumes;
//!   it is symbolized at `pc − 1`, inside the call instruction.

pub mod app;
pub mod apport;
pub mod backtrace;
pub mod cli;
pub mod config;
pub mod core_file;
pub mod core_pattern;
pub mod core_writer;
pub mod coredump_store;
pub mod elf_core;
pub mod exit_code;
pub mod fetch;
pub mod locate;
pub mod manifest;
pub mod modules;
pub mod pack;
pub mod progress;
pub mod report;
pub mod sink;
pub mod symbolize;
pub mod sys;
pub mod systemd_coredump;
pub mod unwind;
