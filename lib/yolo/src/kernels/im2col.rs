//! The general path: im2col into a `(C/g * KH * KW, N * H' * W')` matrix, one
//! GEMM per group with the `(O/g, C/g * KH * KW)` weights, then the fused
//! bias + activation pass that writes NCHW directly (the GEMM's rows are
//! output channels, its columns output pixels, so no transpose is needed).

use rayon::prelude::*;

use super::epilogue::bias_activate;
use super::geometry::{ConvDims, Geometry};
use super::microkernel::{COLS_MULTIPLE, GemmCall, MR, PackedRows, vectorized};
use super::scratch::with_buffers;
use crate::activation::Activation;

/// Output pixels per work item at most: the item's im2col block
/// (`KC × BLOCK_COLS` floats) and result stay in the L2 cache.
const BLOCK_COLS: usize = 256;
/// Depth of one GEMM pass: larger `C/g·KH·KW` run in several passes that
/// accumulate, each filling only its rows of the im2col block.
const KC: usize = 512;
/// Work items per thread to aim for, so that uneven items balance out.
const ITEMS_PER_THREAD: usize = 4;

/// One task: a block of one image's output pixels, for a range of output
/// channels of one group, written straight into those output rows.
struct Item<'a> {
    img: usize,
    group: usize,
    /// First output pixel of the block (`oy * W' + ox`).
    first: usize,
    /// Pixels in the block.
    len: usize,
    /// The `MR`-row panels of the group's weights this item computes.
    panels: std::ops::Range<usize>,
    /// `dst[i]`: the block's pixels in output channel `group * O/g + panels.start * MR + i`.
    dst: Vec<&'a mut [f32]>,
}

/// How one call's output is cut into items: each output plane into pixel
/// blocks, each group's weights into ranges of `MR`-row panels.
struct Partition {
    /// Output pixels per plane, `H' * W'`.
    plane: usize,
    /// Pixels per block (the last block of a plane may be shorter).
    block_cols: usize,
    /// Blocks per output plane.
    blocks: usize,
    /// `MR`-row panels of one group's weights.
    panels: usize,
    /// Panel ranges each (image, block, group) is split into, so that there
    /// are enough items for every thread.
    splits: usize,
    /// Panels per item (the last range of a group may be shorter).
    panels_per_item: usize,
}

impl Partition {
    fn new(dims: &ConvDims, geo: &Geometry) -> Self {
        let og = dims.out_channels / dims.groups;
        let plane = geo.ho * geo.wo;
        let block_cols = if plane <= BLOCK_COLS {
            plane
        } else {
            // Even blocks, each a multiple of the kernel width.
            let blocks = plane.div_ceil(BLOCK_COLS);
            plane.div_ceil(blocks).next_multiple_of(COLS_MULTIPLE)
        };
        let blocks = plane.div_ceil(block_cols);
        let panels = og.div_ceil(MR);
        let pixel_items = geo.n * blocks * dims.groups;
        let wanted = ITEMS_PER_THREAD * rayon::current_num_threads();
        let splits = wanted.div_ceil(pixel_items).clamp(1, panels);
        let panels_per_item = panels.div_ceil(splits);
        Partition {
            plane,
            block_cols,
            blocks,
            panels,
            splits,
            panels_per_item,
        }
    }
}

/// Runs the convolution on `input` (contiguous NCHW) into a new NCHW buffer,
/// with the packed `(O/g, C/g·KH·KW)` weights of each group.
///
/// The output is cut into items (pixel block × output-channel range), run in
/// parallel; each fills its im2col block in a per-thread scratch buffer, runs
/// the micro-kernel GEMM with the packed weights, and writes `act(C + bias)`
/// into its output rows.
pub(crate) fn forward(
    dims: &ConvDims,
    weights: &[PackedRows],
    bias: &[f32],
    activation: Activation,
    input: &[f32],
    geo: &Geometry,
) -> Vec<f32> {
    let partition = Partition::new(dims, geo);
    let mut out = vec![0f32; geo.n * dims.out_channels * partition.plane];
    let items = cut_items(&mut out, dims, geo, &partition);
    let call = Call {
        dims,
        weights,
        bias,
        activation,
        input,
        geo,
    };
    items.into_par_iter().for_each(|item| call.run(item));
    out
}

