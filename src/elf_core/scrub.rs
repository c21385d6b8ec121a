//! Pure: what `--scrub-env` and `--scrub-args` overwrite in a core, as patches at file offsets.
//!
//! The environment: every string of the kernel's run of environment strings on the initial
//! stack ([`StartInfo::env_block`], so a variable `unsetenv` dropped from envp[] is found too),
//! and any string envp[] points to elsewhere, keeps its `NAME=` and has its value replaced by
//! `*` of the same length, unless the name is kept ([`ALWAYS_KEPT`], `--keep-env` globs). A
//! string without `=` is replaced whole. The arguments: argv[1..]'s strings, and NT_PRPSINFO's
//! `pr_psargs` (the kernel's copy of the command line) past argv[0], every byte but the
//! separating spaces. NULs, lengths and the core's size and layout stay: a debugger reads the
//! scrubbed core as it read the original.
//!
//! Then the fragments: glibc's vectorized string functions (`getenv`'s compares, `strlen`)
//! load 16 to 64 bytes of these strings into vector registers, and a register save (the lazy
//! binder's) puts them on the stack, so a core holds pieces of them in its register notes and
//! its threads' stacks. Every run of [`GRAM`] or more bytes there that equals the original
//! strings where they cover a replaced byte gets the same `*`s.
//!
//! What is not found: copies the program made elsewhere (a getenv result copied into a heap
//! buffer, setenv's strings), copies shorter than [`GRAM`] bytes or changed (encoded, split by
//! other bytes), and anything outside the core.

use super::bytes::Reader;
use super::constants::{NT_AUXV, NT_FILE, NT_PRPSINFO, PT_NOTE};
use super::headers::{Ehdr, Phdr};
use super::{Core, StartInfo};
use std::collections::HashMap;

/// Variables whose values are never scrubbed: what a backtrace's reader needs to make sense of
/// the crash and holds no secret. The caller adds the run token's name.
pub const ALWAYS_KEPT: &[&str] = &["PATH", "LANG"];

/// The shortest copy of a scrubbed string that is searched for in registers and stacks.
pub const GRAM: usize = 8;

/// What to scrub.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--scrub-env`.
    pub env: bool,
    /// `--scrub-args`.
    pub args: bool,
    /// `--keep-env`: names or globs (`*` any run of characters, `?` one) whose values stay, as
    /// do [`ALWAYS_KEPT`]'s.
    pub keep_env: Vec<String>,
}

impl Options {
    /// Whether anything is to be scrubbed at all.
    pub fn any(&self) -> bool {
        self.env || self.args
    }

    /// Whether the variable `name` keeps its value.
    pub fn keeps(&self, name: &[u8]) -> bool {
        ALWAYS_KEPT.iter().any(|k| k.as_bytes() == name)
            || self.keep_env.iter().any(|g| glob(g.as_bytes(), name))
    }
}

/// Bytes to write at an offset of the core file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// The patches for one core and what they hide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub patches: Vec<Patch>,
    /// The variables whose values are replaced, names only, each once, in the block's order
    /// (an empty value too: it is scrubbed, there is just nothing to replace).
    pub env: Vec<String>,
    /// How many arguments (argv[1..]) are replaced.
    pub args: usize,
    /// Copies of pieces of the replaced strings found and replaced in the register notes and
    /// the threads' stacks.
    pub fragments: usize,
    /// What was asked but could not be found (so is not scrubbed), in words.
    pub missed: Vec<String>,
}

impl Plan {
    /// Whether `data` (the core file's bytes) already holds every patch.
    pub fn applied(&self, data: &[u8]) -> bool {
        self.patches.iter().all(|p| {
            usize::try_from(p.offset).ok().is_some_and(|o| {
                data.get(o..o.saturating_add(p.bytes.len())) == Some(p.bytes.as_slice())
            })
        })
    }
}

/// Where the core file holds data between two offsets, as `(start, end)` ranges: the rest
/// is holes, which read as zeros and are never a copy. (The kernel leaves the pages a thread
/// never touched as holes: its 8 MiB stack mapping is mostly holes.)
pub type DataExtents<'a> = dyn FnMut(u64, u64) -> Vec<(u64, u64)> + 'a;

