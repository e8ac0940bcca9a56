//! A tiny deterministic generator (xorshift64) for the crate's randomized unit tests, so
//! that a failure replays from its seed. It lives in `model`, the layer every other may
//! depend on.

/// xorshift64; seed it with anything but 0.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
