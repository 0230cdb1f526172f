//! The area-average kernels of the downscale: one work row from the
//! column sums of its block of source rows, RGB (as BT.601 luma) or gray,
//! with fixed-size blocks for the common 2x, 4x and 8x cases.

/// Luma x 256 of a run of RGB column sums.
#[inline]
pub(crate) fn rgb_luma(block: &[u16]) -> u32 {
    let (mut sr, mut sg, mut sb) = (0u32, 0u32, 0u32);
    for px in block.chunks_exact(3) {
        sr += u32::from(px[0]);
        sg += u32::from(px[1]);
        sb += u32::from(px[2]);
    }
    77 * sr + 150 * sg + 29 * sb
}

/// One work row from equal blocks of `N` bytes (`N / 3` RGB pixels).
#[inline]
pub(crate) fn luma_blocks<const N: usize>(acc: &[u16], out: &mut [u8], count: u32) {
    let recip = (1u64 << 32) / u64::from(count);
    for (o, block) in out.iter_mut().zip(acc.chunks_exact(N)) {
        let block: &[u16; N] = block.try_into().expect("N bytes");
        let luma = rgb_luma(block);
        *o = divide(luma, count, recip);
    }
}

/// [`luma_blocks`] for blocks of any `n` bytes.
#[inline]
pub(crate) fn luma_blocks_dyn(acc: &[u16], out: &mut [u8], n: usize, count: u32) {
    for (o, block) in out.iter_mut().zip(acc.chunks_exact(n)) {
        *o = ((rgb_luma(block) + count / 2) / count).min(255) as u8;
    }
}

/// One work row from equal blocks of `N` gray pixels.
#[inline]
pub(crate) fn gray_blocks<const N: usize>(acc: &[u16], out: &mut [u8], count: u32) {
    let recip = (1u64 << 32) / u64::from(count);
    for (o, block) in out.iter_mut().zip(acc.chunks_exact(N)) {
        let block: &[u16; N] = block.try_into().expect("N bytes");
        let sum: u32 = block.iter().map(|&v| u32::from(v)).sum();
        *o = divide(sum, count, recip);
    }
}

/// [`gray_blocks`] for blocks of any `n` pixels.
#[inline]
pub(crate) fn gray_blocks_dyn(acc: &[u16], out: &mut [u8], n: usize, count: u32) {
    for (o, block) in out.iter_mut().zip(acc.chunks_exact(n)) {
        let sum: u32 = block.iter().map(|&v| u32::from(v)).sum();
        *o = ((sum + count / 2) / count).min(255) as u8;
    }
}

/// `round(luma / count)` without a division: `recip = 2^32 / count`.
#[inline]
fn divide(luma: u32, count: u32, recip: u64) -> u8 {
    let q = ((u64::from(luma + count / 2) * recip) >> 32) as u32;
    // The reciprocal is truncated: the quotient may be one short.
    let q = if (q + 1) * count <= luma + count / 2 {
        q + 1
    } else {
        q
    };
    q.min(255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocal_division_is_exact_rounding() {
        for count in [4 * 256, 16 * 256, 64 * 256, 9 * 256] {
            let recip = (1u64 << 32) / u64::from(count);
            for luma in (0..=255 * count).step_by(7) {
                let want = ((luma + count / 2) / count).min(255) as u8;
                assert_eq!(divide(luma, count, recip), want, "{luma}/{count}");
            }
        }
    }
}
