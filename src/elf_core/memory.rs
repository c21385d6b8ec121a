//! The process memory a core holds: PT_LOAD segments mapped back to their virtual addresses.
//!
//! This is the one seam through which the unwinder and the report read process memory. Bytes a
//! core does not contain (past `p_filesz`, e.g. file-backed text the kernel chose not to dump, or
//! past the end of a truncated core) are *unreadable*, never zero.

use super::bytes::{fixed_str, Endian};

/// One PT_LOAD program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    /// PF_X = 1, PF_W = 2, PF_R = 4.
    pub flags: u32,
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.vaddr.saturating_add(self.memsz)
    }
}

/// Random access to the dumped memory of a process.
#[derive(Debug, Clone)]
pub struct Memory<'a> {
    data: &'a [u8],
    endian: Endian,
    /// Sorted by `vaddr`.
    segments: Vec<Segment>,
}

impl<'a> Memory<'a> {
    pub(crate) fn new(data: &'a [u8], endian: Endian, mut segments: Vec<Segment>) -> Self {
        segments.sort_by_key(|s| s.vaddr);
        Memory {
            data,
            endian,
            segments,
        }
    }

    /// The byte order of the process's words.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// The PT_LOAD segments, sorted by address.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The segment whose virtual range contains `addr` (whether or not its bytes are in the core).
    pub fn segment_at(&self, addr: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.vaddr <= addr);
        let s = self.segments.get(i.checked_sub(1)?)?;
        (addr < s.end()).then_some(s)
    }

    /// The longest slice of core bytes starting at `addr`, limited to `max` bytes. `None` when
    /// `addr` is not backed by bytes in the core.
    pub fn slice_at(&self, addr: u64, max: usize) -> Option<&'a [u8]> {
        let s = self.segment_at(addr)?;
        let rel = addr - s.vaddr;
        if rel >= s.filesz {
            return None;
        }
        let start = usize::try_from(s.offset.checked_add(rel)?).ok()?;
        let avail_in_seg = usize::try_from(s.filesz - rel).unwrap_or(usize::MAX);
        let end = start
            .saturating_add(avail_in_seg.min(max))
            .min(self.data.len());
        if start >= end {
            return None;
        }
        Some(&self.data[start..end])
    }

    /// Fill `buf` from `addr`. Fails (leaving `buf` partly written) if any byte is unreadable.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let Some(a) = addr.checked_add(done as u64) else {
                return false;
            };
            let Some(src) = self.slice_at(a, buf.len() - done) else {
                return false;
            };
            buf[done..done + src.len()].copy_from_slice(src);
            done += src.len();
        }
        true
    }

    pub fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b).then(|| match self.endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }

    pub fn read_u32(&self, addr: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b).then(|| match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    /// A NUL-terminated string of at most `max` bytes; `None` when its start is unreadable or no
    /// terminator is found within the readable bytes and `max`.
    pub fn read_cstr(&self, addr: u64, max: usize) -> Option<String> {
        let mut out = Vec::new();
        let mut a = addr;
        while out.len() < max {
            let chunk = self.slice_at(a, max - out.len())?;
            if let Some(nul) = chunk.iter().position(|&c| c == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return Some(fixed_str(&out));
            }
            out.extend_from_slice(chunk);
            a = a.checked_add(chunk.len() as u64)?;
        }
        None
    }

    /// How many bytes of `p_filesz` lie past the end of the core file, if any: the core was cut.
    pub fn truncated_bytes(&self) -> Option<u64> {
        let len = self.data.len() as u64;
        let missing: u64 = self
            .segments
            .iter()
            .map(|s| {
                let end = s.offset.saturating_add(s.filesz);
                end.saturating_sub(len.max(s.offset)).min(s.filesz)
            })
            .sum();
        (missing > 0).then_some(missing)
    }
}
