//! Where every random number of the pipeline comes from: streams keyed by
//! (seed, epoch, dataset index), so results do not depend on thread count,
//! scheduling or batch composition.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Distinguishes the per-sample streams from the shuffle stream.
const SAMPLE_STREAM: u64 = 0x5341_4d50_4c45; // "SAMPLE"
const SHUFFLE_STREAM: u64 = 0x5348_5546_464c; // "SHUFFL"

fn keyed(seed: u64, epoch: u64, index: u64, stream: u64) -> ChaCha8Rng {
    // The ChaCha key holds the four words verbatim: distinct tuples give
    // independent streams without any hashing collisions.
    let mut key = [0u8; 32];
    for (chunk, word) in key.chunks_exact_mut(8).zip([seed, epoch, index, stream]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// The random stream of dataset image `index` in `epoch` (crop offsets,
/// flips). Not PyTorch's generator: torchvision's draws cannot be reproduced
/// outside PyTorch, only their distribution.
pub fn sample_rng(seed: u64, epoch: u64, index: usize) -> ChaCha8Rng {
    keyed(seed, epoch, index as u64, SAMPLE_STREAM)
}

/// Shuffles `order` in place with the permutation of (seed, epoch).
pub fn shuffle(order: &mut [usize], seed: u64, epoch: u64) {
    order.shuffle(&mut keyed(seed, epoch, 0, SHUFFLE_STREAM));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_differ_by_each_key_part_and_repeat_for_equal_keys() {
        let draw = |mut r: ChaCha8Rng| r.random::<u64>();
        let base = draw(sample_rng(1, 2, 3));
        assert_eq!(base, draw(sample_rng(1, 2, 3)));
        assert_ne!(base, draw(sample_rng(0, 2, 3)));
        assert_ne!(base, draw(sample_rng(1, 0, 3)));
        assert_ne!(base, draw(sample_rng(1, 2, 0)));
    }

    #[test]
    fn shuffle_is_a_permutation_that_changes_per_epoch() {
        let mut a: Vec<usize> = (0..100).collect();
        let mut b = a.clone();
        shuffle(&mut a, 7, 0);
        shuffle(&mut b, 7, 1);
        assert_ne!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }
}
