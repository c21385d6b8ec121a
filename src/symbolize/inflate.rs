//! Compressed (`SHF_COMPRESSED`, zlib) DWARF sections in memory: inflated whole into a buffer
//! of their own ([`inflate`]), or, for `.debug_info`, only as far as lookups have asked
//! ([`Progressive`]).
//!
//! One zlib stream cannot be entered in the middle, but it can be stopped anywhere: a backtrace
//! through libc6-dbg needs the units of `abort`, `raise` and `pthread_kill`, which lie in the
//! first 2 MB of its 5.8 MB `.debug_info`, and inflating that stream is most of a `bt`'s time.
//! Pure code over bytes already in memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use super::{elf, Backing, SectionBytes, SharedBytes};

/// An inflated section: a heap buffer, or for big sections an anonymous mapping that asks for
/// transparent huge pages (a 10 MiB section then costs 5 page faults instead of 2,560).
pub(super) enum Inflated {
    Heap(Vec<u8>),
    Map(memmap2::Mmap),
}

impl AsRef<[u8]> for Inflated {
    fn as_ref(&self) -> &[u8] {
        match self {
            Inflated::Heap(v) => v,
            Inflated::Map(m) => m,
        }
    }
}

impl Backing for Inflated {}

/// Sections at least this big are inflated into their own mapping.
const MAP_INFLATED_FROM: usize = 2 << 20;

/// Inflate `stream` whole into `size` bytes; `None` when it does not inflate to exactly that.
/// `threaded`: inflated on a helper thread, where a heap buffer would grow one of glibc's
/// per-thread arenas (an `mprotect` per 128 KiB); an anonymous mapping costs one `mmap`.
pub(super) fn inflate(stream: &[u8], size: usize, threaded: bool) -> Option<Inflated> {
    if size >= MAP_INFLATED_FROM || (threaded && size > 0) {
        if let Ok(mut m) = memmap2::MmapMut::map_anon(size) {
            let _ = m.advise(memmap2::Advice::HugePage);
            return elf::inflate_into(stream, &mut m)
                .then(|| m.make_read_only().ok().map(Inflated::Map))
                .flatten();
        }
    }
    let mut v = vec![0u8; size];
    elf::inflate_into(stream, &mut v).then_some(Inflated::Heap(v))
}

/// Asked for more than is inflated, at least this much more is inflated (fewer calls into
/// zlib for units that lie close together).
const STEP: usize = 64 << 10;

/// At most this much is inflated per call into zlib, so threads waiting for an earlier part are
/// woken soon after it is there.
const MAX_STEP: usize = 256 << 10;

/// A compressed section inflated as far as has been asked ([`Progressive::prefix`]). The
/// inflated bytes never move and never change once written, so [`SectionBytes`] over the
/// inflated part stay valid while the rest is written.
pub(super) struct Progressive {
    /// The file holding the zlib stream, and where the stream lies in it.
    file: SharedBytes,
    stream: std::ops::Range<usize>,
    /// The inflated size the section header gives: the mapping's length.
    map: memmap2::MmapRaw,
    size: usize,
    /// How many bytes from the start are inflated (written before this is raised, release).
    filled: AtomicUsize,
    /// The inflater; `None` once the stream ended or failed: nothing past `filled` then.
    z: Mutex<Option<flate2::Decompress>>,
    /// Signalled after each step of inflating, for the threads waiting for bytes.
    step: (Mutex<()>, Condvar),
}

/// Compressed bytes copied out per read while inflating progressively.
const INPUT_CHUNK: usize = 64 << 10;

impl Progressive {
    /// A section whose zlib stream is `stream` (within `file`) and inflates to `size` bytes;
    /// `None` when no memory can be mapped for it.
    pub(super) fn new(file: SharedBytes, stream: &[u8], size: usize) -> Option<Progressive> {
        let base = (*file).as_ref().as_ptr() as usize;
        let start = (stream.as_ptr() as usize).checked_sub(base)?;
        let stream = start..start + stream.len();
        (*file).as_ref().get(stream.clone())?;
        // An anonymous mapping is zero pages until written: what is never inflated costs no
        // memory. (No huge pages: those would make 2 MiB resident for the first byte.)
        let map = memmap2::MmapRaw::from(memmap2::MmapMut::map_anon(size.max(1)).ok()?);
        Some(Progressive {
            file,
            stream,
            map,
            size,
            filled: AtomicUsize::new(0),
            z: Mutex::new(Some(flate2::Decompress::new(true))),
            step: (Mutex::new(()), Condvar::new()),
        })
    }

