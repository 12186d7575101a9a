//! The crate's hash maps on the job path.
//!
//! Keyed by job keys and tenant names several times per job, often under an engine's or the
//! worker's lock, where `std`'s SipHash came to 2 % of the service's instructions
//! (callgrind, `serve` on `memory:`). foldhash is several times faster on short keys and is
//! seeded per map from the process's randomness, so keys that clients choose (tenant names,
//! ids derived from their idempotency keys) still cannot be aimed at one bucket from outside.

use std::collections::HashMap;

/// A `HashMap` with foldhash's per-map random seed.
pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
