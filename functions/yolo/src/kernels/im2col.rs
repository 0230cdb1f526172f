//! The general path: im2col into a `(C/g * KH * KW, N * H' * W')` matrix, one
//! GEMM per group with the `(O/g, C/g * KH * KW)` weights, then the fused
//! bias + activation pass that writes NCHW directly (the GEMM's rows are
//! output channels, its columns output pixels, so no transpose is needed).

use candle_core::Result;
use rayon::prelude::*;

use super::epilogue::bias_activate;
use super::fused_conv::{FusedConv2d, Geometry};
use super::gemm::{matmul, with_f32_slice};

/// Bytes of im2col matrix per GEMM call: the column block is sized so that
/// one block stays in the L2 cache between im2col and the GEMM's packing.
const BLOCK_BYTES: usize = 1 << 20;

/// Runs the convolution on `input` (contiguous NCHW) into a new NCHW buffer.
pub(crate) fn forward(conv: &FusedConv2d, input: &[f32], geo: &Geometry) -> Result<Vec<f32>> {
    let (kh, kw) = conv.kernel;
    let cg = conv.in_per_group;
    let og = conv.out_channels / conv.groups;
    let plane = geo.ho * geo.wo;
    let in_plane = geo.h * geo.w;
    let cols = geo.n * plane;
    let rows = cg * kh * kw;
    let block = (BLOCK_BYTES / 4 / rows).next_multiple_of(64).max(256);
    let mut out = vec![0f32; geo.n * conv.out_channels * plane];
    for g in 0..conv.groups {
        for first in (0..cols).step_by(block) {
            let len = block.min(cols - first);
            let mut b = vec![0f32; rows * len];
            b.par_chunks_mut(len).enumerate().for_each(|(r, row)| {
                let c = g * cg + r / (kh * kw);
                let (ky, kx) = ((r / kw) % kh, r % kw);
                let mut col = first;
                while col < first + len {
                    let (img, pixel) = (col / plane, col % plane);
                    let end = (first + len).min((img + 1) * plane);
                    let start = (img * geo.c + c) * in_plane;
                    let src = &input[start..start + in_plane];
                    fill_range(
                        &mut row[col - first..end - first],
                        src,
                        pixel,
                        geo,
                        conv,
                        ky,
                        kx,
                    );
                    col = end;
                }
            });
            let m = matmul(&conv.gemm_weights[g], b, 1, rows, len)?;
            with_f32_slice(&m, |m| {
                out.par_chunks_mut(plane)
                    .enumerate()
                    .filter(|(idx, _)| {
                        let (img, oc) = (idx / conv.out_channels, idx % conv.out_channels);
                        oc / og == g && img * plane < first + len && (img + 1) * plane > first
                    })
                    .for_each(|(idx, dst)| {
                        let (img, oc) = (idx / conv.out_channels, idx % conv.out_channels);
                        let lo = first.max(img * plane);
                        let hi = (first + len).min((img + 1) * plane);
                        let src = &m[(oc - g * og) * len + lo - first..][..hi - lo];
                        let dst = &mut dst[lo - img * plane..hi - img * plane];
                        bias_activate(dst, src, conv.bias[oc], conv.activation);
                    });
            })?;
        }
    }
    Ok(out)
}

/// Fills `dst` with one im2col row for the output pixels `pixel..pixel + dst.len()`
/// of one image: `x[oy*s + ky - p][ox*s + kx - p]`, zero outside the input.
fn fill_range(
    dst: &mut [f32],
    src: &[f32],
    pixel: usize,
    geo: &Geometry,
    conv: &FusedConv2d,
    ky: usize,
    kx: usize,
) {
    let (s, p) = (conv.stride, conv.padding);
    // Output columns whose input column `ox*s + kx - p` lies in [0, w).
    let lo = p.saturating_sub(kx).div_ceil(s).min(geo.wo);
    let hi = (geo.w + p).saturating_sub(kx).div_ceil(s).clamp(lo, geo.wo);
    let mut done = 0;
    while done < dst.len() {
        let (oy, x0) = ((pixel + done) / geo.wo, (pixel + done) % geo.wo);
        let x1 = geo.wo.min(x0 + dst.len() - done);
        let d = &mut dst[done..done + (x1 - x0)];
        done += x1 - x0;
        let iy = (oy * s + ky) as isize - p as isize;
        if iy < 0 || iy >= geo.h as isize {
            d.fill(0.0);
            continue;
        }
        let srow = &src[iy as usize * geo.w..][..geo.w];
        let (a, b) = (lo.clamp(x0, x1), hi.clamp(x0, x1));
        d[..a - x0].fill(0.0);
        d[b - x0..].fill(0.0);
        if b > a {
            let first = a * s + kx - p;
            let d = &mut d[a - x0..b - x0];
            if s == 1 {
                d.copy_from_slice(&srow[first..first + (b - a)]);
            } else {
                for (v, x) in d.iter_mut().zip(srow[first..].iter().step_by(s)) {
                    *v = *x;
                }
            }
        }
    }
}
