//! Winograd F(4x4, 3x3) for stride-1 3x3 convolutions (Lavin & Gray, 2015).
//!
//! Each 4x4 block of outputs comes from a 6x6 input tile: `Y = Aᵀ [U ⊙ V] A`
//! with `U = G g Gᵀ` (the filter, transformed once at load) and `V = Bᵀ d B`
//! (the tile). Summed over input channels, the 36 element-wise products become
//! 36 independent GEMMs `M[ξ] = U[ξ] (O/g × C/g) · V[ξ] (C/g × tiles)`: 36
//! multiplies per 16 outputs instead of 144, a 4x cut of the dominant work.

use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

use super::epilogue::bias_activate;
use super::fused_conv::{FusedConv2d, Geometry};
use super::gemm::{f32_slice, matmul};

/// Output block edge.
const M: usize = 4;
/// Input tile edge: `M + 3 - 1`.
const T: usize = 6;
/// Transform-domain points per tile.
const POINTS: usize = T * T;

/// `Bᵀ x` for one 6-vector.
#[inline(always)]
fn input_1d(x: [f32; T]) -> [f32; T] {
    [
        4.0 * x[0] - 5.0 * x[2] + x[4],
        -4.0 * (x[1] + x[2]) + x[3] + x[4],
        4.0 * (x[1] - x[2]) - x[3] + x[4],
        2.0 * (x[3] - x[1]) - x[2] + x[4],
        2.0 * (x[1] - x[3]) - x[2] + x[4],
        4.0 * x[1] - 5.0 * x[3] + x[5],
    ]
}

/// `Aᵀ x` for one 6-vector.
#[inline(always)]
fn output_1d(x: [f32; T]) -> [f32; M] {
    let (a, b) = (x[1] + x[2], x[1] - x[2]);
    let (c, d) = (x[3] + x[4], x[3] - x[4]);
    [x[0] + a + c, b + 2.0 * d, a + 4.0 * c, b + 8.0 * d + x[5]]
}

/// `G g` for one 3-vector, in f64 (done once per filter).
fn filter_1d(g: [f64; 3]) -> [f64; T] {
    [
        g[0] / 4.0,
        -(g[0] + g[1] + g[2]) / 6.0,
        -(g[0] - g[1] + g[2]) / 6.0,
        g[0] / 24.0 + g[1] / 12.0 + g[2] / 6.0,
        g[0] / 24.0 - g[1] / 12.0 + g[2] / 6.0,
        g[2],
    ]
}

/// Transforms `(O, C/g, 3, 3)` weights into one `(36, O/g, C/g)` tensor per group.
pub(crate) fn transform_weights(
    weight: &[f32],
    out: usize,
    cg: usize,
    groups: usize,
) -> Result<Vec<Tensor>> {
    let og = out / groups;
    (0..groups)
        .map(|g| {
            let mut u = vec![0f32; POINTS * og * cg];
            for o in 0..og {
                for c in 0..cg {
                    let k = &weight[((g * og + o) * cg + c) * 9..][..9];
                    let mut cols = [[0f64; T]; 3];
                    for (j, col) in cols.iter_mut().enumerate() {
                        *col = filter_1d([k[j] as f64, k[3 + j] as f64, k[6 + j] as f64]);
                    }
                    for i in 0..T {
                        let row = filter_1d([cols[0][i], cols[1][i], cols[2][i]]);
                        for (j, v) in row.iter().enumerate() {
                            u[((i * T + j) * og + o) * cg + c] = *v as f32;
                        }
                    }
                }
            }
            Tensor::from_vec(u, (POINTS, og, cg), &Device::Cpu)
        })
        .collect()
}

