//! numpy's legacy `np.random.RandomState` over MT19937, bit for bit.
//!
//! nnU-Net draws its reproducible random numbers from `RandomState(seed)`: the fingerprint's
//! foreground intensity samples (`RandomState(1234).choice(.., replace=True)`), the 5-fold split
//! (sklearn `KFold(shuffle=True, random_state=12345)` shuffles with it) and the fallback 80:20
//! split (`RandomState(12345 + fold).choice(.., replace=False)`). Reproducing those exactly needs
//! the same generator, the same seeding and the same bounded-integer rule, which live here.
//!
//! Sources (behaviour, not code): Matsumoto & Nishimura's `mt19937ar.c` (`init_genrand`,
//! `genrand_int32`), numpy `random/_mt19937.pyx` (`_legacy_seeding`: an int seed is
//! `init_genrand(seed)`), numpy `random/src/distributions/distributions.c` (`random_interval`,
//! `random_bounded_uint64_fill`: masked rejection) and `random/mtrand.pyx` (`shuffle`,
//! `permutation`, `choice`, `random_sample`, `uniform`).

use thiserror::Error;

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// A request numpy's `RandomState` would reject with a `ValueError`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RngError {
    /// `choice` from an empty population with a non-zero sample count.
    #[error("cannot draw {n_samples} samples from an empty population")]
    EmptyPopulation {
        /// Number of samples requested.
        n_samples: usize,
    },
    /// `choice(.., replace=False)` asked for more samples than the population holds.
    #[error("cannot draw {n_samples} distinct samples from a population of {population}")]
    SampleLargerThanPopulation {
        /// Number of samples requested.
        n_samples: usize,
        /// Population size.
        population: usize,
    },
    /// `randint(low, high)` with `high <= low`.
    #[error("randint needs low < high, got low {low}, high {high}")]
    EmptyRange {
        /// Inclusive lower bound.
        low: i64,
        /// Exclusive upper bound.
        high: i64,
    },
}

/// numpy's legacy `RandomState`: MT19937 seeded with `init_genrand`, with numpy's legacy
/// sampling rules on top.
#[derive(Clone)]
pub struct RandomState {
    state: [u32; N],
    pos: usize,
}

