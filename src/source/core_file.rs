//! Opening a core for reading: a read-only memory mapping, so a core of any size costs address
//! space, not RAM, and the parser sees plain `&[u8]`.

use memmap2::Mmap;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a core could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenCoreError {
    #[error("cannot open core {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a regular file")]
    NotRegular { path: PathBuf },
    #[error("cannot map core {path}")]
    Map {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A mapped core file. An empty file maps to an empty slice.
pub struct MappedCore {
    map: Option<Mmap>,
}

impl MappedCore {
    /// Opens without blocking (a FIFO must not hang us) and refuses anything but a regular file.
    pub fn open(path: &Path) -> Result<MappedCore, OpenCoreError> {
        let open_err = |source| OpenCoreError::Open {
            path: path.into(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if !meta.is_file() {
            return Err(OpenCoreError::NotRegular { path: path.into() });
        }
        let len = meta.len();
        if len == 0 {
            return Ok(MappedCore { map: None });
        }
        // SAFETY: the mapping is read-only and private to us. A core is written once by the
        // kernel (or by us) and not modified afterwards; if another process truncated it while
        // mapped, reads past the new end would fault, which is the accepted risk of mmap.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| OpenCoreError::Map {
            path: path.into(),
            source,
        })?;
        Ok(MappedCore { map: Some(map) })
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
