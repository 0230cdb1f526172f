//! Winograd F(4x4, 3x3) for stride-1 3x3 convolutions (Lavin & Gray, 2015).
//!
//! Each 4x4 block of outputs comes from a 6x6 input tile: `Y = Aᵀ [U ⊙ V] A`
//! with `U = G g Gᵀ` (the filter, transformed once at load) and `V = Bᵀ d B`
//! (the tile). Summed over input channels, the 36 element-wise products become
//! 36 independent GEMMs `M[ξ] = U[ξ] (O/g × C/g) · V[ξ] (C/g × tiles)`: 36
//! multiplies per 16 outputs instead of 144, a 4x cut of the dominant work.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::epilogue::bias_activate;
use super::geometry::{ConvDims, Geometry};
use super::microkernel::{COLS_MULTIPLE, PackedRows, gemm};
use super::scratch::with_buffers;
use crate::activation::Activation;

/// Output block edge.
const M: usize = 4;
/// Input tile edge: `M + 3 - 1`.
const T: usize = 6;
/// Transform-domain points per tile.
const POINTS: usize = T * T;

/// Tiles transformed together: one 8-lane vector per transform value.
const L: usize = 8;
/// One value of [`L`] neighbouring tiles.
type Lanes = [f32; L];

/// `f` applied lane by lane (the compiler turns it into one vector op).
#[inline(always)]
fn lanes(f: impl Fn(usize) -> f32) -> Lanes {
    std::array::from_fn(f)
}

/// `Bᵀ x` for one 6-vector of each of [`L`] tiles.
#[inline(always)]
fn input_1d_lanes(x: &[Lanes; T]) -> [Lanes; T] {
    [
        lanes(|l| 4.0 * x[0][l] - 5.0 * x[2][l] + x[4][l]),
        lanes(|l| -4.0 * (x[1][l] + x[2][l]) + x[3][l] + x[4][l]),
        lanes(|l| 4.0 * (x[1][l] - x[2][l]) - x[3][l] + x[4][l]),
        lanes(|l| 2.0 * (x[3][l] - x[1][l]) - x[2][l] + x[4][l]),
        lanes(|l| 2.0 * (x[1][l] - x[3][l]) - x[2][l] + x[4][l]),
        lanes(|l| 4.0 * x[1][l] - 5.0 * x[3][l] + x[5][l]),
    ]
}

