//! Which shard a tenant lives on: rendezvous (highest-random-weight) hashing with a fixed
//! hash, so every process of a deployment (and every build) agrees.
//!
//! Each shard position `i` gets a score for the tenant, `mix(fnv1a64(tenant) ^ mix(i + 1))`,
//! and the tenant goes to the shard with the highest score (the lowest position on a tie).
//! Adding a shard moves only the tenants for which the new shard scores highest, about 1/N
//! of them, and moves them only onto the new shard; removing the last shard moves only its
//! own tenants.
//!
//! The hash is FNV-1a 64 (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) over the
//! tenant's UTF-8 bytes, and `mix` is the SplitMix64 finaliser (it spreads FNV's weak low bits
//! over the whole word). Both are spelled out here rather than taken from `std`'s
//! `RandomState`/`DefaultHasher`, whose keys and algorithm are not fixed across processes or
//! releases: changing either function reshuffles every tenant of every deployment.

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The SplitMix64 finaliser: every input bit flips about half the output bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The shard (`0..n`) that `key` lives on among `n` (0 when `n` is 0 or 1).
pub(super) fn shard_of(key: &str, n: usize) -> usize {
    let hash = fnv1a64(key.as_bytes());
    let mut best = 0;
    let mut best_score = 0;
    for i in 0..n {
        let score = mix(hash ^ mix(i as u64 + 1));
        if i == 0 || score > best_score {
            best = i;
            best_score = score;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the FNV reference (draft-eastlake-fnv test vectors).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn one_shard_takes_everything() {
        for tenant in ["", "a", "acme", "tenant-17"] {
            assert_eq!(shard_of(tenant, 0), 0);
            assert_eq!(shard_of(tenant, 1), 0);
        }
    }
}
