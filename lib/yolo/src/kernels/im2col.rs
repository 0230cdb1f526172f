//! The general path: im2col into a `(C/g * KH * KW, N * H' * W')` matrix, one
//! GEMM per group with the `(O/g, C/g * KH * KW)` weights, then the fused
//! bias + activation pass that writes NCHW directly (the GEMM's rows are
//! output channels, its columns output pixels, so no transpose is needed).

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::epilogue::bias_activate;
use super::geometry::{ConvDims, Geometry};
use super::microkernel::{COLS_MULTIPLE, KC, MR, NR, PackedProduct, PackedRows};
use super::scratch::with_buffers;
use crate::activation::Activation;

/// Output pixels per work item at most: the item's im2col block
/// (`KC × BLOCK_COLS` floats, 256 KiB) and result stay in the L2 cache.
/// Larger `C/g·KH·KW` run in several [`KC`]-deep passes that accumulate,
/// each filling only its rows of the block.
const BLOCK_COLS: usize = 256;
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
    /// Index of the (image, block, group) im2col matrix in the shared buffer.
    fn region_index(&self, img: usize, block: usize, group: usize, groups: usize) -> usize {
        (img * self.blocks + block) * groups + group
    }

    /// The inverse of [`Partition::region_index`].
    fn region_parts(&self, index: usize, groups: usize) -> (usize, usize, usize) {
        let (rest, group) = (index / groups, index % groups);
        (rest / self.blocks, rest % self.blocks, group)
    }

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
/// parallel; each runs the micro-kernel GEMM of its weight panels with the
/// block's im2col matrix and writes `act(C + bias)` into its output rows.
/// When every pixel block has one item, the item fills its im2col block
/// itself, pass by pass, in per-thread scratch (it stays in L2). When a
/// block is split between several items (few pixels, many channels: the
/// 13x13 and 26x26 layers), the blocks are filled once, in parallel, into
/// a shared buffer first, so the items do not each repeat the copy.
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
    if partition.splits == 1 {
        items.into_par_iter().for_each(|item| call.run(item, None));
        return out;
    }
    let depth = dims.in_per_group * dims.kernel.0 * dims.kernel.1;
    let region = depth * partition.block_cols.next_multiple_of(COLS_MULTIPLE);
    let regions = geo.n * partition.blocks * dims.groups;
    with_buffers([regions * region], |[shared]| {
        // 1. Fill every (image, block, group) im2col matrix, one task per depth pass.
        let mut passes = Vec::new();
        for (index, mut rest) in shared.chunks_exact_mut(region).enumerate() {
            let (img, block, group) = partition.region_parts(index, dims.groups);
            let first = block * partition.block_cols;
            let len = partition.block_cols.min(partition.plane - first);
            let cols = len.next_multiple_of(COLS_MULTIPLE);
            for k0 in (0..depth).step_by(KC) {
                let k = KC.min(depth - k0);
                let (pass, tail) = rest.split_at_mut(k * cols);
                rest = tail;
                passes.push(Pass {
                    rows: PassRows {
                        img,
                        group,
                        first,
                        len,
                        depth: k0..k0 + k,
                    },
                    dst: pass,
                });
            }
        }
        passes
            .into_par_iter()
            .for_each(|pass| Arch::new().dispatch(FillTask { call: &call, pass }));
        // 2. The items, each reading its block's matrix.
        let shared: &[f32] = shared;
        items.into_par_iter().for_each(|item| {
            let index = partition.region_index(
                item.img,
                item.first / partition.block_cols,
                item.group,
                dims.groups,
            );
            call.run(item, Some(&shared[index * region..(index + 1) * region]));
        });
    });
    out
}

/// One depth pass of one (image, pixel block, group) im2col matrix.
struct PassRows {
    img: usize,
    group: usize,
    /// First output pixel of the block.
    first: usize,
    /// Pixels in the block.
    len: usize,
    /// Rows of the im2col matrix (`k`) this pass covers.
    depth: std::ops::Range<usize>,
}

/// A [`PassRows`] to fill and where: `depth.len()` rows of every
/// [`NR`]-column sliver.
struct Pass<'a> {
    rows: PassRows,
    dst: &'a mut [f32],
}

/// Fills one [`Pass`], compiled for the instruction set [`Arch`] picks.
struct FillTask<'t, 'a> {
    call: &'t Call<'t>,
    pass: Pass<'a>,
}