/// Cuts `out` into the items of `partition`, each holding its output rows.
fn cut_items<'a>(
    out: &'a mut [f32],
    dims: &ConvDims,
    geo: &Geometry,
    partition: &Partition,
) -> Vec<Item<'a>> {
    let og = dims.out_channels / dims.groups;
    let &Partition {
        plane,
        block_cols,
        blocks,
        panels,
        splits,
        panels_per_item,
    } = partition;
    // pieces[(img * blocks + block) * O + oc]: that block of that output plane.
    let mut pieces: Vec<Option<&mut [f32]>> =
        Vec::with_capacity(geo.n * blocks * dims.out_channels);
    pieces.resize_with(geo.n * blocks * dims.out_channels, || None);
    for (idx, dst) in out.chunks_mut(plane).enumerate() {
        let (img, oc) = (idx / dims.out_channels, idx % dims.out_channels);
        for (block, piece) in dst.chunks_mut(block_cols).enumerate() {
            pieces[(img * blocks + block) * dims.out_channels + oc] = Some(piece);
        }
    }
    let pixel_items = geo.n * blocks * dims.groups;
    let mut items = Vec::with_capacity(pixel_items * splits);
    for img in 0..geo.n {
        for block in 0..blocks {
            let first = block * block_cols;
            let len = block_cols.min(plane - first);
            for group in 0..dims.groups {
                for p0 in (0..panels).step_by(panels_per_item) {
                    let p1 = panels.min(p0 + panels_per_item);
                    let oc0 = group * og + p0 * MR;
                    let oc1 = group * og + og.min(p1 * MR);
                    let base = (img * blocks + block) * dims.out_channels;
                    let dst = pieces[base + oc0..base + oc1]
                        .iter_mut()
                        .map(|p| p.take().expect("each output piece belongs to one item"))
                        .collect();
                    items.push(Item {
                        img,
                        group,
                        first,
                        len,
                        panels: p0..p1,
                        dst,
                    });
                }
            }
        }
    }
    items
}

/// What every item of one call reads: the convolution and its input.
struct Call<'a> {
    dims: &'a ConvDims,
    weights: &'a [PackedRows],
    bias: &'a [f32],
    activation: Activation,
    input: &'a [f32],
    geo: &'a Geometry,
}

impl Call<'_> {
    /// Computes one item: per depth pass of at most [`KC`] rows, fills the
    /// item's im2col block and accumulates its GEMM with the weight panels,
    /// then writes `act(C + bias)` into the item's output rows.
    #[inline]
    fn run(&self, mut item: Item<'_>) {
        let Call {
            dims,
            weights,
            bias,
            activation,
            input,
            geo,
        } = *self;
        let (kh, kw) = dims.kernel;
        let cg = dims.in_per_group;
        let og = dims.out_channels / dims.groups;
        let in_plane = geo.h * geo.w;
        let depth = cg * kh * kw;
        let cols = item.len.next_multiple_of(COLS_MULTIPLE);
        let rows = item.panels.len() * MR;
        let weights = &weights[item.group];
        with_buffers([depth.min(KC) * cols, rows * cols], |[b, c]| {
            vectorized(|| {
                for k0 in (0..depth).step_by(KC) {
                    let k1 = depth.min(k0 + KC);
                    for (r, row) in b.chunks_exact_mut(cols).take(k1 - k0).enumerate() {
                        let r = k0 + r;
                        let channel = item.group * cg + r / (kh * kw);
                        let (ky, kx) = ((r / kw) % kh, r % kw);
                        let start = (item.img * geo.c + channel) * in_plane;
                        let src = &input[start..start + in_plane];
                        let (used, pad) = row.split_at_mut(item.len);
                        fill_range(used, src, item.first, geo, dims, ky, kx);
                        pad.fill(0.0);
                    }
                    GemmCall {
                        a: weights,
                        panels: item.panels.clone(),
                        depth: k0..k1,
                        b,
                        ldb: cols,
                        col0: 0,
                        cols,
                        accumulate: k0 > 0,
                    }
                    .run(c, cols);
                }
                let oc0 = item.group * og + item.panels.start * MR;
                for (i, dst) in item.dst.iter_mut().enumerate() {
                    let src = &c[i * cols..i * cols + item.len];
                    bias_activate(dst, src, bias[oc0 + i], activation);
                }
            })
        })
    }
}

/// Fills `dst` with one im2col row for the output pixels `pixel..pixel + dst.len()`
/// of one image: `x[oy*s + ky - p][ox*s + kx - p]`, zero outside the input.
fn fill_range(
    dst: &mut [f32],
    src: &[f32],
    pixel: usize,
    geo: &Geometry,
    dims: &ConvDims,
    ky: usize,
    kx: usize,
) {
    let (s, p) = (dims.stride, dims.padding);
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
            } else if s == 2 {
                // An indexed stride-2 loop over a pre-cut slice: bounds
                // checks vanish and the compiler emits shuffles.
                let src = &srow[first..first + 2 * (b - a) - 1];
                for (i, v) in d.iter_mut().enumerate() {
                    *v = src[2 * i];
                }
            } else {
                for (v, x) in d.iter_mut().zip(srow[first..].iter().step_by(s)) {
                    *v = *x;
                }
            }
        }
    }
}
