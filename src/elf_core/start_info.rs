//! The process's initial stack as execve(2) laid it out: `argc, argv[], NULL, envp[], NULL,
//! auxv[]`, with the strings above them. Read from the core's memory, it gives the full command
//! line (NT_PRPSINFO's `pr_psargs` is cut at 80 bytes) and the environment the process started
//! with.
//!
//! The auxv array on the stack is found by searching the stack mapping for the first two pairs of
//! NT_AUXV (the kernel copies the same vector to both places); the arrays before it are walked
//! backwards.

use super::Core;

/// argv and envp of the process as it was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartInfo {
    pub argv: Vec<String>,
    pub envp: Vec<String>,
}

/// Longest argument or environment string we read (the kernel's MAX_ARG_STRLEN).
const MAX_STR: usize = 128 * 1024;
/// Most pointers we walk in argv or envp before deciding the layout is not what we expected.
const MAX_PTRS: usize = 1 << 16;

impl Core<'_> {
    /// argv and envp from the initial stack; `None` when the core does not hold it or the layout
    /// is not recognised (64-bit cores only).
    pub fn start_info(&self) -> Option<StartInfo> {
        if !self.is_64 || self.auxv.0.len() < 2 {
            return None;
        }
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
            .step_by(8)
            .rev()
            .find(|&i| bytes[i..].starts_with(&needle))?;
        let auxv_addr = stack.vaddr + at as u64;
        // Just below auxv: envp's NULL terminator.
        let mut p = auxv_addr.checked_sub(8)?;
        if self.memory.read_u64(p)? != 0 {
            return None;
        }
        let mut env_ptrs = Vec::new();
        loop {
            p = p.checked_sub(8)?;
            match self.memory.read_u64(p)? {
                0 => break, // argv's NULL terminator
                ptr => env_ptrs.push(ptr),
            }
            if env_ptrs.len() > MAX_PTRS {
                return None;
            }
        }
        env_ptrs.reverse();
        let mut arg_ptrs = Vec::new();
        loop {
            p = p.checked_sub(8)?;
            let v = self.memory.read_u64(p)?;
            if v == arg_ptrs.len() as u64 {
                break; // argc
            }
            arg_ptrs.push(v);
            if arg_ptrs.len() > MAX_PTRS {
                return None;
            }
        }
        arg_ptrs.reverse();
        let read = |ptrs: Vec<u64>| -> Vec<String> {
            ptrs.into_iter()
                .map(|a| self.memory.read_cstr(a, MAX_STR).unwrap_or_default())
                .collect()
        };
        Some(StartInfo {
            argv: read(arg_ptrs),
            envp: read(env_ptrs),
        })
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
    fn stack_segment(&self) -> Option<super::Segment> {
        let execfn = self.auxv.get(super::notes::AT_EXECFN)?;
        self.memory.segment_at(execfn).copied()
    }

    fn encode_words(&self, words: &[u64]) -> Vec<u8> {
        words
            .iter()
            .flat_map(|w| match self.endian {
                super::Endian::Little => w.to_le_bytes(),
                super::Endian::Big => w.to_be_bytes(),
            })
            .collect()
    }
}