impl WithSimd for FillTask<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let FillTask { call, pass } = self;
        call.fill_pass(&pass.rows, pass.dst);
    }
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
    /// Computes one item: per depth pass of at most [`KC`] rows, its block's
    /// im2col matrix (`filled`, or filled here into scratch), the GEMM with
    /// the item's weight panels, then `act(C + bias)` into its output rows.
    fn run(&self, item: Item<'_>, filled: Option<&[f32]>) {
        let depth = self.dims.in_per_group * self.dims.kernel.0 * self.dims.kernel.1;
        let cols = item.len.next_multiple_of(COLS_MULTIPLE);
        let rows = item.panels.len() * MR;
        let scratch = if filled.is_some() {
            0
        } else {
            depth.min(KC) * cols
        };
        with_buffers([scratch, rows * cols], |[b, c]| {
            Arch::new().dispatch(ItemTask {
                call: self,
                item,
                filled,
                b,
                c,
            })
        })
    }

    /// Fills the rows `depth` of the im2col matrix of image `img`, group
    /// `group`, output pixels `first..first + len`, into `dst` in the
    /// kernel's [`NR`]-column slivers (`depth.len()` rows each), the columns
    /// past the pixels zero (a block has at most [`BLOCK_COLS`] pixels).
    #[inline(always)]
    fn fill_pass(&self, pass: &PassRows, dst: &mut [f32]) {
        let Call {
            dims, input, geo, ..
        } = *self;
        let (kh, kw) = dims.kernel;
        let in_plane = geo.h * geo.w;
        let k = pass.depth.len();
        let cols = pass.len.next_multiple_of(COLS_MULTIPLE);
        let pointwise = (kh, kw, dims.stride, dims.padding) == (1, 1, 1, 0);
        let mut gathered = [0f32; BLOCK_COLS];
        for (r, kk) in pass.depth.clone().enumerate() {
            let channel = pass.group * dims.in_per_group + kk / (kh * kw);
            let (ky, kx) = ((kk / kw) % kh, kk % kw);
            let start = (pass.img * geo.c + channel) * in_plane;
            let src = &input[start..start + in_plane];
            // A 1x1 stride-1 row is the input row; others are gathered
            // into `gathered` first, in one call over the whole block.
            let row: &[f32] = if pointwise {
                &src[pass.first..pass.first + pass.len]
            } else {
                fill_range(
                    &mut gathered[..pass.len],
                    src,
                    pass.first,
                    geo,
                    dims,
                    ky,
                    kx,
                );
                &gathered[..pass.len]
            };
            let (whole, _) = row.as_chunks::<NR>();
            for (s, d) in dst[..k * cols].chunks_exact_mut(k * NR).enumerate() {
                let d: &mut [f32; NR] = (&mut d[r * NR..(r + 1) * NR])
                    .try_into()
                    .expect("NR floats");
                match whole.get(s) {
                    Some(chunk) => *d = *chunk,
                    None => {
                        let tail = &row[s * NR..];
                        d[..tail.len()].copy_from_slice(tail);
                        d[tail.len()..].fill(0.0);
                    }
                }
            }
        }
    }
}

/// One item with its scratch buffers, compiled for the instruction set
/// [`Arch`] picks (`inline(always)` down to the loops, see `microkernel.rs`).
struct ItemTask<'t, 'a> {
    call: &'t Call<'t>,
    item: Item<'a>,
    /// The block's whole im2col matrix, filled before (passes of [`KC`] rows).
    filled: Option<&'t [f32]>,
    /// Scratch for one pass of the im2col matrix when not `filled`.
    b: &'t mut [f32],
    /// The item's GEMM result, `rows × cols`.
    c: &'t mut [f32],
}

impl WithSimd for ItemTask<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let ItemTask {
            call,
            mut item,
            filled,
            b,
            c,
        } = self;
        let dims = call.dims;
        let og = dims.out_channels / dims.groups;
        let depth = dims.in_per_group * dims.kernel.0 * dims.kernel.1;
        let cols = item.len.next_multiple_of(COLS_MULTIPLE);
        let weights = &call.weights[item.group];
        for k0 in (0..depth).step_by(KC) {
            let k = KC.min(depth - k0);
            let pass: &[f32] = match filled {
                Some(filled) => &filled[k0 * cols..(k0 + k) * cols],
                None => {
                    let pass = PassRows {
                        img: item.img,
                        group: item.group,
                        first: item.first,
                        len: item.len,
                        depth: k0..k0 + k,
                    };
                    call.fill_pass(&pass, b);
                    &b[..k * cols]
                }
            };
            PackedProduct {
                a: weights,
                panels: item.panels.clone(),
                depth: k0..k0 + k,
                b: pass,
                accumulate: k0 > 0,
            }
            .run_with(simd, c, cols);
        }
        let oc0 = item.group * og + item.panels.start * MR;
        for (i, dst) in item.dst.iter_mut().enumerate() {
            let src = &c[i * cols..i * cols + item.len];
            bias_activate(dst, src, call.bias[oc0 + i], call.activation);
        }
    }
}

/// Fills `dst` with one im2col row for the output pixels `pixel..pixel + dst.len()`
/// of one image: `x[oy*s + ky - p][ox*s + kx - p]`, zero outside the input.
#[inline(always)]
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
