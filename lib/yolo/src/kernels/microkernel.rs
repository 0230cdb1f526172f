//! A register-blocked f32 GEMM micro-kernel in safe SIMD (`pulp`), the inner
//! loop of the Winograd and im2col paths.
//!
//! `C[m × n] = A[m × k] · B[k × n]`, computed [`MR`] rows by [`NR`] columns at
//! a time: the `MR × NR` block of `C` lives in registers (12 AVX2
//! accumulators) while `k` runs, each step loading one `NR`-wide row of `B`
//! and broadcasting `MR` values of `A`. `A` is packed once (at model load, for
//! the weights) into `MR`-row panels so those broadcasts read consecutive
//! floats; `B` is read in place, any row stride, which lets the callers feed
//! it straight from their transform buffers without a packing pass.
//!
//! [`pulp::Arch`] picks the instruction set at run time (AVX2 + FMA here,
//! a portable scalar loop elsewhere), so the crate needs neither `unsafe` nor
//! a `target-cpu` flag. Callers wrap their whole parallel task in one
//! [`vectorized`] call so the transforms around the kernel are compiled for
//! the same instruction set.

use std::ops::Range;

use pulp::{Arch, Simd, WithSimd};

/// Rows of `C` per micro-kernel step (rows of `A` per packed panel).
pub(crate) const MR: usize = 6;
/// Column counts must be multiples of this: one AVX-512 vector, two AVX2
/// vectors. A step computes two vectors of columns while they fit, then one.
pub(crate) const COLS_MULTIPLE: usize = 16;

/// A row-major `rows × depth` matrix repacked into `MR`-row panels,
/// `[rows.div_ceil(MR)][depth][MR]`, the missing rows of the last panel zero.
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
        let mut data = vec![0f32; panels * depth * MR];
        for (panel, dst) in data.chunks_exact_mut(depth * MR).enumerate() {
            for (r, row) in a.chunks_exact(depth).skip(panel * MR).take(MR).enumerate() {
                for (p, v) in row.iter().enumerate() {
                    dst[p * MR + r] = *v;
                }
            }
        }
        PackedRows { data, rows, depth }
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

    /// Panel `i`: `depth × MR` floats, `MR` per step of `k`.
    fn panel(&self, i: usize) -> &[f32] {
        &self.data[i * self.depth * MR..(i + 1) * self.depth * MR]
    }
}

/// Runs `f` compiled for the best instruction set of this CPU (AVX2 + FMA on
/// x86-64 v3 machines) so the compiler vectorises its loops with it. Wrap
/// each parallel task's body: target features do not cross threads.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    Arch::new().dispatch(f)
}

/// `C = A · B` for the `a.rows() × cols` block of `C` starting at column 0
/// of `c` (row stride `ldc`), where row `p` of `B` is `b[p * ldb + col0..]`.
///
/// `cols` must be a multiple of [`COLS_MULTIPLE`], and every row of `B` and
/// `C` must hold `cols` values past its start (the callers pad their buffers).
pub(crate) fn gemm(
    a: &PackedRows,
    b: &[f32],
    ldb: usize,
    col0: usize,
    c: &mut [f32],
    ldc: usize,
    cols: usize,
) {
    GemmCall {
        a,
        panels: 0..a.panels(),
        depth: 0..a.depth(),
        b,
        ldb,
        col0,
        cols,
        accumulate: false,
    }
    .run(c, ldc)
}

/// One product `C (+)= A[panels, depth] · B` with every option spelled out.
pub(crate) struct GemmCall<'a> {
    /// The packed left matrix.
    pub(crate) a: &'a PackedRows,
    /// Which `MR`-row panels of `A` (and so which rows of `C`): row `i` of
    /// `C` is row `panels.start * MR + i` of `A`.
    pub(crate) panels: Range<usize>,
    /// The slice of `k` this pass covers; row `p` of `B` is `k = depth.start + p`.
    pub(crate) depth: Range<usize>,
    /// Row `p` of `B` is `b[p * ldb + col0..]`.
    pub(crate) b: &'a [f32],
    /// Row stride of `B`.
    pub(crate) ldb: usize,
    /// First column of `B` used.
    pub(crate) col0: usize,
    /// Columns of `C` computed, a multiple of [`COLS_MULTIPLE`].
    pub(crate) cols: usize,
    /// Add to `C` instead of overwriting it (for the second and later `depth` passes).
    pub(crate) accumulate: bool,
}

