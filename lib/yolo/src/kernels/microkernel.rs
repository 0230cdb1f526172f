//! A register-blocked f32 GEMM micro-kernel in safe SIMD (`pulp`), the inner
//! loop of the Winograd and im2col paths.
//!
//! `C[m × n] (+)= A[m × k] · B[k × n]`, one [`MR`] × [`NR`] block of `C` at a
//! time. Both operands are packed so the kernel's loads are sequential:
//!
//! - `A` (the weights) once at model load into [`PackedRows`], `MR`-row
//!   panels `[panel][k][MR]`, so each step's `MR` broadcasts read
//!   consecutive floats;
//! - `B` per call into **slivers** of [`NR`] columns, `[sliver][k][NR]`: the
//!   im2col path fills its block in that layout directly, [`gemm`] packs a
//!   strided `B` (the Winograd transform rows) into per-thread scratch. A
//!   sliver of a [`KC`]-deep pass is 32 KiB, so it stays in the L1 cache
//!   while every panel of `A` streams past it, and its rows are never a
//!   power-of-two stride apart (no 4K aliasing, prefetch-friendly).
//!
//! [`pulp::Arch`] picks the instruction set at run time: on AVX-512 one step
//! is a full 12 × 32 block (24 accumulators of the 32 registers), on AVX2 +
//! FMA a panel is computed as four 6 × 16 blocks (12 of 16 registers), and
//! elsewhere a portable loop the compiler vectorises. The crate needs
//! neither `unsafe` nor a `target-cpu` flag.
//!
//! Callers compile their whole task for the same instruction set: a
//! `pulp::WithSimd` struct whose `with_simd` and every function it calls
//! are `#[inline(always)]`, dispatched once per task, and they call
//! [`PackedProduct::run_with`] with its `simd`. A closure handed to
//! `Arch::dispatch` does not do this: rustc compiles the closure as a
//! function of its own, for the baseline instruction set (SSE2 on x86-64),
//! and the loops in it (im2col copies, Winograd transforms, mish) ran
//! scalar until this was found.

use std::ops::Range;

use pulp::{Arch, Simd, WithSimd};

use super::scratch::with_buffers;

/// Rows of `A` per packed panel (rows of `C` per block).
pub(crate) const MR: usize = 12;
/// Columns of `B` per packed sliver (columns of `C` per block).
pub(crate) const NR: usize = 32;
/// Column counts of `B` and `C` must be multiples of this (one sliver).
pub(crate) const COLS_MULTIPLE: usize = NR;
/// Depth of one pass: a `KC × NR` sliver is 32 KiB, inside the L1 cache.
pub(crate) const KC: usize = 256;
/// Columns [`gemm`] packs at a time: a `KC × NC` block (512 KiB) in L2.
const NC: usize = 512;
/// Panels of `A` per inner block of [`gemm`]: `MC_PANELS × MR × KC` floats
/// (192 KiB) stay in L2 while every sliver of the packed block passes.
const MC_PANELS: usize = 16;

/// A row-major `rows × depth` matrix repacked into `MR`-row panels, stored
/// pass by pass: `[depth.div_ceil(KC)][rows.div_ceil(MR)][kc][MR]` (`kc` is
/// `KC`, less in the last pass), the missing rows of the last panel zero.
///
/// A depth pass over a range of panels is then one contiguous stretch of
/// memory: the weights of a large layer come from DRAM once per forward,
/// and a sequential stream is what the hardware prefetcher follows (with
/// whole-depth panels, each pass jumped `depth × MR` floats per panel).
#[derive(Debug, Clone, Default)]
pub(crate) struct PackedRows {
    data: Vec<f32>,
    rows: usize,
    depth: usize,
}

impl PackedRows {
    /// Packs `a` (`rows × depth`, row `r` at `a[r * depth..]`).
    pub(crate) fn new(a: &[f32], rows: usize, depth: usize) -> PackedRows {
        assert_eq!(a.len(), rows * depth, "matrix length");
        let panels = rows.div_ceil(MR);
        let mut packed = PackedRows {
            data: vec![0f32; panels * depth * MR],
            rows,
            depth,
        };
        for (r, row) in a.chunks_exact(depth).enumerate() {
            let (panel, lane) = (r / MR, r % MR);
            for k0 in (0..depth).step_by(KC) {
                let k1 = depth.min(k0 + KC);
                let start = packed.offset(panel, k0);
                let dst = &mut packed.data[start..start + (k1 - k0) * MR];
                for (step, v) in dst.chunks_exact_mut(MR).zip(&row[k0..k1]) {
                    step[lane] = *v;
                }
            }
        }
        packed
    }

