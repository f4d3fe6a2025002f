//! `adaptive_avg_pool2d` to 7x7 against PyTorch, forward and backward, for
//! up-sampling (3x3), down-sampling (5x5 is neither), identity (7x7) and
//! non-square inputs. Tolerance 1e-6 of scale: each output is a mean of at most
//! a few f32 values, so only the last bits can differ.

mod common;

use candle_core::Var;
use common::formula::formula_input;
use common::{assert_close, golden};
use finetune_model::adaptive_avg_pool2d;

#[test]
fn adaptive_pool_matches_pytorch_forward_and_backward() {
    let gold = golden();
    for (tag, shape) in [
        ("pool3", [2, 3, 3, 3]),
        ("pool5", [1, 2, 5, 5]),
        ("pool7", [1, 2, 7, 7]),
        ("pool4x9", [2, 2, 4, 9]),
        ("pool10x13", [1, 1, 10, 13]),
    ] {
        let x = Var::from_tensor(&formula_input(&shape, 2000)).unwrap();
        let y = adaptive_avg_pool2d(x.as_tensor(), 7, 7).unwrap();
        assert_close(&y, &gold[&format!("{tag}.y")], 1e-6, tag);
        let g = formula_input(y.dims(), 3000);
        let grads = (y * g).unwrap().sum_all().unwrap().backward().unwrap();
        let dx = grads
            .get(x.as_tensor())
            .expect("gradient reaches the input");
        assert_close(dx, &gold[&format!("{tag}.dx")], 1e-6, tag);
    }
}
