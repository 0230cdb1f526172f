//! Matrix products through candle's CPU matmul (the `gemm` crate: AVX2/FMA
//! micro-kernels picked at run time, rayon-parallel), reached safely through
//! [`Tensor::matmul`].

use candle_core::{CpuStorage, Device, Layout, Result, Storage, Tensor};

/// `lhs (B, M, K) @ rhs (B, K, N)`, `rhs` given as a row-major buffer, into a
/// contiguous `(B, M, N)` tensor. `lhs` is `(M, K)` when `batch == 1`.
pub(crate) fn matmul(
    lhs: &Tensor,
    rhs: Vec<f32>,
    batch: usize,
    k: usize,
    n: usize,
) -> Result<Tensor> {
    let rhs = if lhs.rank() == 2 {
        Tensor::from_vec(rhs, (k, n), &Device::Cpu)?
    } else {
        Tensor::from_vec(rhs, (batch, k, n), &Device::Cpu)?
    };
    lhs.matmul(&rhs)
}

/// The f32 CPU buffer of a contiguous tensor's storage.
pub(crate) fn f32_slice<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::msg("fused conv: matmul result is not contiguous"))?;
    match storage {
        Storage::Cpu(CpuStorage::F32(data)) => Ok(&data[start..end]),
        _ => Err(candle_core::Error::msg(
            "fused conv: matmul result is not f32 on the CPU",
        )),
    }
}

/// Runs `f` on the f32 CPU buffer of a contiguous tensor.
pub(crate) fn with_f32_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    Ok(f(f32_slice(&storage, layout)?))
}
