//! Bounds-checked reads of integers at explicit offsets in a given byte order, shared by every
//! ELF reader in the crate (cores, executables, debug files). Every read returns
//! `None` past the end of the data instead of panicking.

/// Byte order of a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

/// A view of bytes with the core's byte order and word size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    pub data: &'a [u8],
    pub endian: Endian,
    pub is_64: bool,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], endian: Endian, is_64: bool) -> Self {
        Reader {
            data,
            endian,
            is_64,
        }
    }

    /// A reader over `len` bytes at `off`, clamped to what exists.
    pub fn sub(&self, off: usize, len: usize) -> Reader<'a> {
        let start = off.min(self.data.len());
        let end = off.saturating_add(len).min(self.data.len());
        Reader {
            data: &self.data[start..end],
            ..*self
        }
    }

    pub fn bytes(&self, off: usize, len: usize) -> Option<&'a [u8]> {
        self.data.get(off..off.checked_add(len)?)
    }

    fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        self.bytes(off, N)?.try_into().ok()
    }

    pub fn u16(&self, off: usize) -> Option<u16> {
        let b = self.array::<2>(off)?;
        Some(match self.endian {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    pub fn u32(&self, off: usize) -> Option<u32> {
        let b = self.array::<4>(off)?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    pub fn i32(&self, off: usize) -> Option<i32> {
        self.u32(off).map(|v| v as i32)
    }

    pub fn u64(&self, off: usize) -> Option<u64> {
        let b = self.array::<8>(off)?;
        Some(match self.endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }

    /// A native word of the core: 8 bytes for ELFCLASS64, 4 for ELFCLASS32.
    pub fn word(&self, off: usize) -> Option<u64> {
        if self.is_64 {
            self.u64(off)
        } else {
            self.u32(off).map(u64::from)
        }
    }

    pub fn word_size(&self) -> usize {
        if self.is_64 {
            8
        } else {
            4
        }
    }
}

/// A NUL-terminated (or full-length) string from a fixed-size field, lossily decoded.
pub(crate) fn fixed_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}