/// `Aᵀ x` for one 6-vector of each of [`L`] tiles.
#[inline(always)]
fn output_1d_lanes(x: &[Lanes; T]) -> [Lanes; M] {
    let a = lanes(|l| x[1][l] + x[2][l]);
    let b = lanes(|l| x[1][l] - x[2][l]);
    let c = lanes(|l| x[3][l] + x[4][l]);
    let d = lanes(|l| x[3][l] - x[4][l]);
    [
        lanes(|l| x[0][l] + a[l] + c[l]),
        lanes(|l| b[l] + 2.0 * d[l]),
        lanes(|l| a[l] + 4.0 * c[l]),
        lanes(|l| b[l] + 8.0 * d[l] + x[5][l]),
    ]
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

/// Transforms `(O, C/g, 3, 3)` weights into the packed `(O/g × C/g)`
/// matrix of every transform point, indexed `group * 36 + point`.
pub(crate) fn transform_weights(
    weight: &[f32],
    out: usize,
    cg: usize,
    groups: usize,
) -> Vec<PackedRows> {
    let og = out / groups;
    let mut packed = Vec::with_capacity(groups * POINTS);
    for g in 0..groups {
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
        packed.extend(u.chunks_exact(og * cg).map(|m| PackedRows::new(m, og, cg)));
    }
    packed
}

/// Runs the convolution on `input` (contiguous NCHW) into a new NCHW buffer,
/// with the filters of [`transform_weights`].
///
/// Three parallel passes over per-thread scratch buffers: the input
/// transform `V (group, point, C/g, tiles)` one task per input channel; the
/// 36 GEMMs per group `M (group, point, O/g, tiles) = U · V` one task per
/// point; the output transform with bias and activation one task per output
/// plane. The tile count is padded to a multiple of the micro-kernel width.
pub(crate) fn forward(
    dims: &ConvDims,
    weights: &[PackedRows],
    bias: &[f32],
    activation: Activation,
    input: &[f32],
    geo: &Geometry,
) -> Vec<f32> {
    let plane = geo.ho * geo.wo;
    let in_plane = geo.h * geo.w;
    let per_image = geo.ho.div_ceil(M) * geo.wo.div_ceil(M);
    let images_per_pass = (MAX_PASS_TILES / per_image).clamp(1, geo.n);
    let mut out = vec![0f32; geo.n * dims.out_channels * plane];
    for (input, out) in input
        .chunks(images_per_pass * geo.c * in_plane)
        .zip(out.chunks_mut(images_per_pass * dims.out_channels * plane))
    {
        let geo = Geometry {
            n: input.len() / (geo.c * in_plane),
            ..*geo
        };
        forward_pass(dims, weights, bias, activation, input, &geo, out);
    }
    out
}

/// At most this many tiles per pass (unless one image has more): a batch is
/// run a few images at a time so that `V` and `M` stay cache-sized (yolov4-tiny's
/// 104x104 layer has 676 tiles per image).
const MAX_PASS_TILES: usize = 1024;

/// [`forward`] for the images of one pass, into their part of the output.
fn forward_pass(
    dims: &ConvDims,
    weights: &[PackedRows],
    bias: &[f32],
    activation: Activation,
    input: &[f32],
    geo: &Geometry,
    out: &mut [f32],
) {
    let groups = dims.groups;
    let cg = dims.in_per_group;
    let og = dims.out_channels / groups;
    let (tiles_y, tiles_x) = (geo.ho.div_ceil(M), geo.wo.div_ceil(M));
    let per_image = tiles_y * tiles_x;
    let tiles = geo.n * per_image;
    // Room for a whole group of L tiles after the last tile start, so the
    // transforms always move full L-lane vectors (see `store`).
    let tp = (tiles + L - 1).next_multiple_of(COLS_MULTIPLE);
    let plane = geo.ho * geo.wo;

    with_buffers(
        [groups * POINTS * cg * tp, groups * POINTS * og * tp],
        |[v, m]| {
            // 1. Input transform: every (group, channel) task owns its 36 rows of V.
            let mut by_channel: Vec<Vec<&mut [f32]>> = (0..groups * cg)
                .map(|_| Vec::with_capacity(POINTS))
                .collect();
            for (gp, block) in v.chunks_exact_mut(cg * tp).enumerate() {
                let g = gp / POINTS;
                for (c, row) in block.chunks_exact_mut(tp).enumerate() {
                    by_channel[g * cg + c].push(row);
                }
            }
            by_channel
                .into_par_iter()
                .enumerate()
                .for_each(|(channel, rows)| {
                    with_buffers([scratch_len(tiles_x)], |[scratch]| {
                        Arch::new().dispatch(InputTask {
                            channel,
                            rows,
                            input,
                            geo,
                            padding: dims.padding,
                            tiles_x,
                            per_image,
                            tiles,
                            scratch,
                        })
                    })
                });

            // 2. One GEMM per (group, point): M = U (O/g × C/g) · V (C/g × tiles).
            m.par_chunks_mut(og * tp)
                .zip(v.par_chunks(cg * tp))
                .zip(weights.par_iter())
                .for_each(|((m, v), u)| gemm(u, v, tp, 0, m, tp, tp));

            // 3. Output transform + bias + activation, one task per output plane.
            let m: &[f32] = m;
            out.par_chunks_mut(plane)
                .enumerate()
                .for_each(|(idx, dst)| {
                    let (img, oc) = (idx / dims.out_channels, idx % dims.out_channels);
                    let (g, o) = (oc / og, oc % og);
                    with_buffers([scratch_len(tiles_x)], |[scratch]| {
                        Arch::new().dispatch(OutputTask {
                            points: PointRows {
                                m,
                                base: g * POINTS * og * tp + o * tp,
                                stride: og * tp,
                            },
                            geo,
                            tiles_x,
                            first: img * per_image,
                            epilogue: (bias[oc], activation),
                            dst,
                            scratch,
                        })
                    })
                });
        },
    );
}

/// The input transform of one (group, channel): its plane of every image
/// into its 36 rows of `V`, compiled for the instruction set [`Arch`] picks
/// (`inline(always)` down to the loops, see `microkernel.rs`).
struct InputTask<'a, 'r> {
    channel: usize,
    rows: Vec<&'r mut [f32]>,
    input: &'a [f32],
    geo: &'a Geometry,
    padding: usize,
    tiles_x: usize,
    per_image: usize,
    /// Real tiles of the pass; the padding tiles after them are zeroed.
    tiles: usize,
    /// [`scratch_len`] floats.
    scratch: &'r mut [f32],
}

impl WithSimd for InputTask<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let InputTask {
            channel,
            mut rows,
            input,
            geo,
            padding,
            tiles_x,
            per_image,
            tiles,
            scratch,
        } = self;
        let in_plane = geo.h * geo.w;
        for img in 0..geo.n {
            let start = (img * geo.c + channel) * in_plane;
            let x = &input[start..start + in_plane];
            let first = img * per_image;
            transform_input_plane(x, geo, padding, tiles_x, first, &mut rows, scratch);
        }
        // Padding tiles: zero, so their (discarded) GEMM columns stay finite.
        for row in &mut rows {
            row[tiles..].fill(0.0);
        }
    }
}

