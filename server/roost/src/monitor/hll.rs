//! Distinct installation ids per tenant and day, as a HyperLogLog sketch (precision 12: 4096 one-byte
//! registers, a standard error of about 1.6 %) whose registers are atomics, so recording an id on the
//! hot path takes no lock; two sketches merge by taking each register's maximum, which is how the
//! nodes' sketches add up.
//!
//! Written here rather than taken from a crate: the HyperLogLog crates insert through `&mut self`
//! (a lock per request here) and serialise in formats of their own; this needs shared atomic
//! registers and a stable hash (FNV-1a then the SplitMix64 finaliser) that every node and version
//! computes alike, since the catalog merges sketches across nodes.

use base64::Engine as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Register index bits.
const P: u32 = 12;
/// Registers.
pub const M: usize = 1 << P;

/// The stable 64-bit hash of an id.
fn hash(id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // SplitMix64's finaliser spreads FNV's low-entropy high bits.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A sketch with atomic registers.
pub struct Sketch {
    registers: Box<[AtomicU8]>,
    dirty: AtomicBool,
}

impl Default for Sketch {
    fn default() -> Self {
        Self { registers: (0..M).map(|_| AtomicU8::new(0)).collect(), dirty: AtomicBool::new(false) }
    }
}

impl Sketch {
    /// Records an id.
    pub fn insert(&self, id: &[u8]) {
        let h = hash(id);
        let index = (h >> (64 - P)) as usize;
        // The rank of the first 1 bit in the remaining 52 bits (1-based; all zeros rank 53).
        let rest = h << P;
        let rank = (rest.leading_zeros().min(64 - P) + 1) as u8;
        if self.registers[index].load(Ordering::Relaxed) < rank && self.registers[index].fetch_max(rank, Ordering::Relaxed) < rank {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// True (once) when a register changed since the last call.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }

    /// The registers, base64 (what the catalog stores).
    pub fn encode(&self) -> String {
        let bytes: Vec<u8> = self.registers.iter().map(|r| r.load(Ordering::Relaxed)).collect();
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    }
}

/// Registers merged from stored sketches.
#[derive(Clone)]
pub struct Merged(Vec<u8>);

impl Default for Merged {
    fn default() -> Self {
        Self(vec![0; M])
    }
}

impl Merged {
    /// Adds a stored sketch (one of another size or unreadable is skipped).
    pub fn add_encoded(&mut self, text: &str) {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD_NO_PAD.decode(text) else { return };
        if bytes.len() == M {
            for (r, b) in self.0.iter_mut().zip(bytes) {
                *r = (*r).max(b);
            }
        }
    }

    /// Adds a live sketch.
    pub fn add(&mut self, s: &Sketch) {
        for (r, b) in self.0.iter_mut().zip(s.registers.iter()) {
            *r = (*r).max(b.load(Ordering::Relaxed));
        }
    }

    /// The estimated number of distinct ids (with the small-range correction).
    pub fn estimate(&self) -> u64 {
        let m = M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.0.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.0.iter().filter(|&&r| r == 0).count();
        let e = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
        e.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_stay_within_a_few_percent_and_merge_across_nodes() {
        for n in [1u64, 10, 100, 1000, 20_000] {
            let (a, b) = (Sketch::default(), Sketch::default());
            // Two nodes see overlapping halves of the ids: the merge counts each id once.
            for i in 0..n {
                let id = format!("installation-{i}");
                if i % 2 == 0 || i % 3 == 0 {
                    a.insert(id.as_bytes());
                }
                if i % 2 == 1 || i % 3 == 0 {
                    b.insert(id.as_bytes());
                }
            }
            let mut m = Merged::default();
            m.add_encoded(&a.encode());
            m.add(&b);
            let e = m.estimate() as f64;
            assert!((e - n as f64).abs() <= (n as f64 * 0.05).max(1.0), "{n} ids estimated as {e}");
        }
        assert_eq!(Merged::default().estimate(), 0);
    }
}
