//! The f32 multiply-add peak of one core, measured: the yardstick the
//! benchmarks hold every layer kind against.

use std::time::{Duration, Instant};

use pulp::{Arch, Simd, WithSimd};

/// What [`fma_peak`] measured on the calling thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FmaPeak {
    /// Billions of f32 floating-point operations per second (a fused
    /// multiply-add counts as two), one thread.
    pub gflops: f64,
    /// f32 lanes of the vectors the kernels run with here (16 with AVX-512,
    /// 8 with AVX2, 1 for the portable loop).
    pub lanes: usize,
}

/// Independent accumulator chains: enough to hide the FMA latency on two
/// FMA ports (4 cycles × 2 ports needs 8) with room to spare.
const CHAINS: usize = 24;
/// Iterations between clock reads.
const ROUND: usize = 20_000;

/// Measures the f32 FMA throughput of one core with the instruction set the
/// convolution kernels dispatch to (chains of independent vector FMAs kept
/// in registers, no memory traffic), running for about `duration`; the best
/// round counts, so a busy machine reads low rather than high.
pub fn fma_peak(duration: Duration) -> FmaPeak {
    struct Rounds(Duration);
    impl WithSimd for Rounds {
        type Output = FmaPeak;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> FmaPeak {
            let lanes = S::F32_LANES;
            let mut acc = [simd.splat_f32s(0.0); CHAINS];
            let x = simd.splat_f32s(std::hint::black_box(0.999_999));
            let y = simd.splat_f32s(std::hint::black_box(1e-7));
            let started = Instant::now();
            let mut best = f64::INFINITY;
            while started.elapsed() < self.0 || best.is_infinite() {
                let round = Instant::now();
                for _ in 0..ROUND {
                    for a in acc.iter_mut() {
                        *a = simd.mul_add_e_f32s(*a, x, y);
                    }
                }
                best = best.min(round.elapsed().as_secs_f64());
                acc = std::hint::black_box(acc);
            }
            let flops = (2 * lanes * CHAINS * ROUND) as f64;
            FmaPeak {
                gflops: flops / best / 1e9,
                lanes,
            }
        }
    }
    Arch::new().dispatch(Rounds(duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_positive_and_names_the_vector_width() {
        let peak = fma_peak(Duration::from_millis(20));
        assert!(peak.gflops.is_finite() && peak.gflops > 0.0, "{peak:?}");
        assert!([1, 4, 8, 16].contains(&peak.lanes), "{peak:?}");
    }
}
