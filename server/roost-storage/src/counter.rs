//! The change counter of a SQLite data folder, shared by every process that opens it (the server
//! and the CLI): eight bytes of `catalog.counter`, mapped into each process. A catalog change adds
//! one; each request reads it with one atomic load. (A stamp file replaced on each change and
//! stat'ed on each request cost a system call and a path lookup per request, about 7 % of a read
//! by id.)

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// A `u64` in a file, mapped shared: every process that maps the file sees each change at once.
#[derive(Debug)]
pub(crate) struct SharedCounter {
    map: memmap2::MmapMut,
}

impl SharedCounter {
    /// Maps the counter of `path`, creating the file (at zero) if it is missing or short.
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        // Never shortened: another process may have it mapped. Growing a short file keeps its bytes.
        if file.metadata()?.len() < 8 {
            file.set_len(8)?;
        }
        #[expect(unsafe_code, reason = "a shared mapping of Roost's own data file, which no process ever shortens; memmap2 cannot make that promise for us")]
        let map = unsafe { memmap2::MmapOptions::new().len(8).map_mut(&file)? };
        Ok(Self { map })
    }

    fn cell(&self) -> &AtomicU64 {
        // The mapping starts on a page boundary (aligned for a u64), is eight bytes long and lives as
        // long as `self`; every process touches those bytes only through this atomic.
        #[expect(unsafe_code, reason = "the mapped bytes as an AtomicU64: aligned, in bounds, accessed only atomically by every process")]
        unsafe {
            &*self.map.as_ptr().cast::<AtomicU64>()
        }
    }

    /// The current value.
    pub(crate) fn load(&self) -> u64 {
        self.cell().load(Ordering::Acquire)
    }

    /// Adds one.
    pub(crate) fn bump(&self) {
        self.cell().fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_file_see_each_others_changes() {
        let dir = std::env::temp_dir().join(format!("roost-counter-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("catalog.counter");
        let a = SharedCounter::open(&path).unwrap();
        let b = SharedCounter::open(&path).unwrap();
        assert_eq!((a.load(), b.load()), (0, 0));
        a.bump();
        assert_eq!(b.load(), 1);
        b.bump();
        b.bump();
        assert_eq!(a.load(), 3);
        drop((a, b));
        // The value outlives the mappings (a later process starts from it).
        assert_eq!(SharedCounter::open(&path).unwrap().load(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
