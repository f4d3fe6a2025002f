//! Measures loading a full-size VGG16 safetensors file (528 MB).
//!
//! ```text
//! cargo run --release -p finetune-model --example load_vgg16 -- --generate /tmp/vgg16.safetensors
//! /usr/bin/time -v target/release/examples/load_vgg16 /tmp/vgg16.safetensors
//! ```
//! `--generate` writes torchvision's vgg16 (1000 classes) with the golden
//! tests' formula weights, through `Vgg::save_safetensors`; the plain run
//! loads it for a 10-class network (so the head is replaced, as in the
//! recipe) and prints the time the load took; `--resave IN OUT` loads for 10
//! classes and saves, for checking with `tools/golden/model.py --check-saved OUT 10`.

// The input helper of the shared formula is only used by the tests.
#[allow(dead_code)]
#[path = "../tests/common/formula.rs"]
mod formula;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use finetune_model::{Vgg, VggConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, path] if flag == "--generate" => {
            let config = VggConfig::vgg16(1000);
            let tensors = formula::formula_state_dict(&Vgg::state_dict_layout(&config));
            let (vgg, _) = Vgg::from_named_tensors(tensors, config, &Device::Cpu)?;
            vgg.save_safetensors(&PathBuf::from(path))?;
            println!("wrote {path}");
        }
        [flag, path, out] if flag == "--resave" => {
            // Load for 10 classes (new head) and save: the file a fine-tuning run writes.
            let (vgg, report) =
                Vgg::load(&PathBuf::from(path), VggConfig::vgg16(10), &Device::Cpu)?;
            vgg.save_safetensors(&PathBuf::from(out))?;
            println!("{report}; wrote {out}");
        }
        [path] => {
            let start = Instant::now();
            let (vgg, report) =
                Vgg::load(&PathBuf::from(path), VggConfig::vgg16(10), &Device::Cpu)?;
            let elapsed = start.elapsed();
            let params: usize = vgg
                .named_parameters()
                .iter()
                .map(|(_, v)| v.elem_count())
                .sum();
            println!(
                "loaded {params} parameters in {:.3} s: {report}",
                elapsed.as_secs_f64()
            );
        }
        _ => return Err("usage: load_vgg16 [--generate] PATH | --resave PATH OUT".into()),
    }
    Ok(())
}