/// The plan for `core`, parsed from `data` (the core file's bytes); `extents` says where the
/// file has data (`&mut |s, e| vec![(s, e)]` when it is not known).
pub fn plan(core: &Core<'_>, data: &[u8], opts: &Options, extents: &mut DataExtents<'_>) -> Plan {
    let mut plan = Plan::default();
    if !opts.any() {
        return plan;
    }
    let info = core.start_info();
    // Replacements by address first: (address, bytes).
    let mut at: Vec<(u64, Vec<u8>)> = Vec::new();
    if opts.env {
        match &info {
            Some(info) => env(core, info, opts, &mut at, &mut plan),
            None => plan.missed.push(
                "could not find the environment block (the initial stack's argv and envp are \
                 not in the core, or not laid out as the kernel lays them out)"
                    .into(),
            ),
        }
    }
    if opts.args {
        match &info {
            Some(info) => args(core, info, &mut at, &mut plan),
            None => plan.missed.push(
                "could not find the arguments on the initial stack (its argv is not in the core, \
                 or not laid out as the kernel lays it out)"
                    .into(),
            ),
        }
    }
    let mut grams = Grams::default();
    // The strings in memory, each with GRAM - 1 bytes of what surrounds it: a copy that starts
    // in a name or ends past a NUL still matches.
    let mut originals: Vec<(u64, Vec<u8>, Vec<bool>)> = Vec::new();
    for (addr, bytes) in &at {
        let lo = addr.saturating_sub(GRAM as u64 - 1);
        let lo = if core.memory.slice_at(lo, 1).is_some() {
            lo
        } else {
            *addr
        };
        let hi = addr + bytes.len() as u64 + GRAM as u64 - 1;
        let Some(orig) = core.memory.slice_at(lo, (hi - lo) as usize) else {
            continue;
        };
        let mut mask = vec![false; orig.len()];
        for (i, &b) in bytes.iter().enumerate() {
            let j = (addr - lo) as usize + i;
            if j < orig.len() && orig[j] != b {
                mask[j] = true;
            }
        }
        originals.push((lo, orig.to_vec(), mask));
    }
    // The strings themselves are the block's patches' business (a kept value there that holds
    // a replaced one, PATH=$HOME/bin, stays as it is).
    let mut skip = Vec::new();
    if let Some((first, block)) = info
        .as_ref()
        .and_then(|i| Some((i.argv_at.first()?, i.env_block.as_ref()?)))
    {
        let len = usize::try_from(block.end.saturating_sub(first.addr)).unwrap_or(0);
        skip.extend(file_ranges(core, data.len(), first.addr, len));
    }
    for (lo, orig, mask) in &originals {
        grams.add(orig, mask);
        skip.extend(file_ranges(core, data.len(), *lo, orig.len()));
    }
    for (addr, bytes) in at {
        if !to_file(core, data.len(), addr, bytes, &mut plan.patches) {
            plan.missed.push(format!(
                "the string at {addr:#x} is not wholly in the core file"
            ));
        }
    }
    if opts.args {
        psargs(core, data, info.as_ref(), &mut grams, &mut skip, &mut plan);
    }
    if !grams.is_empty() {
        fragments(core, data, &grams, &skip, extents, &mut plan);
    }
    plan
}
/// The environment's values: the kernel's run of strings, then what envp[] points to outside it.
fn env(
    core: &Core<'_>,
    info: &StartInfo,
    opts: &Options,
    at: &mut Vec<(u64, Vec<u8>)>,
    plan: &mut Plan,
) {
    let mut strings: Vec<(u64, &[u8])> = Vec::new();
    let block = info.env_block.clone();
    if let Some(b) = &block {
        let len = usize::try_from(b.end - b.start).unwrap_or(0);
        let bytes = core.memory.slice_at(b.start, len).unwrap_or(&[]);
        let mut a = b.start;
        for s in bytes.split(|&c| c == 0) {
            strings.push((a, s));
            a += s.len() as u64 + 1;
        }
    } else {
        plan.missed.push(
            "environment strings envp[] no longer points to (argv's strings are not one run on \
             the stack, so the environment block's extent is unknown)"
                .into(),
        );
    }
    for s in &info.envp_at {
        if block.as_ref().is_some_and(|b| b.contains(&s.addr)) {
            continue;
        }
        if let Some(bytes) = s.len.and_then(|n| core.memory.slice_at(s.addr, n)) {
            if bytes.len() == s.len.unwrap_or(0) {
                strings.push((s.addr, bytes));
            }
        }
    }
    for (addr, s) in strings {
        if s.is_empty() {
            continue;
        }
        let (name, value_at) = match s.iter().position(|&c| c == b'=') {
            Some(eq) => (Some(&s[..eq]), eq + 1),
            None => (None, 0),
        };
        if name.is_some_and(|n| opts.keeps(n)) {
            continue;
        }
        if let Some(n) = name {
            let n = String::from_utf8_lossy(n);
            if !plan.env.iter().any(|e| *e == n) {
                plan.env.push(n.into_owned());
            }
        }
        let value = &s[value_at..];
        if !value.is_empty() {
            at.push((addr + value_at as u64, stars(value)));
        }
    }
}

