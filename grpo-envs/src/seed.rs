//! Stable seeding helpers: FNV-1a hashing, SplitMix64 seed derivation and the
//! crate's seeded RNG (`ChaCha8Rng`, portable across platforms).
//!
//! An instance is a pure function of `(env config, instance seed)`; stochastic
//! transitions draw from a separate stream derived with [`derive_seed`].

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// 64-bit FNV-1a of a byte string (stable across Rust versions, unlike `std`'s hasher).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One SplitMix64 mixing step.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Derives a child seed from a parent seed, a label and indices, e.g.
/// `derive_seed(instance, "noise", &[sample])`.
pub fn derive_seed(parent: u64, label: &str, indices: &[u64]) -> u64 {
    let mut h = splitmix64(parent ^ fnv1a(label.as_bytes()));
    for &i in indices {
        h = splitmix64(h ^ splitmix64(i));
    }
    h
}

/// Chains a new value into a running 64-bit key (used for SALT-style prefix keys).
pub fn chain_key(prev: u64, item: &str) -> u64 {
    splitmix64(prev ^ fnv1a(item.as_bytes()))
}

/// The crate's seeded RNG.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn derive_differs_by_label_and_index() {
        let a = derive_seed(7, "noise", &[0]);
        assert_ne!(a, derive_seed(7, "noise", &[1]));
        assert_ne!(a, derive_seed(7, "retry", &[0]));
        assert_eq!(a, derive_seed(7, "noise", &[0]));
    }
}