/// The output transform of one output plane with bias and activation,
/// compiled like [`InputTask`].
struct OutputTask<'a> {
    points: PointRows<'a>,
    geo: &'a Geometry,
    tiles_x: usize,
    /// The plane's first tile index.
    first: usize,
    epilogue: (f32, Activation),
    dst: &'a mut [f32],
    /// [`scratch_len`] floats.
    scratch: &'a mut [f32],
}

impl WithSimd for OutputTask<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let OutputTask {
            points,
            geo,
            tiles_x,
            first,
            epilogue,
            dst,
            scratch,
        } = self;
        transform_output_plane(&points, geo, tiles_x, first, epilogue, dst, scratch);
    }
}

/// Floats of transform scratch per task for a row of `tiles_x` tiles: see
/// [`transform_input_plane`] and [`transform_output_plane`].
fn scratch_len(tiles_x: usize) -> usize {
    let phase = phase_len(tiles_x);
    T * M * phase + M * phase
}

/// Length of one phase row: a value per tile, one more tile for the `j = 4,
/// 5` columns a tile shares with the next, and a whole group of slack so
/// every vector load and store is a full one.
fn phase_len(tiles_x: usize) -> usize {
    (tiles_x + 1 + L).next_multiple_of(L)
}

/// Transforms one input plane into its rows of `V` (one row per transform
/// point, indexed by tile); `first` is the plane's first tile index.
///
/// Per tile row, each of the 6 input rows is first split into its four
/// phases, `phase[c][t] = x[4t + c]` (zero outside the input), [`L`] tiles
/// at a time. Column `j` of tile `t` is then
/// `phase[j % 4][t + j / 4]`, so [`L`] tiles at a time load contiguous
/// vectors instead of gathering every fourth float.
#[inline(always)]
fn transform_input_plane(
    x: &[f32],
    geo: &Geometry,
    padding: usize,
    tiles_x: usize,
    first: usize,
    rows: &mut [&mut [f32]],
    scratch: &mut [f32],
) {
    let tiles_y = geo.ho.div_ceil(M);
    let ph = phase_len(tiles_x);
    let (phases, padded) = scratch.split_at_mut(T * M * ph);
    let padded = &mut padded[..M * ph];
    for ty in 0..tiles_y {
        for (r, phases) in phases.chunks_exact_mut(M * ph).enumerate() {
            let y = (ty * M + r) as isize - padding as isize;
            if y < 0 || y >= geo.h as isize {
                phases.fill(0.0);
                continue;
            }
            // The row shifted by the padding, zero past both ends.
            let row = &x[y as usize * geo.w..][..geo.w];
            let len = geo.w.min(padded.len() - padding);
            padded[..padding].fill(0.0);
            padded[padding..padding + len].copy_from_slice(&row[..len]);
            padded[padding + len..].fill(0.0);
            // L tiles at a time, from a fixed-size block: constant-index
            // picks the compiler turns into vector shuffles.
            let (blocks, _) = padded.as_chunks::<{ M * L }>();
            for (g, block) in blocks.iter().enumerate() {
                for c in 0..M {
                    let phase: &mut Lanes = (&mut phases[c * ph + g * L..][..L])
                        .try_into()
                        .expect("L floats");
                    *phase = lanes(|l| block[M * l + c]);
                }
            }
        }
        for tx0 in (0..tiles_x).step_by(L) {
            // d[r][j][l]: row r, column j of tile tx0 + l.
            let mut d = [[[0f32; L]; T]; T];
            for (r, dr) in d.iter_mut().enumerate() {
                let phases = &phases[r * M * ph..(r + 1) * M * ph];
                for (j, dj) in dr.iter_mut().enumerate() {
                    let start = (j % M) * ph + tx0 + j / M;
                    *dj = phases[start..start + L].try_into().expect("L floats");
                }
            }
            let mut cols = [[[0f32; L]; T]; T];
            for j in 0..T {
                let r = input_1d_lanes(&std::array::from_fn(|i| d[i][j]));
                for (i, v) in r.into_iter().enumerate() {
                    cols[i][j] = v;
                }
            }
            let t = first + ty * tiles_x + tx0;
            for (i, col) in cols.iter().enumerate() {
                let r = input_1d_lanes(col);
                for (j, v) in r.iter().enumerate() {
                    store(&mut rows[i * T + j][t..], v);
                }
            }
        }
    }
}

