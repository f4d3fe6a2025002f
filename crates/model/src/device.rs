//! Choosing where to compute by name, as a command line says it: `auto`,
//! `cpu`, `cuda`, `cuda:N` or `metal`.

use candle_core::Device;

use crate::ModelError;

/// The device `spec` names: `auto` (CUDA, then Metal, when this build has
/// them and the machine too; else the CPU), `cpu`, `cuda` (`cuda:0`),
/// `cuda:N` or `metal`. A device this build lacks is refused, saying which
/// cargo feature brings it.
pub fn select_device(spec: &str) -> Result<Device, ModelError> {
    let fail = |message: String| ModelError::Device {
        spec: spec.to_string(),
        message,
    };
    let rebuild = |feature: &str| {
        format!("this build has no {feature} support; rebuild with `--features {feature}` or use --device cpu")
    };
    match spec {
        "auto" => {
            if candle_core::utils::cuda_is_available() {
                Device::new_cuda(0).map_err(|e| fail(e.to_string()))
            } else if candle_core::utils::metal_is_available() {
                Device::new_metal(0).map_err(|e| fail(e.to_string()))
            } else {
                Ok(Device::Cpu)
            }
        }
        "cpu" => Ok(Device::Cpu),
        "metal" => {
            if !candle_core::utils::metal_is_available() {
                return Err(fail(rebuild("metal")));
            }
            Device::new_metal(0).map_err(|e| fail(e.to_string()))
        }
        _ => {
            let ordinal = match spec.strip_prefix("cuda") {
                Some("") => 0,
                Some(n) => n
                    .strip_prefix(':')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| fail("use cuda or cuda:N, e.g. cuda:1".into()))?,
                None => return Err(fail("use auto, cpu, cuda, cuda:N or metal".into())),
            };
            if !candle_core::utils::cuda_is_available() {
                return Err(fail(rebuild("cuda")));
            }
            Device::new_cuda(ordinal).map_err(|e| fail(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(matches!(select_device("cpu"), Ok(Device::Cpu)));
        assert!(select_device("auto").is_ok());
        let err = select_device("tpu").unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");
        let err = select_device("cuda:x").unwrap_err().to_string();
        assert!(err.contains("cuda:1"), "{err}");
    }
}
