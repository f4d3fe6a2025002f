//! Initial values of a new network or a new head, drawn as torchvision and
//! PyTorch draw them, from our seeded RNG.

use candle_core::{Device, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::layers::{TensorRole, TensorSpec};
use crate::ModelError;

/// The value `VGG._initialize_weights` gives a tensor (torchvision
/// `models/vgg.py`): conv weights Kaiming normal (fan_out, ReLU gain), linear
/// weights N(0, 0.01), batch-norm weights and running variances 1, the rest 0.
pub(crate) fn initial_value(
    spec: &TensorSpec,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<Var, ModelError> {
    let n: usize = spec.shape.iter().product();
    let data: Vec<f32> = match spec.role {
        TensorRole::ConvWeight => {
            let fan_out = (spec.shape[0] * spec.shape[2] * spec.shape[3]) as f64;
            let std = (2.0 / fan_out).sqrt();
            (0..n).map(|_| normal(rng, std)).collect()
        }
        TensorRole::LinearWeight | TensorRole::HeadWeight => {
            (0..n).map(|_| normal(rng, 0.01)).collect()
        }
        TensorRole::BnWeight | TensorRole::BnRunningVar => vec![1.0; n],
        TensorRole::BnCounter => return Ok(Var::from_vec(vec![0i64], (), device)?),
        _ => vec![0.0; n],
    };
    Ok(Var::from_vec(data, spec.shape.as_slice(), device)?)
}

/// A `Linear(hidden, num_classes)` weight and bias as PyTorch's `nn.Linear.reset_parameters`
/// draws them: `kaiming_uniform_(a=sqrt(5))` on the weight is uniform ±1/sqrt(fan_in),
/// the bias uniform ±1/sqrt(fan_in). Weight first, then bias, from one stream.
pub(crate) fn new_head_vars(
    hidden: usize,
    num_classes: usize,
    seed: u64,
    device: &Device,
) -> Result<(Var, Var), ModelError> {
    let bound = 1.0 / (hidden as f64).sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w: Vec<f32> = (0..num_classes * hidden)
        .map(|_| uniform(&mut rng, bound))
        .collect();
    let b: Vec<f32> = (0..num_classes).map(|_| uniform(&mut rng, bound)).collect();
    Ok((
        Var::from_vec(w, (num_classes, hidden), device)?,
        Var::from_vec(b, num_classes, device)?,
    ))
}

/// Draws from N(0, std²) by Box-Muller (rand 0.9 has no normal distribution without rand_distr).
fn normal(rng: &mut ChaCha8Rng, std: f64) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1], keeps ln finite
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
}

/// Uniform in `[-bound, bound)`.
fn uniform(rng: &mut ChaCha8Rng, bound: f64) -> f32 {
    ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32
}
