//! `nn.Dropout(p)`: inverted dropout with masks from our own seeded RNG, so
//! a training run can be replayed exactly (candle's CPU RNG cannot be seeded).

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ModelError;

/// The dropout layer at `classifier.{index}`, dropping with probability `p`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dropout {
    /// Its torchvision index: the stream its masks are drawn from.
    pub(crate) index: usize,
    /// Drop probability.
    pub(crate) p: f32,
}

impl Dropout {
    /// The training-mode forward pass with this step's masks, drawn from `seed`.
    pub(crate) fn forward(&self, x: &Tensor, seed: u64) -> Result<Tensor, ModelError> {
        dropout(x, self.p, seed, self.index as u64)
    }
}

/// PyTorch's `F.dropout(x, p, training=True)`: each element is zeroed with
/// probability `p`, the kept ones are scaled by `1/(1-p)`.
///
/// The mask is drawn on the host from ChaCha8 seeded with `seed`, on stream
/// `layer` (the torchvision index of the dropout layer), so that the two
/// dropout layers of one step draw independent masks.
fn dropout(x: &Tensor, p: f32, seed: u64, layer: u64) -> Result<Tensor, ModelError> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return Ok(x.zeros_like()?);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(layer);
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { scale })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    Ok(x.mul(&mask)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn same_seed_same_mask_and_inverted_scale() -> Result<(), ModelError> {
        let x = Tensor::ones((4, 1000), candle_core::DType::F32, &Device::Cpu)?;
        let a = dropout(&x, 0.5, 7, 2)?.flatten_all()?.to_vec1::<f32>()?;
        let b = dropout(&x, 0.5, 7, 2)?.flatten_all()?.to_vec1::<f32>()?;
        let c = dropout(&x, 0.5, 7, 5)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|&v| v == 0.0 || v == 2.0));
        let kept = a.iter().filter(|&&v| v == 2.0).count();
        assert!((1800..2200).contains(&kept), "kept {kept} of 4000");
        Ok(())
    }
}