    /// The section's inflated size (from its header).
    pub(super) fn len(&self) -> usize {
        self.size
    }

    /// The first `end` bytes, inflating as far as needed; `None` when the stream is damaged or
    /// ends before them (what came before stays usable).
    pub(super) fn prefix(self: &std::sync::Arc<Self>, end: usize) -> Option<SectionBytes> {
        self.ensure(end).then(|| SectionBytes {
            bytes: self.clone(),
            start: 0,
            len: end,
        })
    }

    /// Inflate until at least `end` bytes are there; whether they are. One thread inflates at a
    /// time, [`STEP`] to [`MAX_STEP`] bytes per call into zlib; a thread that needs bytes while
    /// another is inflating waits until they are there (woken after each step) instead of
    /// taking turns at the inflater, so a reader needing the first units is not held up by a
    /// thread inflating far ahead ([`super::lazy`]'s prefetch) once they are inflated.
    pub(super) fn ensure(&self, end: usize) -> bool {
        loop {
            if end <= self.filled.load(Ordering::Acquire) {
                return true;
            }
            if end > self.size {
                return false;
            }
            let mut guard = match self.z.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    // Another thread is inflating: wait for its next step. The timeout covers
                    // one that stops short of `end` and lets go after its last signal.
                    let g = self.step.0.lock().unwrap_or_else(|e| e.into_inner());
                    if end > self.filled.load(Ordering::Acquire) {
                        let _ = self
                            .step
                            .1
                            .wait_timeout(g, std::time::Duration::from_millis(1));
                    }
                    continue;
                }
            };
            return self.inflate_locked(&mut guard, end);
        }
    }

    /// [`Progressive::ensure`] with the inflater held.
    fn inflate_locked(&self, guard: &mut Option<flate2::Decompress>, end: usize) -> bool {
        // The compressed bytes are copied out a chunk at a time (`pread` for a mapped file)
        // rather than read through the mapping, so they do not stay resident once inflated.
        let mut read = self.file.reader();
        let mut input = vec![0u8; INPUT_CHUNK];
        let (mut input_at, mut input_len) = (0usize, 0usize);
        loop {
            let filled = self.filled.load(Ordering::Relaxed);
            if filled >= end {
                return true;
            }
            let Some(z) = guard.as_mut() else {
                return false;
            };
            let want = (end - filled).clamp(STEP, MAX_STEP).min(self.size - filled);
            // SAFETY: `filled + want <= size`, the mapping's length, and no slice handed out
            // (by `as_ref`, which stops at `filled`) reaches this range; the lock keeps any
            // other writer out.
            let out =
                unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(filled), want) };
            let used = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
            let held = input_at..input_at + input_len;
            if !held.contains(&used) || held.end - used < INPUT_CHUNK / 4 {
                let n = INPUT_CHUNK.min(self.stream.len().saturating_sub(used));
                input_len = read(self.stream.start.saturating_add(used), &mut input[..n]);
                input_at = used;
            }
            let before = z.total_out();
            let status = z.decompress(
                input.get(used - input_at..input_len).unwrap_or_default(),
                out,
                flate2::FlushDecompress::None,
            );
            let got = usize::try_from(z.total_out() - before).unwrap_or(0);
            self.filled.store(filled + got, Ordering::Release);
            {
                let _g = self.step.0.lock().unwrap_or_else(|e| e.into_inner());
                self.step.1.notify_all();
            }
            match status {
                Ok(flate2::Status::Ok | flate2::Status::BufError) if got > 0 => {}
                // The end of the stream, a damaged one, or one that stopped giving bytes.
                _ => *guard = None,
            }
        }
    }
}

impl AsRef<[u8]> for Progressive {
    fn as_ref(&self) -> &[u8] {
        let filled = self.filled.load(Ordering::Acquire);
        // SAFETY: the first `filled` bytes of the mapping are written and never written again.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), filled) }
    }
}

