//! Test-time augmentation: the mean softmax over several views of each
//! image (fastai's `tta`, torchvision's `TenCrop`), made from a normalised
//! batch on any device.

use std::fmt;

use candle_core::{DType, Tensor};
use finetune_model::{Mode, Vgg};

use crate::Result;

/// Which views of each image are averaged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tta {
    /// The image alone (no test-time augmentation).
    None,
    /// The image and its horizontal flip.
    Flip,
    /// The five crops of the image padded by `padding` pixels (as
    /// `RandomCrop(size, padding)` pads it: the four corners and the centre,
    /// which is the image itself), each as it is and flipped: ten views.
    Crops {
        /// Pixels of padding on each side (the recipe's RandomCrop: 4).
        padding: usize,
        /// Each channel's value of a padding pixel after normalisation: a
        /// black pixel, `(0 - mean) / std`.
        fill: [f32; 3],
    },
}

impl Tta {
    /// How many views each image gets.
    pub fn views(&self) -> usize {
        match self {
            Tta::None => 1,
            Tta::Flip => 2,
            Tta::Crops { .. } => 10,
        }
    }

    /// The views of a normalised batch `[N, 3, H, W]`, each of its shape.
    pub fn view_batches(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let crops = match *self {
            Tta::None => return Ok(vec![x.clone()]),
            Tta::Flip => vec![x.clone()],
            Tta::Crops { padding, fill } => padded_crops(x, padding, fill)?,
        };
        let mut views = Vec::with_capacity(2 * crops.len());
        for crop in crops {
            views.push(flip(&crop)?);
            views.push(crop);
        }
        Ok(views)
    }

    /// The mean over the views of the softmax of `model`'s logits in eval
    /// mode: `[N, num_classes]`.
    pub fn probabilities(&self, model: &Vgg, x: &Tensor) -> Result<Tensor> {
        let mut sum: Option<Tensor> = None;
        let views = self.view_batches(x)?;
        let count = views.len();
        for view in views {
            let logits = model.forward_t(&view, &Mode::Eval)?;
            let probs = candle_nn::ops::softmax_last_dim(&logits)?;
            sum = Some(match sum {
                Some(s) => s.add(&probs)?,
                None => probs,
            });
        }
        let sum = sum.expect("at least one view");
        Ok(sum.affine(1.0 / count as f64, 0.0)?)
    }
}

impl fmt::Display for Tta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tta::None => f.write_str("no test-time augmentation"),
            Tta::Flip => f.write_str(
                "test-time augmentation: mean softmax over 2 views (the image and its horizontal flip)",
            ),
            Tta::Crops { padding, .. } => write!(
                f,
                "test-time augmentation: mean softmax over 10 views (the 4 corner and the centre crops \
                 of the image padded by {padding} pixels, each also flipped)"
            ),
        }
    }
}

/// `x` mirrored left to right (`torch.flip(x, [3])`).
fn flip(x: &Tensor) -> Result<Tensor> {
    let w = x.dim(3)?;
    let reversed: Vec<u32> = (0..w as u32).rev().collect();
    let index = Tensor::from_vec(reversed, w, x.device())?;
    Ok(x.index_select(&index, 3)?)
}

/// The centre and the four corner crops of `x` padded by `p` pixels of `fill`.
fn padded_crops(x: &Tensor, p: usize, fill: [f32; 3]) -> Result<Vec<Tensor>> {
    let (n, c, h, w) = x.dims4()?;
    let fill =
        Tensor::from_vec(fill.to_vec(), (1, c.min(3), 1, 1), x.device())?.to_dtype(x.dtype())?;
    let band = |rows: usize, cols: usize| -> Result<Tensor> {
        Ok(fill.broadcast_as((n, c, rows, cols))?.contiguous()?)
    };
    let sides = Tensor::cat(&[band(h, p)?, x.clone(), band(h, p)?], 3)?;
    let padded = Tensor::cat(&[band(p, w + 2 * p)?, sides, band(p, w + 2 * p)?], 2)?;
    let crop = |top: usize, left: usize| -> Result<Tensor> {
        Ok(padded.narrow(2, top, h)?.narrow(3, left, w)?.contiguous()?)
    };
    Ok(vec![
        x.clone(),
        crop(0, 0)?,
        crop(0, 2 * p)?,
        crop(2 * p, 0)?,
        crop(2 * p, 2 * p)?,
    ])
}

/// The loss and logits the metrics take from averaged probabilities: the
/// mean of `-ln p(true class)`, and `ln p` (whose ordering and softmax are
/// those of `p`).
pub(crate) fn as_logits(
    probs: &Tensor,
    labels: &[finetune_data::Label],
) -> Result<(Vec<f32>, f64)> {
    let host: Vec<f32> = probs.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let classes = probs.dim(1)?;
    let loss = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| -f64::from(host[i * classes + l as usize]).ln())
        .sum::<f64>()
        / labels.len().max(1) as f64;
    Ok((host.iter().map(|p| p.ln()).collect(), loss))
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn views_are_flips_and_padded_crops() {
        // One 1-channel... 3-channel 2x3 image with values 0..18.
        let x = Tensor::arange(0f32, 18.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 3, 2, 3))
            .unwrap();
        let flip_views = Tta::Flip.view_batches(&x).unwrap();
        assert_eq!(flip_views.len(), 2);
        let flipped: Vec<f32> = flip_views[0].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(&flipped[..6], [2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
        let crops = Tta::Crops {
            padding: 1,
            fill: [-1.0, -2.0, -3.0],
        };
        let views = crops.view_batches(&x).unwrap();
        assert_eq!(views.len(), crops.views());
        // The top-left corner crop of the padded image, unflipped: shifted
        // down and right by one, padding in the first row and column.
        let top_left: Vec<f32> = views[3].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(&top_left[..6], [-1.0, -1.0, -1.0, -1.0, 0.0, 1.0]);
        assert_eq!(&top_left[6..12], [-2.0, -2.0, -2.0, -2.0, 6.0, 7.0]);
        // The bottom-right one: shifted up and left.
        let bottom_right: Vec<f32> = views[9].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(&bottom_right[..6], [4.0, 5.0, -1.0, -1.0, -1.0, -1.0]);
        assert_eq!(views[1].dims(), x.dims());
    }

    #[test]
    fn logits_from_probabilities_keep_the_order_and_give_the_cross_entropy() {
        let p = Tensor::new(&[[0.5f32, 0.25, 0.25], [0.1, 0.2, 0.7]], &Device::Cpu).unwrap();
        let (logits, loss) = as_logits(&p, &[0, 2]).unwrap();
        assert!((loss - (-(0.5f64.ln()) - 0.7f32.ln() as f64) / 2.0).abs() < 1e-6);
        assert!(logits[0] > logits[1] && logits[5] > logits[4]);
    }
}
