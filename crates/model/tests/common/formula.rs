//! The deterministic weights and inputs that `tools/golden/model.py` computes
//! too, so golden fixtures need store only outputs. Keep the two in step.

use candle_core::{DType, Device, Tensor};

/// `n` values uniform in [-1, 1) from the splitmix64 finaliser of `(k, i)`;
/// integer-only so Python and Rust agree bit for bit.
pub fn hash_uniform(k: u64, n: usize) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let mut z = i.wrapping_add((k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            2.0 * ((z >> 40) as f64 / (1u64 << 24) as f64) - 1.0
        })
        .collect()
}

/// Entry `k` of the state dict, named `name`, of shape `shape`.
pub fn formula_tensor(k: usize, name: &str, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    if name.ends_with("num_batches_tracked") {
        return Tensor::zeros(shape, DType::I64, &Device::Cpu).expect("zeros");
    }
    let s = hash_uniform(k as u64, n);
    let v: Vec<f32> = if shape.len() >= 2 {
        let fan_in: usize = shape[1..].iter().product();
        let scale = (6.0 / fan_in as f64).sqrt();
        s.iter().map(|x| (x * scale) as f32).collect()
    } else if name.ends_with("running_var") {
        s.iter().map(|x| (1.0 + 0.5 * x * x) as f32).collect()
    } else if name.ends_with("weight") {
        s.iter().map(|x| (1.0 + 0.1 * x) as f32).collect()
    } else {
        s.iter().map(|x| (0.1 * x) as f32).collect()
    };
    Tensor::from_vec(v, shape, &Device::Cpu).expect("formula tensor")
}

/// The formula's state dict for a layout (torchvision names, state-dict order).
pub fn formula_state_dict(layout: &[(String, Vec<usize>)]) -> Vec<(String, Tensor)> {
    layout
        .iter()
        .enumerate()
        .map(|(k, (name, shape))| (name.clone(), formula_tensor(k, name, shape)))
        .collect()
}

/// An input batch of `shape` from stream `stream` (1000 for images), values in ±1.5.
pub fn formula_input(shape: &[usize], stream: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = hash_uniform(stream, n)
        .iter()
        .map(|x| (x * 1.5) as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).expect("formula input")
}