/// argv[1..]: from the end of argv[0]'s string to the environment block when argv's strings are
/// one run (so bytes a program cut with `strtok` go too), else each string argv points to.
fn args(core: &Core<'_>, info: &StartInfo, at: &mut Vec<(u64, Vec<u8>)>, plan: &mut Plan) {
    let Some(first) = info.argv_at.first() else {
        return;
    };
    plan.args = info.argv_at.len() - 1;
    if let (Some(b), Some(n0)) = (&info.env_block, first.len) {
        let start = first.addr + n0 as u64 + 1;
        let len = usize::try_from(b.start.saturating_sub(start)).unwrap_or(0);
        if let Some(bytes) = core.memory.slice_at(start, len).filter(|s| s.len() == len) {
            if len > 0 {
                at.push((start, stars(bytes)));
            }
            return;
        }
    }
    for s in &info.argv_at[1..] {
        match s.len.and_then(|n| core.memory.slice_at(s.addr, n)) {
            Some(bytes) if bytes.len() == s.len.unwrap_or(0) => at.push((s.addr, stars(bytes))),
            _ => plan.missed.push(format!(
                "an argument's string at {:#x} is not in the core",
                s.addr
            )),
        }
    }
}

/// `*` for every byte but NUL (the strings' terminators stay where they are).
fn stars(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&c| if c == 0 { 0 } else { b'*' })
        .collect()
}

/// The patches writing `bytes` at the process address `addr`, through the PT_LOAD segments to
/// file offsets; false when a byte is not in the file.
fn to_file(
    core: &Core<'_>,
    file_len: usize,
    mut addr: u64,
    mut bytes: Vec<u8>,
    out: &mut Vec<Patch>,
) -> bool {
    while !bytes.is_empty() {
        let Some(seg) = core.memory.segment_at(addr) else {
            return false;
        };
        let rel = addr - seg.vaddr;
        if rel >= seg.filesz {
            return false;
        }
        let n = usize::try_from(seg.filesz - rel)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let Some(offset) = seg.offset.checked_add(rel) else {
            return false;
        };
        if offset.saturating_add(n as u64) > file_len as u64 {
            return false;
        }
        let rest = bytes.split_off(n);
        out.push(Patch { offset, bytes });
        bytes = rest;
        addr += n as u64;
    }
    true
}

/// NT_PRPSINFO's `pr_psargs`: argv[0]'s part stays (up to the first space when argv is not
/// known), every later byte but the spaces becomes `*`. Its original bytes are searched for as
/// fragments too (they are all there is when argv is not found).
fn psargs(
    core: &Core<'_>,
    data: &[u8],
    info: Option<&StartInfo>,
    grams: &mut Grams,
    skip: &mut Vec<(u64, u64)>,
    plan: &mut Plan,
) {
    let r = Reader::new(data, core.endian, core.is_64);
    for (ntype, desc_off, desc_len) in notes(&r) {
        if ntype != NT_PRPSINFO {
            continue;
        }
        // `struct elf_prpsinfo`: pr_psargs[80] at 56 (ELF64); at 44 after 16-bit uid/gid (a
        // 124-byte note), at 48 after 32-bit ones (128 bytes) in ELF32.
        let at = match (core.is_64, desc_len >= 128) {
            (true, _) => 56,
            (false, true) => 48,
            (false, false) => 44,
        };
        let Some(field) = r.bytes(desc_off + at, 80) else {
            continue;
        };
        let used = field.iter().position(|&c| c == 0).unwrap_or(field.len());
        let argv0 = info
            .and_then(|i| i.argv_at.first())
            .and_then(|s| Some((s.addr, s.len?)))
            .and_then(|(a, n)| core.memory.slice_at(a, n));
        let keep = match argv0 {
            Some(a0) if field[..used].starts_with(a0) => a0.len(),
            _ => field[..used]
                .iter()
                .position(|&c| c == b' ')
                .unwrap_or(used),
        };
        let tail = &field[keep..used];
        if info.is_none() {
            plan.args = plan
                .args
                .max(tail.split(|&c| c == b' ').filter(|w| !w.is_empty()).count());
        }
        let masked: Vec<u8> = tail
            .iter()
            .map(|&c| if c == b' ' { c } else { b'*' })
            .collect();
        let mut mask = vec![false; field.len()];
        for (i, (a, b)) in tail.iter().zip(&masked).enumerate() {
            mask[keep + i] = a != b;
        }
        grams.add(field, &mask);
        let off = (desc_off + at) as u64;
        skip.push((off, off + field.len() as u64));
        if masked != tail {
            plan.patches.push(Patch {
                offset: off + keep as u64,
                bytes: masked,
            });
        }
    }
}

