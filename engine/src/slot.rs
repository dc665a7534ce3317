//! Hash slots: how a key maps to one of the 16384 slots of a Redis Cluster.
//!
//! The mapping is exactly Redis Cluster's: CRC16 (XMODEM polynomial 0x1021) of the key,
//! modulo 16384, where a `{hash tag}` — the bytes between the first `{` and the first `}`
//! after it, if that span is non-empty — replaces the whole key. Graph ids are keys, so a
//! vertex and everything stored under it hash the same way; users co-locate what they read
//! together with tags such as `{user:42}:...`.

use serde::{Deserialize, Serialize};

/// Number of hash slots in a cluster. Fixed by the Redis Cluster protocol.
pub const SLOT_COUNT: usize = 16384;

/// One of the 16384 hash slots. Always `< SLOT_COUNT`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot(u16);

impl Slot {
    /// The slot a key belongs to.
    #[inline]
    pub fn of_key(key: &[u8]) -> Slot {
        Slot(crc16(hash_tag(key)) & (SLOT_COUNT as u16 - 1))
    }

    /// A slot from its number, or `None` when it is out of range.
    pub fn new(n: u64) -> Option<Slot> {
        (n < SLOT_COUNT as u64).then_some(Slot(n as u16))
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }

    pub fn get(self) -> u16 {
        self.0
    }

    /// All slots in ascending order.
    pub fn all() -> impl Iterator<Item = Slot> {
        (0..SLOT_COUNT as u16).map(Slot)
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The part of a key that is hashed: the content of the first non-empty `{...}`, else the key.
#[inline]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection.
#[inline]
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| (crc << 8) ^ CRC16_TABLE[((crc >> 8) as u8 ^ b) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_check_value() {
        // The standard check value of CRC16/XMODEM, also quoted in the Redis Cluster spec.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn slots_match_redis() {
        // Values from a real Redis 7: CLUSTER KEYSLOT <key>.
        for (key, slot) in [
            ("foo", 12182),
            ("bar", 5061),
            ("hello", 866),
            ("user:1000", 1649),
            ("", 0),
            ("{user1000}.following", 3443),
            ("{user1000}.followers", 3443),
            ("foo{}{bar}", 8363),
            ("foo{{bar}}zap", 4015),
            ("foo{bar}{zap}", 5061),
        ] {
            assert_eq!(Slot::of_key(key.as_bytes()).get(), slot, "key {key:?}");
        }
    }

    #[test]
    fn hash_tags() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{"), b"{");
        assert_eq!(hash_tag(b"a}b{"), b"a}b{");
    }

    #[test]
    fn any_key_with_same_tag_shares_the_slot() {
        use rand::{Rng, SeedableRng};
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..1000 {
            let tag: Vec<u8> = (0..rng.random_range(1..12)).map(|_| rng.random_range(b'a'..=b'z')).collect();
            let suffix: Vec<u8> = (0..rng.random_range(0..12)).map(|_| rng.random()).collect();
            let mut key = b"{".to_vec();
            key.extend(&tag);
            key.push(b'}');
            key.extend(&suffix);
            assert_eq!(Slot::of_key(&key), Slot::of_key(&tag));
        }
    }
}
