//! The process's initial stack as execve(2) laid it out: `argc, argv[], NULL, envp[], NULL,
//! auxv[]`, with the strings above them. Read from the core's memory, it gives the full command
//! line (NT_PRPSINFO's `pr_psargs` is cut at 80 bytes) and the environment the process started
//! with, and where each of those strings lies (what `--scrub-env` and `--scrub-args` overwrite).
//!
//! The auxv array on the stack is found by searching the stack mapping for the first two pairs of
//! NT_AUXV (the kernel copies the same vector to both places); the arrays before it are walked
//! backwards, a word of the core's class at a time (4 bytes in an ELF32 core, 8 in an ELF64 one).
//!
//! The kernel copies the strings to the top of the stack in one run: argv's, then envp's, then
//! the path given to execve (AT_EXECFN's string), each NUL-terminated. The pointer arrays can
//! change after exec (glibc's `unsetenv` shifts envp's entries down in place, `setenv` may point
//! one at the heap), the run of strings stays where it was: [`StartInfo::env_block`] is that run.

use super::Core;

/// argv and envp of the process as it was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartInfo {
    pub argv: Vec<String>,
    pub envp: Vec<String>,
    /// Where each of `argv`'s strings lies.
    pub argv_at: Vec<StrAt>,
    /// Where each of `envp`'s strings lies.
    pub envp_at: Vec<StrAt>,
    /// The kernel's run of environment strings: from the end of argv's strings to AT_EXECFN's
    /// string (`start..end`, addresses). `None` when argv's strings are not one run on the stack
    /// below AT_EXECFN's (the process rewrote its argv pointers), or the run is not in the core.
    pub env_block: Option<std::ops::Range<u64>>,
}

/// Where a string of the initial stack lies in the process's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrAt {
    pub addr: u64,
    /// Its bytes before the NUL; `None` when they (or the NUL) are not in the core.
    pub len: Option<usize>,
}

/// Longest argument or environment string we read (the kernel's MAX_ARG_STRLEN).
const MAX_STR: usize = 128 * 1024;
/// Most pointers we walk in argv or envp before deciding the layout is not what we expected.
const MAX_PTRS: usize = 1 << 16;