/// The 8-byte windows of the original strings that cover a replaced byte, each with which of
/// its bytes are replaced; a 64 Ki-bit filter in front of the map keeps a scan of megabytes of
/// stack fast.
#[derive(Default)]
struct Grams {
    masks: HashMap<u64, u8>,
    filter: Vec<u64>,
}

impl Grams {
    fn bit(w: u64) -> usize {
        (w.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 48) as usize
    }

    /// The windows of `bytes` where `secret` marks a byte to replace.
    fn add(&mut self, bytes: &[u8], secret: &[bool]) {
        if self.filter.is_empty() {
            self.filter = vec![0; 1 << 10];
        }
        for p in 0..(bytes.len() + 1).saturating_sub(GRAM) {
            let m = (0..GRAM).fold(0u8, |m, i| m | (u8::from(secret[p + i]) << i));
            if m == 0 {
                continue;
            }
            let w = u64::from_le_bytes(bytes[p..p + GRAM].try_into().expect("8 bytes"));
            *self.masks.entry(w).or_insert(0) |= m;
            let b = Self::bit(w);
            self.filter[b / 64] |= 1 << (b % 64);
        }
    }

    fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// Which bytes of the window at `w` to replace, if it is one of ours.
    fn mask(&self, w: u64) -> Option<u8> {
        let b = Self::bit(w);
        if w == 0 || self.filter[b / 64] & (1 << (b % 64)) == 0 {
            return None;
        }
        self.masks.get(&w).copied()
    }
}

/// Copies of the original strings' pieces in every note but NT_FILE, NT_AUXV and NT_PRPSINFO
/// (registers of every thread: NT_PRSTATUS, NT_PRFPREG, NT_X86_XSTATE...) and in the stack
/// mapping of every thread (the one its stack pointer is in) and the initial stack, outside the
/// `skip` file ranges (the strings themselves). Stacks are read only where the file has data.
fn fragments(
    core: &Core<'_>,
    data: &[u8],
    grams: &Grams,
    skip: &[(u64, u64)],
    extents: &mut DataExtents<'_>,
    plan: &mut Plan,
) {
    let r = Reader::new(data, core.endian, core.is_64);
    let mut regions: Vec<(u64, u64)> = notes(&r)
        .into_iter()
        .filter(|&(t, _, _)| !matches!(t, NT_FILE | NT_AUXV | NT_PRPSINFO))
        .map(|(_, off, len)| (off as u64, (off + len) as u64))
        .collect();
    let sps = core
        .threads
        .iter()
        .filter_map(|t| t.registers.as_ref()?.sp());
    let stacks = sps.filter_map(|sp| core.memory.segment_at(sp).copied());
    let mut segments: Vec<super::Segment> = Vec::new();
    for seg in stacks.chain(core.stack_segment()) {
        if !segments.contains(&seg) {
            segments.push(seg);
        }
    }
    for seg in segments {
        let end = seg.offset.saturating_add(seg.filesz).min(data.len() as u64);
        if seg.offset < end {
            regions.extend(
                extents(seg.offset, end)
                    .into_iter()
                    .map(|(a, b)| (a.max(seg.offset), b.min(end)))
                    .filter(|(a, b)| a < b),
            );
        }
    }
    let mut marked: Vec<u64> = Vec::new();
    for (start, end) in regions {
        let bytes = &data[start as usize..end as usize];
        for p in 0..(bytes.len() + 1).saturating_sub(GRAM) {
            let w = u64::from_le_bytes(bytes[p..p + GRAM].try_into().expect("8 bytes"));
            let Some(m) = grams.mask(w) else {
                continue;
            };
            let o = start + p as u64;
            if skip.iter().any(|&(a, b)| o < b && o + GRAM as u64 > a) {
                continue;
            }
            marked.extend(
                (0..GRAM as u64)
                    .filter(|i| m & (1 << i) != 0)
                    .map(|i| o + i),
            );
        }
    }
    marked.sort_unstable();
    marked.dedup();
    let mut i = 0;
    while i < marked.len() {
        let mut j = i + 1;
        while j < marked.len() && marked[j] == marked[j - 1] + 1 {
            j += 1;
        }
        // Runs split by a byte that was not replaced (a NUL, the `=`) are one copy.
        if i == 0 || marked[i] > marked[i - 1] + GRAM as u64 {
            plan.fragments += 1;
        }
        plan.patches.push(Patch {
            offset: marked[i],
            bytes: vec![b'*'; j - i],
        });
        i = j;
    }
}