/// `dst[..L] = v`: one vector store even when only some of the L tiles of the
/// group are real. The extra lanes land on the tiles of the next group,
/// which the same task writes next (tiles go in increasing order), or on
/// the padding columns, which are zeroed after the last group; `tp` leaves
/// room for them.
#[inline(always)]
fn store(dst: &mut [f32], v: &Lanes) {
    let dst: &mut Lanes = (&mut dst[..L]).try_into().expect("L floats");
    *dst = *v;
}

/// `v = src[..L]`: one vector load; lanes past the group's real tiles
/// read neighbouring (finite) values that no output uses.
#[inline(always)]
fn load(v: &mut Lanes, src: &[f32]) {
    *v = src[..L].try_into().expect("L floats");
}

/// The 36 rows of `M` one output plane reads: point `p`, tile `t` is
/// `m[base + p * stride + t]`.
struct PointRows<'a> {
    m: &'a [f32],
    base: usize,
    stride: usize,
}

/// Transforms one output plane's tiles out of `M`, adds the bias, applies
/// the activation and writes the plane.
///
/// Per tile row, [`L`] tiles at a time, each of the 4 output rows comes out
/// as four phase vectors (`phase[c][t]` = output column `4t + c`), stored
/// whole; the phases are then interleaved into the row (a loop the compiler
/// vectorises as interleaved stores) and the row gets bias and activation
/// in one pass.
#[inline(always)]
fn transform_output_plane(
    points: &PointRows<'_>,
    geo: &Geometry,
    tiles_x: usize,
    first: usize,
    (bias, activation): (f32, Activation),
    dst: &mut [f32],
    scratch: &mut [f32],
) {
    let tiles_y = geo.ho.div_ceil(M);
    let ph = phase_len(tiles_x);
    let (phases, row) = scratch.split_at_mut(M * M * ph);
    let row = &mut row[..M * ph];
    for ty in 0..tiles_y {
        for tx0 in (0..tiles_x).step_by(L) {
            let t = first + ty * tiles_x + tx0;
            let mut mv = [[[0f32; L]; T]; T];
            for (p, v) in mv.iter_mut().flatten().enumerate() {
                load(v, &points.m[points.base + p * points.stride + t..]);
            }
            let mut cols = [[[0f32; L]; T]; M];
            for j in 0..T {
                let r = output_1d_lanes(&std::array::from_fn(|i| mv[i][j]));
                for (i, v) in r.into_iter().enumerate() {
                    cols[i][j] = v;
                }
            }
            for (i, col) in cols.iter().enumerate() {
                for (c, v) in output_1d_lanes(col).iter().enumerate() {
                    let start = (i * M + c) * ph + tx0;
                    let out: &mut Lanes = (&mut phases[start..start + L])
                        .try_into()
                        .expect("L floats");
                    *out = *v;
                }
            }
        }
        for i in 0..M {
            let y = ty * M + i;
            if y >= geo.ho {
                break;
            }
            let phases = &phases[i * M * ph..(i + 1) * M * ph];
            let (p0, rest) = phases.split_at(ph);
            let (p1, rest) = rest.split_at(ph);
            let (p2, p3) = rest.split_at(ph);
            let quads = row.as_chunks_mut::<M>().0.iter_mut();
            for ((((q, a), b), c), d) in quads.zip(p0).zip(p1).zip(p2).zip(p3) {
                *q = [*a, *b, *c, *d];
            }
            let out = &mut dst[y * geo.wo..(y + 1) * geo.wo];
            bias_activate(out, &row[..geo.wo], bias, activation);
        }
    }
}