impl Core<'_> {
    /// argv and envp from the initial stack; `None` when the core does not hold it or the layout
    /// is not recognised.
    pub fn start_info(&self) -> Option<StartInfo> {
        if self.auxv.0.len() < 2 {
            return None;
        }
        let w: u64 = if self.is_64 { 8 } else { 4 };
        let stack = self.stack_segment()?;
        let bytes = self.memory.slice_at(stack.vaddr, usize::MAX)?;
        let needle = self.encode_words(&[
            self.auxv.0[0].0,
            self.auxv.0[0].1,
            self.auxv.0[1].0,
            self.auxv.0[1].1,
        ]);
        // auxv lies near the top of the stack, below only the strings: searched from there
        // (an 8 MiB stack is otherwise a million comparisons).
        let at = (0..bytes.len().saturating_sub(needle.len()))
            .step_by(w as usize)
            .rev()
            .find(|&i| bytes[i..].starts_with(&needle))?;
        let auxv_addr = stack.vaddr + at as u64;
        // Just below auxv: envp's NULL terminator.
        let mut p = auxv_addr.checked_sub(w)?;
        if self.read_word(p)? != 0 {
            return None;
        }
        // More NULLs below it: one per variable glibc's unsetenv removed (it shifts the entries
        // down and copies the terminator along), or argv's terminator when envp is empty.
        let mut nulls = 0;
        while self.read_word(p.checked_sub(w)?)? == 0 {
            p -= w;
            nulls += 1;
            if nulls > MAX_PTRS {
                return None;
            }
        }
        // argc, below argv[0]: the count of argv's pointers (a pointer to the stack is never
        // that small), or, where the program's entry code pushed onto it, the address of
        // argv[0]'s slot (glibc's `_start` on 32-bit ARM: `pop {a2}; mov a3, sp; push {a3}`).
        let is_argc = |at: u64, v: u64, count: usize| v == count as u64 || v == at + w;
        // Below the NULLs: envp's pointers down to argv's NULL, or (envp empty) argv's
        // pointers down to argc.
        let mut env_ptrs = Vec::new();
        let mut argv_found = None;
        loop {
            p = p.checked_sub(w)?;
            match self.read_word(p)? {
                0 => break, // argv's NULL terminator
                v if is_argc(p, v, env_ptrs.len()) => {
                    argv_found = Some(std::mem::take(&mut env_ptrs));
                    break;
                }
                ptr => env_ptrs.push(ptr),
            }
            if env_ptrs.len() > MAX_PTRS {
                return None;
            }
        }
        let mut arg_ptrs = match argv_found {
            Some(a) => a,
            None => {
                let mut arg_ptrs = Vec::new();
                loop {
                    p = p.checked_sub(w)?;
                    let v = self.read_word(p)?;
                    if is_argc(p, v, arg_ptrs.len()) {
                        break;
                    }
                    // No argv entry is NULL: a walk that meets one is past argc, in the
                    // program's own stack.
                    if v == 0 || arg_ptrs.len() > MAX_PTRS {
                        return None;
                    }
                    arg_ptrs.push(v);
                }
                arg_ptrs
            }
        };
        arg_ptrs.reverse();
        env_ptrs.reverse();
        let locate = |ptrs: &[u64]| -> Vec<StrAt> {
            ptrs.iter()
                .map(|&addr| StrAt {
                    addr,
                    len: self.cstr_len(addr),
                })
                .collect()
        };
        let read = |at: &[StrAt]| -> Vec<String> {
            at.iter()
                .map(|s| {
                    s.len
                        .and_then(|_| self.memory.read_cstr(s.addr, MAX_STR))
                        .unwrap_or_default()
                })
                .collect()
        };
        let argv_at = locate(&arg_ptrs);
        let envp_at = locate(&env_ptrs);
        let env_block = self.env_block(&argv_at, &stack);
        Some(StartInfo {
            argv: read(&argv_at),
            envp: read(&envp_at),
            argv_at,
            envp_at,
            env_block,
        })
    }

    /// The run of environment strings: it starts where argv's strings (one run from argv[0])
    /// end and ends at AT_EXECFN's string, all of it in the core.
    fn env_block(&self, argv: &[StrAt], stack: &super::Segment) -> Option<std::ops::Range<u64>> {
        let execfn = self.auxv.get(super::notes::AT_EXECFN)?;
        let mut end_of_args = argv.first()?.addr;
        for s in argv {
            if s.addr != end_of_args {
                return None;
            }
            end_of_args = end_of_args.checked_add(s.len? as u64 + 1)?;
        }
        let in_stack = |a: u64| stack.vaddr <= a && a <= stack.end();
        if !(in_stack(argv[0].addr) && end_of_args <= execfn && in_stack(execfn)) {
            return None;
        }
        let len = usize::try_from(execfn - end_of_args).ok()?;
        let held = self
            .memory
            .slice_at(end_of_args, len)
            .map_or(0, <[u8]>::len);
        (held == len || len == 0).then_some(end_of_args..execfn)
    }

    /// Bytes of the NUL-terminated string at `addr` before its NUL, at most [`MAX_STR`]; `None`
    /// when a byte before the NUL is not in the core.
    fn cstr_len(&self, addr: u64) -> Option<usize> {
        let mut n = 0;
        while n < MAX_STR {
            let chunk = self
                .memory
                .slice_at(addr.checked_add(n as u64)?, MAX_STR - n)?;
            if let Some(nul) = chunk.iter().position(|&c| c == 0) {
                return Some(n + nul);
            }
            n += chunk.len();
        }
        None
    }

    /// Whether the environment the process started with holds `entry` (`NAME=value`). Falls
    /// back to a plain search of the stack mapping when the arrays cannot be walked.
    pub fn started_with_env(&self, entry: &str) -> bool {
        if let Some(info) = self.start_info() {
            return info.envp.iter().any(|e| e == entry);
        }
        let Some(stack) = self.stack_segment() else {
            return false;
        };
        let Some(bytes) = self.memory.slice_at(stack.vaddr, usize::MAX) else {
            return false;
        };
        let needle = entry.as_bytes();
        bytes
            .windows(needle.len() + 1)
            .any(|w| w[..needle.len()] == *needle && w[needle.len()] == 0)
    }

    /// The mapping that holds the initial stack: the one containing AT_EXECFN's string.
    pub(crate) fn stack_segment(&self) -> Option<super::Segment> {
        let execfn = self.auxv.get(super::notes::AT_EXECFN)?;
        self.memory.segment_at(execfn).copied()
    }

    /// Words of the core's class and byte order, as they lie in its memory.
    fn encode_words(&self, words: &[u64]) -> Vec<u8> {
        words
            .iter()
            .flat_map(|&w| match (self.is_64, self.endian) {
                (true, super::Endian::Little) => w.to_le_bytes().to_vec(),
                (true, super::Endian::Big) => w.to_be_bytes().to_vec(),
                (false, super::Endian::Little) => (w as u32).to_le_bytes().to_vec(),
                (false, super::Endian::Big) => (w as u32).to_be_bytes().to_vec(),
            })
            .collect()
    }
}