/// The file ranges that hold `len` bytes of process memory from `addr` (as much as the core
/// has).
fn file_ranges(core: &Core<'_>, file_len: usize, addr: u64, len: usize) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut a = addr;
    let end = addr + len as u64;
    while a < end {
        let Some(seg) = core.memory.segment_at(a) else {
            break;
        };
        let rel = a - seg.vaddr;
        if rel >= seg.filesz {
            break;
        }
        let n = (seg.filesz - rel).min(end - a);
        let off = seg.offset + rel;
        out.push((off, (off + n).min(file_len as u64)));
        a += n;
    }
    out
}

/// `(type, offset, size)` in the file of the descriptor of every note.
fn notes(r: &Reader<'_>) -> Vec<(u32, usize, usize)> {
    let mut out = Vec::new();
    let Some(eh) = Ehdr::read(r) else {
        return out;
    };
    let mut phnum = u64::from(eh.phnum);
    if phnum == 0xffff {
        // PN_XNUM: the count is section header 0's sh_info.
        let sh_info = if r.is_64 { 44 } else { 28 };
        phnum = usize::try_from(eh.shoff)
            .ok()
            .and_then(|o| r.u32(o.checked_add(sh_info)?))
            .map_or(0, u64::from);
    }
    let phentsize = u64::from(eh.phentsize);
    if phentsize < Phdr::size(r.is_64) as u64 {
        return out;
    }
    for i in 0..phnum {
        let Some(ph) = eh
            .phoff
            .checked_add(i.saturating_mul(phentsize))
            .and_then(|o| Phdr::read(r, o))
        else {
            break;
        };
        if ph.p_type != PT_NOTE {
            continue;
        }
        let (Ok(start), Ok(size)) = (usize::try_from(ph.offset), usize::try_from(ph.filesz)) else {
            continue;
        };
        let seg = r.sub(start, size);
        let mut pos = 0usize;
        while let (Some(namesz), Some(descsz), Some(t)) =
            (seg.u32(pos), seg.u32(pos + 4), seg.u32(pos + 8))
        {
            let desc = pos + 12 + align4(namesz as usize);
            let len = descsz as usize;
            if seg.bytes(desc, len).is_none() {
                break;
            }
            out.push((t, start + desc, len));
            pos = desc + align4(len);
        }
    }
    out
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// Whether `s` matches the shell-style `pattern`: `*` any run of bytes (also none), `?` one
/// byte, anything else itself.
pub fn glob(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    // Where the last `*` was and the byte of `s` it is retried from.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
            }
            Some(&c) if c == b'?' || c == s[i] => {
                p += 1;
                i += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf_core::writer::{self, CoreDesc, ProcessDesc, SegmentDesc, ThreadDesc};

    const STACK: u64 = 0x7ffd_0000_0000;
    const STACK_SIZE: usize = 0x2000;
    /// Where the pointer arrays start and where the strings start, within the stack.
    const WORDS: usize = 0x1000;
    const STRINGS: usize = 0x1800;
    const EXECFN: &str = "./prog";

    /// A stack as execve lays it out, then with the entries `unset` removed from envp[] the way
    /// glibc's unsetenv removes them (shifted down, one more NULL), their strings left behind.
    fn stack(argv: &[&str], envp: &[&str], unset: &[usize]) -> (Vec<u8>, u64) {
        let mut mem = vec![0u8; STACK_SIZE];
        let mut at = STRINGS;
        let mut put = |s: &str, mem: &mut Vec<u8>| {
            let a = STACK + at as u64;
            mem[at..at + s.len()].copy_from_slice(s.as_bytes());
            at += s.len() + 1;
            a
        };
        let argp: Vec<u64> = argv.iter().map(|s| put(s, &mut mem)).collect();
        let envp_all: Vec<u64> = envp.iter().map(|s| put(s, &mut mem)).collect();
        let execfn = put(EXECFN, &mut mem);
        let mut words = vec![argv.len() as u64];
        words.extend(&argp);
        words.push(0);
        words.extend(
            envp_all
                .iter()
                .enumerate()
                .filter(|(i, _)| !unset.contains(i))
                .map(|(_, &p)| p),
        );
        words.extend(std::iter::repeat_n(0, 1 + unset.len()));
        words.extend([3, 0x40_0040, 31, execfn, 0, 0]);
        for (i, w) in words.iter().enumerate() {
            let o = WORDS + 8 * i;
            mem[o..o + 8].copy_from_slice(&w.to_le_bytes());
        }
        (mem, execfn)
    }

    fn core_bytes(argv: &[&str], envp: &[&str], unset: &[usize], psargs: &str) -> Vec<u8> {
        core_with_copies(argv, envp, unset, psargs, &[])
    }

    /// [`core_bytes`] with `copy` also in xmm0 (NT_PRFPREG) and low in the stack, where a
    /// register save left it.
    fn core_with_copies(
        argv: &[&str],
        envp: &[&str],
        unset: &[usize],
        psargs: &str,
        copy: &[u8],
    ) -> Vec<u8> {
        let (mut mem, execfn) = stack(argv, envp, unset);
        mem[0x200..0x200 + copy.len()].copy_from_slice(copy);
        let mut fpregs = vec![0u8; 512];
        fpregs[160..160 + copy.len()].copy_from_slice(copy);
        let mut auxv = Vec::new();
        for w in [3u64, 0x40_0040, 31, execfn, 0, 0] {
            auxv.extend_from_slice(&w.to_le_bytes());
        }
        let mut regs = vec![0u8; 27 * 8];
        regs[19 * 8..20 * 8].copy_from_slice(&(STACK + WORDS as u64).to_le_bytes());
        let desc = CoreDesc {
            machine: 62,
            page_size: 4096,
            threads: vec![ThreadDesc {
                tid: 7,
                ppid: 1,
                pgrp: 7,
                sid: 7,
                cursig: 6,
                sigpend: 0,
                sighold: 0,
                regs,
                fpregs: Some(fpregs),
                extra: Vec::new(),
            }],
            process: ProcessDesc {
                pid: 7,
                fname: "prog".into(),
                psargs: psargs.into(),
                ..Default::default()
            },
            siginfo: vec![0u8; writer::SIGINFO_SIZE],
            auxv,
            files: Vec::new(),
            segments: vec![SegmentDesc {
                vaddr: STACK,
                memsz: STACK_SIZE as u64,
                dump_size: STACK_SIZE as u64,
                flags: 6,
            }],
        };
        let mut read = |addr: u64, buf: &mut [u8]| {
            let o = (addr - STACK) as usize;
            buf.copy_from_slice(&mem[o..o + buf.len()]);
            buf.len()
        };
        let mut out = std::io::Cursor::new(Vec::new());
        writer::write(&desc, &mut read, &mut out).unwrap();
        out.into_inner()
    }

    fn apply(data: &[u8], plan: &Plan) -> Vec<u8> {
        let mut d = data.to_vec();
        for p in &plan.patches {
            let o = p.offset as usize;
            d[o..o + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        d
    }

    /// The synthetic cores' extents: all data.
    fn all_data(start: u64, end: u64) -> Vec<(u64, u64)> {
        vec![(start, end)]
    }

    fn opts(env: bool, args: bool, keep: &[&str]) -> Options {
        Options {
            env,
            args,
            keep_env: keep.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn values_become_stars_and_names_kept_ones_and_the_layout_stay() {
        let envp = [
            "AWS_SECRET=AKIAsecret",
            "PATH=/usr/bin:/bin",
            "LANG=C.UTF-8",
            "PATHS=/x",
            "KEEPME=visible",
            "XYZ=kept-by-?",
            "XYYZ=not-kept",
            "CORECATCH_RUN=tok",
            "WITH_EQ=a=b=c",
            "EMPTY=",
            "NO_EQUALS_SIGN",
            "AWS_SECRET=twice",
        ];
        let data = core_bytes(&["./prog"], &envp, &[], "./prog");
        let core = super::super::parse(&data).unwrap();
        let o = opts(true, false, &["KEEP*", "X?Z", "CORECATCH_RUN"]);
        let plan = plan(&core, &data, &o, &mut all_data);
        assert!(plan.missed.is_empty(), "{:?}", plan.missed);
        assert_eq!(
            plan.env,
            ["AWS_SECRET", "PATHS", "XYYZ", "WITH_EQ", "EMPTY"],
            "names once each, in the block's order; empty values count as scrubbed"
        );
        assert_eq!(plan.args, 0);
        let scrubbed = apply(&data, &plan);
        assert_eq!(scrubbed.len(), data.len());
        assert!(plan.applied(&scrubbed) && !plan.applied(&data));
        let after = super::super::parse(&scrubbed).unwrap();
        let info = after.start_info().unwrap();
        assert_eq!(
            info.envp,
            [
                "AWS_SECRET=**********",
                "PATH=/usr/bin:/bin",
                "LANG=C.UTF-8",
                "PATHS=**",
                "KEEPME=visible",
                "XYZ=kept-by-?",
                "XYYZ=********",
                "CORECATCH_RUN=tok",
                "WITH_EQ=*****",
                "EMPTY=",
                "**************",
                "AWS_SECRET=*****",
            ]
        );
        assert_eq!(info.argv, ["./prog"]);
        // Nothing else moved: the bytes differ exactly where the values were.
        let changed = data.iter().zip(&scrubbed).filter(|(a, b)| a != b).count();
        let secret_bytes: usize = [10, 2, 8, 5, 14, 5].iter().sum();
        assert_eq!(changed, secret_bytes);
        // The plan of the scrubbed core is the same plan, already applied.
        assert_eq!(
            super::plan(&after, &scrubbed, &o, &mut all_data).patches,
            plan.patches
        );
    }

    #[test]
    fn arguments_and_psargs_past_argv0_become_stars() {
        let argv = ["./prog", "--password=hunter2", "x y", ""];
        let data = core_bytes(
            &argv,
            &["HOME=/root"],
            &[],
            "./prog --password=hunter2 x y ",
        );
        let core = super::super::parse(&data).unwrap();
        let plan = plan(&core, &data, &opts(false, true, &[]), &mut all_data);
        assert!(plan.missed.is_empty(), "{:?}", plan.missed);
        assert_eq!((plan.args, plan.env.len()), (3, 0));
        let scrubbed = apply(&data, &plan);
        let after = super::super::parse(&scrubbed).unwrap();
        let info = after.start_info().unwrap();
        assert_eq!(info.argv, ["./prog", "******************", "***", ""]);
        assert_eq!(
            info.envp,
            ["HOME=/root"],
            "--scrub-args alone keeps the environment"
        );
        assert_eq!(
            after.process.as_ref().unwrap().psargs,
            "./prog ****************** * *"
        );
    }

    #[test]
    fn a_variable_unsetenv_took_out_of_envp_is_still_found() {
        let envp = ["A=1", "GONE=secret", "B=2"];
        let data = core_bytes(&["./prog", "arg"], &envp, &[1], "./prog arg");
        let core = super::super::parse(&data).unwrap();
        let info = core
            .start_info()
            .expect("walked past unsetenv's extra NULL");
        assert_eq!(info.envp, ["A=1", "B=2"]);
        assert_eq!(info.argv, ["./prog", "arg"]);
        let plan = plan(&core, &data, &opts(true, true, &[]), &mut all_data);
        assert_eq!(plan.env, ["A", "GONE", "B"]);
        let scrubbed = apply(&data, &plan);
        assert!(!scrubbed.windows(6).any(|w| w == b"secret"));
        assert!(scrubbed.windows(12).any(|w| w == b"GONE=******\0"));
    }

    #[test]
    fn an_empty_environment_and_every_variable_unset() {
        for (envp, unset) in [(&[][..], &[][..]), (&["X=1", "Y=2"][..], &[0, 1][..])] {
            let data = core_bytes(&["./prog", "a"], envp, unset, "./prog a");
            let core = super::super::parse(&data).unwrap();
            let info = core.start_info().unwrap();
            assert_eq!(info.argv, ["./prog", "a"], "{envp:?} {unset:?}");
            assert!(info.envp.is_empty());
            let plan = plan(&core, &data, &opts(true, true, &[]), &mut all_data);
            assert!(plan.missed.is_empty(), "{:?}", plan.missed);
            let scrubbed = apply(&data, &plan);
            let after = super::super::parse(&scrubbed).unwrap();
            assert_eq!(after.start_info().unwrap().argv, ["./prog", "*"]);
            assert!(!scrubbed.windows(4).any(|w| w == b"X=1\0" || w == b"Y=2\0"));
        }
    }

    #[test]
    fn an_argc_the_entry_code_overwrote_is_recognised() {
        // glibc's `_start` on 32-bit ARM pops argc and pushes the address of argv[0] onto its
        // slot; the count is gone, the walk must still end there.
        let mut data = core_bytes(&["./prog", "pw"], &["T=secret"], &[], "./prog pw");
        let stack_at = super::super::parse(&data).unwrap().memory.segments()[0].offset;
        let argc = (stack_at as usize) + WORDS;
        assert_eq!(data[argc..argc + 8], 2u64.to_le_bytes());
        let slot = STACK + WORDS as u64 + 8;
        data[argc..argc + 8].copy_from_slice(&slot.to_le_bytes());
        let core = super::super::parse(&data).unwrap();
        let info = core.start_info().expect("argc's slot holds &argv[0]");
        assert_eq!(info.argv, ["./prog", "pw"]);
        assert!(info.env_block.is_some());
        let plan = plan(&core, &data, &opts(true, true, &[]), &mut all_data);
        assert!(plan.missed.is_empty(), "{:?}", plan.missed);
        assert!(!apply(&data, &plan).windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn without_the_initial_stack_nothing_is_claimed() {
        let mut data = core_bytes(&["./prog", "pw"], &["T=secret"], &[], "./prog pw");
        // Break the stack's copy of auxv: start_info cannot find the arrays.
        let at = data
            .windows(16)
            .rposition(|w| w == [3, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0x40, 0, 0, 0, 0, 0])
            .unwrap();
        data[at] = 4;
        let core = super::super::parse(&data).unwrap();
        assert!(core.start_info().is_none());
        let plan = plan(&core, &data, &opts(true, true, &[]), &mut all_data);
        assert_eq!(plan.missed.len(), 2, "{:?}", plan.missed);
        assert!(plan.missed[0].contains("environment block"));
        // pr_psargs is still masked past its first word.
        assert_eq!(plan.args, 1);
        let after = apply(&data, &plan);
        assert_eq!(
            super::super::parse(&after).unwrap().process.unwrap().psargs,
            "./prog **"
        );
    }

    #[test]
    fn copies_in_registers_and_on_the_stack_get_the_same_stars() {
        let envp = [
            "HOME=/home/runner",
            "PATH=/home/runner/bin",
            "B_TOKEN=s3cr3t-value",
        ];
        // 16 bytes as a vector load takes them: the end of HOME's value, across the NULs.
        let copy = b"runner\0PATH=/hom";
        let copy2 = b"KEN=s3cr3t-value\0./prog";
        let mut both = copy.to_vec();
        both.extend_from_slice(b"\0\0\0\0\0\0\0\0");
        both.extend_from_slice(copy2);
        let data = core_with_copies(&["./prog"], &envp, &[], "./prog", &both);
        let core = super::super::parse(&data).unwrap();
        let plan = plan(&core, &data, &opts(true, false, &[]), &mut all_data);
        assert_eq!(plan.env, ["HOME", "B_TOKEN"]);
        assert_eq!(plan.fragments, 4, "two copies in xmm0, two on the stack");
        let scrubbed = apply(&data, &plan);
        let count = |d: &[u8], what: &[u8]| d.windows(what.len()).filter(|w| *w == what).count();
        assert_eq!(count(&scrubbed, b"s3cr3t"), 0);
        assert_eq!(count(&scrubbed, b"KEN=************\0./prog"), 3);
        assert_eq!(
            count(&scrubbed, b"******\0PATH=/hom"),
            3,
            "the block and two copies"
        );
        // PATH is kept in the block, though it holds HOME's value.
        let after = super::super::parse(&scrubbed).unwrap();
        let info = after.start_info().unwrap();
        assert_eq!(
            info.envp,
            [
                "HOME=************",
                "PATH=/home/runner/bin",
                "B_TOKEN=************"
            ]
        );
        // Scrubbed again: nothing left to find, nothing changes.
        let again = super::plan(&after, &scrubbed, &opts(true, false, &[]), &mut all_data);
        assert_eq!(again.fragments, 0);
        assert_eq!(apply(&scrubbed, &again), scrubbed);
    }

    #[test]
    fn globs_and_the_names_always_kept() {
        let o = opts(true, false, &["KEEP*", "A?C", "*_PUBLIC", "exact"]);
        for kept in [
            "PATH", "LANG", "KEEP", "KEEPME", "ABC", "A_C", "X_PUBLIC", "_PUBLIC", "exact",
        ] {
            assert!(o.keeps(kept.as_bytes()), "{kept}");
        }
        for gone in [
            "PATHS", "LANGUAGE", "MYKEEP", "AC", "ABBC", "PUBLIC", "EXACT", "", "path",
        ] {
            assert!(!o.keeps(gone.as_bytes()), "{gone}");
        }
        assert!(glob(b"*", b"") && glob(b"**", b"x") && glob(b"a*b*c", b"aXbYbZc"));
        assert!(!glob(b"a*b*c", b"aXbYbZ") && !glob(b"?", b"") && !glob(b"", b"x"));
        assert!(glob(b"*a", b"aaa") && glob(b"?*?", b"ab") && !glob(b"?*?", b"a"));
    }
}