/// Runs the convolution on `input` (contiguous NCHW) into a new NCHW buffer.
pub(crate) fn forward(conv: &FusedConv2d, input: &[f32], geo: &Geometry) -> Result<Vec<f32>> {
    let cg = conv.in_per_group;
    let og = conv.out_channels / conv.groups;
    let (tiles_y, tiles_x) = (geo.ho.div_ceil(M), geo.wo.div_ceil(M));
    let per_image = tiles_y * tiles_x;
    let tiles = geo.n * per_image;
    let plane = geo.ho * geo.wo;
    let in_plane = geo.h * geo.w;

    let mut products = Vec::with_capacity(conv.groups);
    for g in 0..conv.groups {
        // V laid out (36, C/g, tiles); each channel's task owns its 36 rows.
        let mut v = vec![0f32; POINTS * cg * tiles];
        let mut by_channel: Vec<Vec<&mut [f32]>> =
            (0..cg).map(|_| Vec::with_capacity(POINTS)).collect();
        for point in v.chunks_exact_mut(cg * tiles) {
            for (c, row) in point.chunks_exact_mut(tiles).enumerate() {
                by_channel[c].push(row);
            }
        }
        by_channel
            .into_par_iter()
            .enumerate()
            .for_each(|(c, mut rows)| {
                for img in 0..geo.n {
                    let start = (img * geo.c + g * cg + c) * in_plane;
                    let x = &input[start..start + in_plane];
                    for ty in 0..tiles_y {
                        for tx in 0..tiles_x {
                            let d = load_tile(x, geo, conv.padding, ty * M, tx * M);
                            let mut cols = [[0f32; T]; T];
                            for j in 0..T {
                                let r = input_1d([
                                    d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j],
                                ]);
                                for i in 0..T {
                                    cols[i][j] = r[i];
                                }
                            }
                            let t = img * per_image + ty * tiles_x + tx;
                            for i in 0..T {
                                let r = input_1d(cols[i]);
                                for j in 0..T {
                                    rows[i * T + j][t] = r[j];
                                }
                            }
                        }
                    }
                }
            });
        products.push(matmul(&conv.winograd_weights[g], v, POINTS, cg, tiles)?);
    }

    let mut out = vec![0f32; geo.n * conv.out_channels * plane];
    let guards: Vec<_> = products.iter().map(Tensor::storage_and_layout).collect();
    let ms = guards
        .iter()
        .map(|(storage, layout)| f32_slice(storage, layout))
        .collect::<Result<Vec<_>>>()?;
    {
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(idx, dst)| {
                let (img, oc) = (idx / conv.out_channels, idx % conv.out_channels);
                let (g, o) = (oc / og, oc % og);
                let m = ms[g];
                let mut block = [0f32; M * M];
                for ty in 0..tiles_y {
                    for tx in 0..tiles_x {
                        let t = img * per_image + ty * tiles_x + tx;
                        let mut cols = [[0f32; T]; M];
                        for j in 0..T {
                            let mut x = [0f32; T];
                            for (i, v) in x.iter_mut().enumerate() {
                                *v = m[((i * T + j) * og + o) * tiles + t];
                            }
                            let r = output_1d(x);
                            for i in 0..M {
                                cols[i][j] = r[i];
                            }
                        }
                        for i in 0..M {
                            let r = output_1d(cols[i]);
                            block[i * M..(i + 1) * M].copy_from_slice(&r);
                        }
                        let (y0, x0) = (ty * M, tx * M);
                        let w = M.min(geo.wo - x0);
                        for i in 0..M.min(geo.ho - y0) {
                            let row = (y0 + i) * geo.wo + x0;
                            bias_activate(
                                &mut dst[row..row + w],
                                &block[i * M..i * M + w],
                                conv.bias[oc],
                                conv.activation,
                            );
                        }
                    }
                }
            });
    }
    Ok(out)
}

/// Reads the 6x6 input tile whose output block starts at `(y0, x0)`, zero outside the image.
#[inline(always)]
fn load_tile(x: &[f32], geo: &Geometry, padding: usize, y0: usize, x0: usize) -> [[f32; T]; T] {
    let mut d = [[0f32; T]; T];
    let (iy0, ix0) = (
        y0 as isize - padding as isize,
        x0 as isize - padding as isize,
    );
    if iy0 >= 0 && ix0 >= 0 && iy0 as usize + T <= geo.h && ix0 as usize + T <= geo.w {
        let (iy0, ix0) = (iy0 as usize, ix0 as usize);
        for (i, row) in d.iter_mut().enumerate() {
            row.copy_from_slice(&x[(iy0 + i) * geo.w + ix0..][..T]);
        }
        return d;
    }
    for (i, row) in d.iter_mut().enumerate() {
        let iy = iy0 + i as isize;
        if iy < 0 || iy >= geo.h as isize {
            continue;
        }
        for (j, v) in row.iter_mut().enumerate() {
            let ix = ix0 + j as isize;
            if ix >= 0 && ix < geo.w as isize {
                *v = x[iy as usize * geo.w + ix as usize];
            }
        }
    }
    d
}