impl Backing for Progressive {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    fn zlib(plain: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(plain).unwrap();
        z.finish().unwrap()
    }

    /// `len` pseudo-random nibbles: they compress little, so the stream's position tracks the
    /// output's.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 60) as u8
            })
            .collect()
    }

    fn progressive(file: Vec<u8>, skip: usize, size: usize) -> Arc<Progressive> {
        let file: SharedBytes = Arc::new(file);
        let stream = &(*file).as_ref()[skip..];
        Arc::new(Progressive::new(file.clone(), stream, size).unwrap())
    }

    #[test]
    fn inflates_only_as_far_as_asked_and_prefixes_stay_valid() {
        let plain = noise(3 * STEP + 12_345, 1);
        let mut file = b"header".to_vec();
        file.extend(zlib(&plain));
        let p = progressive(file, 6, plain.len());
        assert_eq!(p.len(), plain.len());
        let a = p.prefix(10).unwrap();
        assert_eq!(&a[..], &plain[..10]);
        let filled = AsRef::<[u8]>::as_ref(&*p).len();
        assert!((10..plain.len()).contains(&filled), "inflated {filled}");
        let b = p.prefix(STEP * 2 + 7).unwrap();
        assert_eq!(&b[..], &plain[..STEP * 2 + 7]);
        assert_eq!(&a[..], &plain[..10], "an earlier prefix changed");
        let all = p.prefix(plain.len()).unwrap();
        assert_eq!(&all[..], &plain[..]);
        assert!(p.prefix(plain.len() + 1).is_none());
    }

    #[test]
    fn a_damaged_or_short_stream_keeps_what_came_before() {
        let plain: Vec<u8> = (0..4 * STEP as u32).map(|i| (i % 251) as u8).collect();
        let stream = zlib(&plain);
        // Cut in the middle: the start still inflates, the end does not, and asking twice
        // does not panic or loop.
        let p = progressive(stream[..stream.len() / 2].to_vec(), 0, plain.len());
        assert_eq!(&p.prefix(1000).unwrap()[..], &plain[..1000]);
        assert!(p.prefix(plain.len()).is_none());
        assert!(p.prefix(plain.len()).is_none());
        // Garbage from the first byte.
        let p = progressive(vec![0xff; 100], 0, plain.len());
        assert!(p.prefix(1).is_none());
        // A header size larger than the stream gives: everything up to the stream's end.
        let p = progressive(stream.clone(), 0, plain.len() + 10);
        assert_eq!(&p.prefix(plain.len()).unwrap()[..], &plain[..]);
        assert!(p.prefix(plain.len() + 1).is_none());
        // Smaller: the header's size is all there is.
        let p = progressive(stream, 0, 100);
        assert_eq!(&p.prefix(100).unwrap()[..], &plain[..100]);
        assert!(p.prefix(101).is_none());
    }

    #[test]
    fn a_reader_gets_its_bytes_while_another_thread_inflates_ahead() {
        let plain = noise(40 * STEP, 7);
        let stream = zlib(&plain);
        for round in 0..20 {
            let p = progressive(stream.clone(), 0, plain.len());
            let ahead = {
                let p = Arc::clone(&p);
                std::thread::spawn(move || p.ensure(p.len()))
            };
            // Readers at several depths, each served from what the other thread inflated or
            // by inflating on after it: the bytes are the same either way.
            for end in [100, STEP + 1, 7 * STEP, 20 * STEP + round] {
                assert_eq!(&p.prefix(end).unwrap()[..], &plain[..end]);
            }
            assert!(ahead.join().unwrap());
            assert_eq!(&p.prefix(plain.len()).unwrap()[..], &plain[..]);
        }
        // A stream cut short: a reader waiting past the cut is told so, it does not hang.
        let p = progressive(stream[..stream.len() / 3].to_vec(), 0, plain.len());
        let ahead = {
            let p = Arc::clone(&p);
            std::thread::spawn(move || p.ensure(p.len()))
        };
        assert!(p.prefix(plain.len() - 1).is_none());
        assert!(!ahead.join().unwrap());
        assert_eq!(&p.prefix(STEP).unwrap()[..], &plain[..STEP]);
    }
}
