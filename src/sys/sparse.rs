//! Holes in sparse files: `lseek(SEEK_DATA / SEEK_HOLE)`, so a sparse core is compressed without
//! reading its holes from disk.

use nix::errno::Errno;
use nix::unistd::{lseek, Whence};
use std::fs::File;
use std::io;

/// The result of a data/hole seek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// The next data (or hole) starts here.
    At(u64),
    /// No more data after the offset (ENXIO).
    End,
    /// The filesystem does not report holes.
    Unsupported,
}

fn seek(f: &File, pos: u64, whence: Whence) -> io::Result<Seek> {
    let off =
        libc::off_t::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    match lseek(f, off, whence) {
        Ok(d) => Ok(Seek::At(d as u64)),
        Err(Errno::ENXIO) => Ok(Seek::End),
        Err(Errno::EINVAL | Errno::EOPNOTSUPP) => Ok(Seek::Unsupported),
        Err(e) => Err(e.into()),
    }
}

/// Where the next data at or after `pos` starts.
pub fn next_data(f: &File, pos: u64) -> io::Result<Seek> {
    seek(f, pos, Whence::SeekData)
}

/// Where the next hole at or after `pos` starts (the end of the file counts as a hole).
pub fn next_hole(f: &File, pos: u64) -> io::Result<Seek> {
    seek(f, pos, Whence::SeekHole)
}