impl GemmCall<'_> {
    /// Computes the product into `c` (row stride `ldc`): row `i` of the
    /// result at `c[i * ldc..]`, only the rows `A` has.
    pub(crate) fn run(&self, c: &mut [f32], ldc: usize) {
        struct Op<'a, 'b> {
            call: &'a GemmCall<'b>,
            c: &'a mut [f32],
            ldc: usize,
        }
        impl WithSimd for Op<'_, '_> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) {
                let Op { call, c, ldc } = self;
                call.run_with(simd, c, ldc);
            }
        }
        Arch::new().dispatch(Op { call: self, c, ldc })
    }

    #[inline(always)]
    fn run_with<S: Simd>(&self, simd: S, c: &mut [f32], ldc: usize) {
        let GemmCall {
            a,
            ref panels,
            ref depth,
            b,
            ldb,
            col0,
            cols,
            accumulate,
        } = *self;
        assert!(
            cols % COLS_MULTIPLE == 0,
            "columns must be a multiple of {COLS_MULTIPLE}"
        );
        assert!(
            panels.end <= a.panels() && depth.end <= a.depth(),
            "outside A"
        );
        let lanes = S::F32_LANES;
        let simd_ok = lanes == 8 || lanes == 16;
        let mut chunk = 0;
        while chunk < cols {
            // Two vectors per row while they fit, then one; 8 columns per
            // step on CPUs without 8- or 16-lane vectors.
            let (width, nv) = match simd_ok {
                true if cols - chunk >= 2 * lanes => (2 * lanes, 2),
                true => (lanes, 1),
                false => (COLS_MULTIPLE / 2, 0),
            };
            for panel in panels.clone() {
                let r0 = (panel - panels.start) * MR;
                let block = Block {
                    b,
                    ldb,
                    col: col0 + chunk,
                    k: depth.len(),
                    ldc,
                    ccol: chunk,
                    live: MR.min(a.rows() - panel * MR),
                    accumulate,
                };
                let panel = &a.panel(panel)[depth.start * MR..];
                let out = &mut c[r0 * ldc..];
                match nv {
                    2 => block.run_simd::<S, 2>(simd, panel, out),
                    1 => block.run_simd::<S, 1>(simd, panel, out),
                    _ => block.run_any::<{ COLS_MULTIPLE / 2 }>(panel, out),
                }
            }
            chunk += width;
        }
    }
}

/// Where one `MR × NR` block of `C` reads `B` and writes `C`.
#[derive(Clone, Copy)]
struct Block<'a> {
    b: &'a [f32],
    ldb: usize,
    /// First column of the block in `B`'s rows.
    col: usize,
    k: usize,
    ldc: usize,
    /// First column of the block in `C`'s rows.
    ccol: usize,
    /// Rows of the block that exist (the last panel may be partial).
    live: usize,
    /// Start from `C`'s current values instead of zero.
    accumulate: bool,
}

impl Block<'_> {
    /// The block with `NV` vectors per row (`MR × NV` accumulators).
    #[inline(always)]
    fn run_simd<S: Simd, const NV: usize>(&self, simd: S, panel: &[f32], c: &mut [f32]) {
        let Block {
            b,
            ldb,
            col,
            k,
            ldc,
            ccol,
            live,
            accumulate,
        } = *self;
        let zero = simd.splat_f32s(0.0);
        let mut acc = [[zero; NV]; MR];
        if accumulate {
            for (r, acc) in acc.iter_mut().enumerate().take(live) {
                let (cv, _) = S::as_simd_f32s(&c[r * ldc + ccol..][..NV * S::F32_LANES]);
                acc.copy_from_slice(cv);
            }
        }
        let (steps, _) = panel.as_chunks::<MR>();
        for (p, a) in steps.iter().take(k).enumerate() {
            let (bv, _) = S::as_simd_f32s(&b[p * ldb + col..][..NV * S::F32_LANES]);
            let bv: &[S::f32s; NV] = bv.try_into().expect("NV vectors");
            for r in 0..MR {
                let ar = simd.splat_f32s(a[r]);
                for v in 0..NV {
                    acc[r][v] = simd.mul_add_e_f32s(ar, bv[v], acc[r][v]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(live) {
            let (cv, _) = S::as_mut_simd_f32s(&mut c[r * ldc + ccol..][..NV * S::F32_LANES]);
            cv.copy_from_slice(acc);
        }
    }

    /// The block for any vector width `W` columns wide (the compiler vectorises it).
    #[inline(always)]
    fn run_any<const W: usize>(&self, panel: &[f32], c: &mut [f32]) {
        let (ldc, ccol) = (self.ldc, self.ccol);
        let mut acc = [[0f32; W]; MR];
        if self.accumulate {
            for (r, acc) in acc.iter_mut().enumerate().take(self.live) {
                acc.copy_from_slice(&c[r * ldc + ccol..][..W]);
            }
        }
        let (steps, _) = panel.as_chunks::<MR>();
        for (p, a) in steps.iter().take(self.k).enumerate() {
            let start = p * self.ldb + self.col;
            let row: &[f32; W] = self.b[start..][..W].try_into().expect("W floats");
            for r in 0..MR {
                for j in 0..W {
                    acc[r][j] = a[r].mul_add(row[j], acc[r][j]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(self.live) {
            c[r * ldc + ccol..][..W].copy_from_slice(acc);
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

    /// Runs `call` in two depth passes (the second accumulating) on the given instruction set.
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
            let call = GemmCall {
                a,
                panels: 0..a.panels(),
                b: &b[depth.start * ldb..],
                depth,
                ldb,
                col0,
                cols,
                accumulate,
            };
            call.run_with(simd, &mut c, cols);
        }
        c
    }

    #[test]
    fn simd_and_portable_kernels_match_a_naive_product() {
        // 13 rows: two full panels and a partial one; 48 columns: a two-vector
        // step then a one-vector step on AVX-512, three two-vector steps on AVX2.
        let (rows, depth, cols, ldb, col0) = (13, 37, 48, 61, 5);
        let a = values(rows * depth, 7);
        let b = values(depth * ldb, 11);
        let packed = PackedRows::new(&a, rows, depth);
        let want = naive(&a, rows, depth, &b, ldb, col0, cols);
        let portable = two_passes(pulp::Scalar::new(), &packed, &b, ldb, col0, cols);
        let mut native = vec![f32::NAN; rows * cols];
        gemm(&packed, &b[col0..], ldb, 0, &mut native, cols, cols);
        for (name, got) in [("portable", &portable), ("native", &native)] {
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((*g as f64 - w).abs() < 1e-4, "{name} [{i}]: {g} vs {w}");
            }
        }
    }
}
