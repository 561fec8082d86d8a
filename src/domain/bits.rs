//! A set of places or buckets, a bit each: for the flags that a million
//! accounts would otherwise hold a byte or more of.

/// Numbers from 0, a bit each; it grows as larger ones come in.
#[derive(Clone, Debug, Default)]
pub struct Bits(Vec<u64>);

impl Bits {
    /// Whether `i` is in.
    pub fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Puts `i` in.
    pub fn insert(&mut self, i: usize) {
        let word = i / 64;
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        if let Some(w) = self.0.get_mut(word) {
            *w |= 1 << (i % 64);
        }
    }

    /// Takes `i` out.
    pub fn remove(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_hold_what_was_put_in_and_not_what_was_taken_out() {
        let mut bits = Bits::default();
        for i in [0, 63, 64, 1000] {
            bits.insert(i);
        }
        bits.remove(63);
        bits.remove(5000);
        let held: Vec<usize> = (0..1100).filter(|&i| bits.contains(i)).collect();
        assert_eq!(held, [0, 64, 1000]);
    }
}