    /// Where panel `panel`'s step `k` starts in `data`.
    fn offset(&self, panel: usize, k: usize) -> usize {
        let (pass, within) = (k / KC, k % KC);
        let kc = KC.min(self.depth - pass * KC);
        pass * KC * self.panels() * MR + (panel * kc + within) * MR
    }

    /// Rows of the original matrix.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the original matrix (the GEMM's `k`).
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// Number of `MR`-row panels.
    pub(crate) fn panels(&self) -> usize {
        self.rows.div_ceil(MR)
    }

    /// Steps `depth` of panel `i`, `MR` floats per step of `k`; the range
    /// lies inside one [`KC`]-deep pass.
    fn panel(&self, i: usize, depth: Range<usize>) -> &[f32] {
        assert!(
            depth.start / KC == (depth.end - 1) / KC,
            "a depth range inside one pass of {KC}"
        );
        let start = self.offset(i, depth.start);
        &self.data[start..start + depth.len() * MR]
    }
}

/// Packs the `cols` columns of `B` starting at `col0` (a multiple of
/// [`NR`]), rows `0..k` with row `p` at `b[p * ldb..]`, into `k`-deep slivers
/// `dst[(s * k + p) * NR + j] = B[p][col0 + s * NR + j]`.
#[inline(always)]
pub(crate) fn pack_slivers(
    b: &[f32],
    ldb: usize,
    col0: usize,
    cols: usize,
    k: usize,
    dst: &mut [f32],
) {
    debug_assert!(cols.is_multiple_of(NR));
    for p in 0..k {
        let row = &b[p * ldb + col0..][..cols];
        for (s, chunk) in row.as_chunks::<NR>().0.iter().enumerate() {
            let d: &mut [f32; NR] = (&mut dst[(s * k + p) * NR..][..NR])
                .try_into()
                .expect("NR floats");
            *d = *chunk;
        }
    }
}

/// `C = A · B` for the `a.rows() × cols` block of `C` starting at column 0
/// of `c` (row stride `ldc`), where row `p` of `B` is `b[p * ldb + col0..]`.
///
/// `cols` must be a multiple of [`COLS_MULTIPLE`], and every row of `B` and
/// `C` must hold `cols` values past its start (the callers pad their buffers).
/// Blocked for the caches: [`NC`] columns × [`KC`] rows of `B` are packed
/// into slivers in per-thread scratch, then multiplied with [`MC_PANELS`]
/// panels of `A` at a time.
pub(crate) fn gemm(
    a: &PackedRows,
    b: &[f32],
    ldb: usize,
    col0: usize,
    c: &mut [f32],
    ldc: usize,
    cols: usize,
) {
    assert!(
        cols.is_multiple_of(COLS_MULTIPLE),
        "columns must be a multiple of {COLS_MULTIPLE}"
    );
    with_buffers([KC.min(a.depth()) * NC.min(cols)], |[packed]| {
        Arch::new().dispatch(Blocked {
            a,
            b,
            ldb,
            col0,
            c,
            ldc,
            cols,
            packed,
        })
    })
}

/// [`gemm`]'s loops, compiled for the instruction set [`Arch`] picks (a
/// `WithSimd` body marked `inline(always)`: a closure would be compiled
/// apart, for the baseline instruction set).
struct Blocked<'a> {
    a: &'a PackedRows,
    b: &'a [f32],
    ldb: usize,
    col0: usize,
    c: &'a mut [f32],
    ldc: usize,
    cols: usize,
    packed: &'a mut [f32],
}

impl WithSimd for Blocked<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Blocked {
            a,
            b,
            ldb,
            col0,
            c,
            ldc,
            cols,
            packed,
        } = self;
        let (depth, panels) = (a.depth(), a.panels());
        for n0 in (0..cols).step_by(NC) {
            let nc = NC.min(cols - n0);
            for k0 in (0..depth).step_by(KC) {
                let k = KC.min(depth - k0);
                let packed = &mut packed[..k * nc];
                pack_slivers(&b[k0 * ldb..], ldb, col0 + n0, nc, k, packed);
                for m0 in (0..panels).step_by(MC_PANELS) {
                    let m1 = panels.min(m0 + MC_PANELS);
                    PackedProduct {
                        a,
                        panels: m0..m1,
                        depth: k0..k0 + k,
                        b: packed,
                        accumulate: k0 > 0,
                    }
                    .run_with(simd, &mut c[m0 * MR * ldc + n0..], ldc);
                }
            }
        }
    }
}