impl std::fmt::Debug for RandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomState")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl RandomState {
    /// `np.random.RandomState(seed)` for an integer seed (numpy accepts `0 ..= 2^32 - 1`).
    pub fn new(seed: u32) -> RandomState {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        RandomState { state, pos: N }
    }

    /// The next raw 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.regenerate();
        }
        let mut y = self.state[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// The next 64-bit output: two 32-bit outputs, the first as the high half (numpy
    /// `mt19937_next64`).
    pub fn next_u64(&mut self) -> u64 {
        let high = u64::from(self.next_u32());
        (high << 32) | u64::from(self.next_u32())
    }

    fn regenerate(&mut self) {
        let twist = |upper: u32, lower: u32| {
            let y = (upper & UPPER_MASK) | (lower & LOWER_MASK);
            (y >> 1) ^ if y & 1 == 1 { MATRIX_A } else { 0 }
        };
        for k in 0..N {
            let next = self.state[(k + 1) % N];
            self.state[k] = self.state[(k + M) % N] ^ twist(self.state[k], next);
        }
        self.pos = 0;
    }

    /// A uniform double in `[0, 1)` with 53 random bits (`random_sample`, `rk_double`).
    pub fn random_sample(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `uniform(low, high)`: `low + (high - low) * random_sample()`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.random_sample()
    }

    /// A uniform integer in `[0, max]` by masked rejection (numpy `random_interval`, also what
    /// `randint` and `choice` use): draw, mask to the smallest `2^b - 1 >= max`, retry while the
    /// value exceeds `max`. `max == 0` consumes no output, as in numpy.
    pub fn bounded(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = u64::MAX >> max.leading_zeros();
        if max <= u64::from(u32::MAX) {
            loop {
                let value = u64::from(self.next_u32()) & mask;
                if value <= max {
                    return value;
                }
            }
        }
        loop {
            let value = self.next_u64() & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// `randint(low, high)`: one integer uniform in `[low, high)`.
    ///
    /// # Errors
    /// [`RngError::EmptyRange`] when `high <= low`.
    pub fn randint(&mut self, low: i64, high: i64) -> Result<i64, RngError> {
        if high <= low {
            return Err(RngError::EmptyRange { low, high });
        }
        let span = high.abs_diff(low) - 1;
        Ok(low.wrapping_add_unsigned(self.bounded(span)))
    }

    /// Legacy `shuffle` of a 1-d array: for `i = n-1 ..= 1`, swap item `i` with item
    /// `bounded(i)`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.bounded(i as u64) as usize;
            items.swap(i, j);
        }
    }

    /// `permutation(n)`: `arange(n)` shuffled.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        self.shuffle(&mut idx);
        idx
    }

    /// `choice(n, k, replace=True)`: `k` indices uniform in `[0, n)` (numpy draws them with
    /// `randint(0, n, size=k)`).
    ///
    /// # Errors
    /// [`RngError::EmptyPopulation`] when `n == 0` and `k > 0`.
    pub fn choice_with_replacement(&mut self, n: usize, k: usize) -> Result<Vec<usize>, RngError> {
        if n == 0 && k > 0 {
            return Err(RngError::EmptyPopulation { n_samples: k });
        }
        let max = n.saturating_sub(1) as u64;
        Ok((0..k).map(|_| self.bounded(max) as usize).collect())
    }

    /// `choice(n, k, replace=False)`: the first `k` items of `permutation(n)`.
    ///
    /// # Errors
    /// [`RngError::SampleLargerThanPopulation`] when `k > n`.
    pub fn choice_without_replacement(
        &mut self,
        n: usize,
        k: usize,
    ) -> Result<Vec<usize>, RngError> {
        if k > n {
            return Err(RngError::SampleLargerThanPopulation {
                n_samples: k,
                population: n,
            });
        }
        let mut idx = self.permutation(n);
        idx.truncate(k);
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_outputs_match_mt19937_with_seed_12345() {
        // reference/nnunet.md §12: MT19937(12345) first outputs.
        let mut rs = RandomState::new(12345);
        let got: Vec<u32> = (0..3).map(|_| rs.next_u32()).collect();
        assert_eq!(got, [3_992_670_690, 3_823_185_381, 1_358_822_685]);
    }

    #[test]
    fn outputs_after_the_first_regeneration_match_the_reference_generator() {
        // mt19937ar.c's reference output for init_genrand(5489) (the C++ std::mt19937 default
        // seed): the 10000th output is 4123659995 (C++11 [rand.predef]).
        let mut rs = RandomState::new(5489);
        let out = (0..10_000).map(|_| rs.next_u32()).last();
        assert_eq!(out, Some(4_123_659_995));
    }
    // Golden values from numpy 2.4.6 (legacy RandomState; /tmp venv, not part of the build):
    //   rs = np.random.RandomState(7)
    //   rs.choice(10, 8, replace=True)   -> [4, 9, 6, 3, 3, 7, 7, 9]
    //   rs.choice(10, 4, replace=False)  -> [9, 3, 4, 0]
    //   a = np.arange(9); rs.shuffle(a)  -> [1, 5, 2, 6, 3, 8, 4, 7, 0]
    //   rs.random_sample()               -> 0.9095935277196137
    //   rs.uniform(-2.0, 3.0)            -> -0.9330732321004225
    //   rs.randint(-5, 100)              -> 64
    #[test]
    fn a_sequence_of_draws_matches_numpy() {
        let mut rs = RandomState::new(7);
        assert_eq!(
            rs.choice_with_replacement(10, 8).unwrap(),
            [4, 9, 6, 3, 3, 7, 7, 9]
        );
        assert_eq!(rs.choice_without_replacement(10, 4).unwrap(), [9, 3, 4, 0]);
        let mut items: Vec<u32> = (0..9).collect();
        rs.shuffle(&mut items);
        assert_eq!(items, [1, 5, 2, 6, 3, 8, 4, 7, 0]);
        assert_eq!(rs.random_sample(), 0.909_593_527_719_613_7);
        assert_eq!(rs.uniform(-2.0, 3.0), -0.933_073_232_100_422_5);
        assert_eq!(rs.randint(-5, 100), Ok(64));
    }

    // numpy: np.random.RandomState(1234).choice(100000, 5, replace=True)
    //   -> [92975, 58067, 34086, 60620, 89460]   (the fingerprint's sampling call)
    #[test]
    fn fingerprint_sampling_matches_numpy() {
        let mut rs = RandomState::new(1234);
        assert_eq!(
            rs.choice_with_replacement(100_000, 5).unwrap(),
            [92_975, 58_067, 34_086, 60_620, 89_460]
        );
    }

    // numpy: rs = np.random.RandomState(3); rs.randint(0, 2**40), rs.randint(0, 2**40)
    //   -> 455570294424, 1073054410371   (ranges above 2^32 draw 64-bit values)
    #[test]
    fn ranges_wider_than_32_bits_draw_64_bit_values() {
        let mut rs = RandomState::new(3);
        assert_eq!(rs.randint(0, 1 << 40), Ok(455_570_294_424));
        assert_eq!(rs.randint(0, 1 << 40), Ok(1_073_054_410_371));
    }

    #[test]
    fn requests_numpy_rejects_are_errors() {
        let mut rs = RandomState::new(0);
        assert_eq!(
            rs.choice_with_replacement(0, 1),
            Err(RngError::EmptyPopulation { n_samples: 1 })
        );
        assert_eq!(rs.choice_with_replacement(0, 0), Ok(vec![]));
        assert_eq!(
            rs.choice_without_replacement(3, 4),
            Err(RngError::SampleLargerThanPopulation {
                n_samples: 4,
                population: 3
            })
        );
        assert_eq!(
            rs.randint(2, 2),
            Err(RngError::EmptyRange { low: 2, high: 2 })
        );
    }

    #[test]
    fn a_range_of_one_value_consumes_no_output() {
        let mut a = RandomState::new(42);
        let mut b = RandomState::new(42);
        assert_eq!(a.bounded(0), 0);
        assert_eq!(a.next_u32(), b.next_u32());
    }
}
