//! What the in-place CPU updates share: which tensors qualify, and their
//! f32 slices inside a candle custom op.

use candle_core::{CpuStorage, DType, Layout, Tensor};

/// Whether `t` can be updated in place here: f32, on the CPU, contiguous.
pub(super) fn eligible(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous()
}

/// The f32 values of a contiguous tensor's storage.
pub(super) fn slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
        candle_core::Error::Msg("in-place update needs contiguous tensors".into())
    })?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// The f32 values of a contiguous tensor's storage, to rewrite.
pub(super) fn slice_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a mut [f32]> {
    let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
        candle_core::Error::Msg("in-place update needs contiguous tensors".into())
    })?;
    match storage {
        CpuStorage::F32(v) => Ok(&mut v[start..end]),
        _ => Err(candle_core::Error::Msg("in-place update needs f32".into())),
    }
}