/// One product `C (+)= A[panels, depth] · B` with `B` already in slivers.
pub(crate) struct PackedProduct<'a> {
    /// The packed left matrix.
    pub(crate) a: &'a PackedRows,
    /// Which `MR`-row panels of `A` (and so which rows of `C`): row `i` of
    /// `C` is row `panels.start * MR + i` of `A`.
    pub(crate) panels: Range<usize>,
    /// The slice of `k` this pass covers; row `p` of a sliver is `k = depth.start + p`.
    pub(crate) depth: Range<usize>,
    /// Slivers of `depth.len()` rows of [`NR`] columns each ([`pack_slivers`]);
    /// sliver `s` gives columns `s * NR..` of `C`.
    pub(crate) b: &'a [f32],
    /// Add to `C` instead of overwriting it (for the second and later `depth` passes).
    pub(crate) accumulate: bool,
}

impl PackedProduct<'_> {
    /// Computes the product into `c` (row stride `ldc`): row `i` of the
    /// result at `c[i * ldc..]`, only the rows `A` has. Call it from a task
    /// already compiled for `S` (see the module doc).
    #[inline(always)]
    pub(crate) fn run_with<S: Simd>(&self, simd: S, c: &mut [f32], ldc: usize) {
        let PackedProduct {
            a,
            ref panels,
            ref depth,
            b,
            accumulate,
        } = *self;
        assert!(
            panels.end <= a.panels() && depth.end <= a.depth(),
            "outside A"
        );
        let k = depth.len();
        if k == 0 {
            return;
        }
        assert!(b.len().is_multiple_of(k * NR), "B is whole slivers");
        for (s, sliver) in b.chunks_exact(k * NR).enumerate() {
            for panel in panels.clone() {
                let rows = MR.min(a.rows() - panel * MR);
                let block = Block {
                    a: a.panel(panel, depth.clone()),
                    b: sliver,
                    rows,
                    accumulate,
                };
                let out = &mut c[(panel - panels.start) * MR * ldc + s * NR..];
                match S::F32_LANES {
                    16 => block.run_simd::<S, 12, 2, 0, 0>(simd, out, ldc),
                    8 => {
                        block.run_simd::<S, 6, 2, 0, 0>(simd, out, ldc);
                        block.run_simd::<S, 6, 2, 0, 16>(simd, out, ldc);
                        if rows > 6 {
                            let out = &mut out[6 * ldc..];
                            block.run_simd::<S, 6, 2, 6, 0>(simd, out, ldc);
                            block.run_simd::<S, 6, 2, 6, 16>(simd, out, ldc);
                        }
                    }
                    _ => {
                        for row0 in (0..rows).step_by(6) {
                            let out = &mut out[row0 * ldc..];
                            for col0 in (0..NR).step_by(8) {
                                block.run_any::<6, 8>(row0, col0, out, ldc);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One panel of `A` times one sliver of `B`.
#[derive(Clone, Copy)]
struct Block<'a> {
    /// `k` steps of [`MR`] values.
    a: &'a [f32],
    /// `k` steps of [`NR`] values.
    b: &'a [f32],
    /// Rows of the panel that exist (the last panel may be partial).
    rows: usize,
    /// Start from `C`'s current values instead of zero.
    accumulate: bool,
}

impl Block<'_> {
    /// Rows `ROW0..ROW0 + R` × columns `COL0..COL0 + NV·lanes` of the block,
    /// `R × NV` accumulators; `c` starts at the block's row `ROW0`, column 0.
    #[inline(always)]
    fn run_simd<S: Simd, const R: usize, const NV: usize, const ROW0: usize, const COL0: usize>(
        &self,
        simd: S,
        c: &mut [f32],
        ldc: usize,
    ) {
        const { assert!(ROW0 + R <= MR) };
        let width = NV * S::F32_LANES;
        assert!(COL0 + width <= NR, "block inside the sliver");
        let live = R.min(self.rows - ROW0);
        let zero = simd.splat_f32s(0.0);
        let mut acc = [[zero; NV]; R];
        if self.accumulate {
            for (r, acc) in acc.iter_mut().enumerate().take(live) {
                let (cv, _) = S::as_simd_f32s(&c[r * ldc + COL0..][..width]);
                acc.copy_from_slice(cv);
            }
        }
        let (a_steps, _) = self.a.as_chunks::<MR>();
        let (b_steps, _) = self.b.as_chunks::<NR>();
        for (a, b) in a_steps.iter().zip(b_steps) {
            let (bv, _) = S::as_simd_f32s(&b[COL0..COL0 + width]);
            let bv: &[S::f32s; NV] = bv.try_into().expect("NV vectors");
            for r in 0..R {
                let ar = simd.splat_f32s(a[ROW0 + r]);
                for v in 0..NV {
                    acc[r][v] = simd.mul_add_e_f32s(ar, bv[v], acc[r][v]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(live) {
            let (cv, _) = S::as_mut_simd_f32s(&mut c[r * ldc + COL0..][..width]);
            cv.copy_from_slice(acc);
        }
    }

    /// Rows `row0..row0 + R` × columns `col0..col0 + W` for any vector width
    /// (the compiler vectorises it); `c` starts at row `row0`, column 0.
    #[inline(always)]
    fn run_any<const R: usize, const W: usize>(
        &self,
        row0: usize,
        col0: usize,
        c: &mut [f32],
        ldc: usize,
    ) {
        let live = R.min(self.rows - row0);
        let mut acc = [[0f32; W]; R];
        if self.accumulate {
            for (r, acc) in acc.iter_mut().enumerate().take(live) {
                acc.copy_from_slice(&c[r * ldc + col0..][..W]);
            }
        }
        let (a_steps, _) = self.a.as_chunks::<MR>();
        let (b_steps, _) = self.b.as_chunks::<NR>();
        for (a, b) in a_steps.iter().zip(b_steps) {
            let row: &[f32; W] = b[col0..col0 + W].try_into().expect("W floats");
            for (r, acc) in acc.iter_mut().enumerate() {
                let ar = a.get(row0 + r).copied().unwrap_or(0.0);
                for (acc, b) in acc.iter_mut().zip(row) {
                    *acc = ar.mul_add(*b, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(live) {
            c[r * ldc + col0..][..W].copy_from_slice(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// `C = A · B` in f64, `B` row `p` at `b[p * ldb + col0..]`.
    fn naive(
        a: &[f32],
        rows: usize,
        depth: usize,
        b: &[f32],
        ldb: usize,
        col0: usize,
        cols: usize,
    ) -> Vec<f64> {
        let mut c = vec![0f64; rows * cols];
        for r in 0..rows {
            for j in 0..cols {
                c[r * cols + j] = (0..depth)
                    .map(|p| a[r * depth + p] as f64 * b[p * ldb + col0 + j] as f64)
                    .sum();
            }
        }
        c
    }

    /// Packs `B` and runs the product in two depth passes (the second
    /// accumulating) on the given instruction set.
    fn two_passes<S: Simd>(
        simd: S,
        a: &PackedRows,
        b: &[f32],
        ldb: usize,
        col0: usize,
        cols: usize,
    ) -> Vec<f32> {
        let split = a.depth() / 2;
        let mut c = vec![f32::NAN; a.rows() * cols];
        for (depth, accumulate) in [(0..split, false), (split..a.depth(), true)] {
            let mut packed = vec![0f32; depth.len() * cols];
            pack_slivers(
                &b[depth.start * ldb..],
                ldb,
                col0,
                cols,
                depth.len(),
                &mut packed,
            );
            PackedProduct {
                a,
                panels: 0..a.panels(),
                depth,
                b: &packed,
                accumulate,
            }
            .run_with(simd, &mut c, cols);
        }
        c
    }

    fn assert_close(name: &str, got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{name}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                "{name} [{i}]: {g} vs {w}"
            );
        }
    }

    #[test]
    fn simd_and_portable_kernels_match_a_naive_product() {
        // 29 rows: two full panels and a partial one (5 rows, under one AVX2
        // half); 64 columns: two slivers.
        let (rows, depth, cols, ldb, col0) = (29, 37, 64, 101, 5);
        let a = values(rows * depth, 7);
        let b = values(depth * ldb, 11);
        let packed = PackedRows::new(&a, rows, depth);
        let want = naive(&a, rows, depth, &b, ldb, col0, cols);
        let portable = two_passes(pulp::Scalar::new(), &packed, &b, ldb, col0, cols);
        assert_close("portable", &portable, &want);
        #[cfg(target_arch = "x86_64")]
        if let Some(v3) = pulp::x86::V3::try_new() {
            assert_close("avx2", &two_passes(v3, &packed, &b, ldb, col0, cols), &want);
        }
        let mut native = vec![f32::NAN; rows * cols];
        gemm(&packed, &b, ldb, col0, &mut native, cols, cols);
        assert_close("native", &native, &want);
    }

    #[test]
    fn blocked_gemm_crosses_every_block_edge() {
        // Deeper than KC, wider than NC, more panels than MC_PANELS.
        let (rows, depth, cols) = (MC_PANELS * MR + 7, KC + 45, NC + 2 * NR);
        let ldb = cols + 3;
        let a = values(rows * depth, 3);
        let b = values(depth * ldb, 5);
        let packed = PackedRows::new(&a, rows, depth);
        let want = naive(&a, rows, depth, &b, ldb, 0, cols);
        let mut got = vec![f32::NAN; rows * cols];
        gemm(&packed, &b, ldb, 0, &mut got, cols, cols);
        assert_close("blocked", &got, &want);
    }
}
