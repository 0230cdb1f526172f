//! The entropy-coded data as bits: [`Bits`] reads Huffman symbols and
//! coefficient values (decoded, skipped or weighed) and checks restart
//! markers and the end of the scan.

use crate::error::ScanError;
use crate::huffman::{FAST_BITS, Huffman};

/// A big-endian bit reader over entropy-coded data (byte stuffing removed),
/// bits kept MSB-aligned in a 64-bit buffer. Past the data (a marker or the
/// end) it feeds zero bytes and counts them, so that reading into them can be
/// told apart: that is a truncated scan.
pub(crate) struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    bits: u64,
    count: u32,
    /// Zero bits fed past the data (at the low end of the buffer).
    padding: u32,
}

impl<'a> Bits<'a> {
    #[inline]
    pub(crate) fn new(data: &'a [u8], pos: usize) -> Self {
        Bits {
            data,
            pos,
            bits: 0,
            count: 0,
            padding: 0,
        }
    }

    /// Tops the buffer up to more than 56 bits.
    #[inline]
    fn refill(&mut self) {
        while self.count <= 56 {
            let mut byte = 0u8;
            match self.data.get(self.pos) {
                Some(&0xFF) => {
                    if self.data.get(self.pos + 1) == Some(&0x00) {
                        byte = 0xFF;
                        self.pos += 2;
                    } else {
                        self.padding += 8;
                    }
                }
                Some(&b) => {
                    byte = b;
                    self.pos += 1;
                }
                None => self.padding += 8,
            }
            self.bits |= u64::from(byte) << (56 - self.count);
            self.count += 8;
        }
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        self.bits <<= n;
        self.count -= n;
    }

    /// Decodes one Huffman symbol.
    #[inline]
    fn symbol(&mut self, table: &Huffman) -> Result<u8, ScanError> {
        if self.count < 32 {
            self.refill();
        }
        let entry = table.fast[(self.bits >> (64 - FAST_BITS)) as usize];
        if entry != 0 {
            self.consume(u32::from(entry & 0xFF));
            return Ok((entry >> 8) as u8);
        }
        self.slow_symbol(table)
    }

    #[cold]
    fn slow_symbol(&mut self, table: &Huffman) -> Result<u8, ScanError> {
        for len in FAST_BITS + 1..=16 {
            let code = (self.bits >> (64 - len)) as i32;
            if code <= table.max_code[len as usize] {
                self.consume(len);
                let index = (code + table.offset[len as usize]) as usize;
                return table.symbols.get(index).copied().ok_or(ScanError::BadCode);
            }
        }
        Err(ScanError::BadCode)
    }

    /// A DC difference.
    #[inline]
    pub(crate) fn dc(&mut self, table: &Huffman) -> Result<i32, ScanError> {
        let size = u32::from(self.symbol(table)?);
        if size == 0 {
            return Ok(0);
        }
        if size > 11 {
            return Err(ScanError::BadSize(size as u8));
        }
        let value = (self.bits >> (64 - size)) as i32;
        self.consume(size);
        Ok(if value < 1 << (size - 1) {
            value - (1 << size) + 1
        } else {
            value
        })
    }

    /// Skips a DC difference.
    #[inline]
    pub(crate) fn skip_dc(&mut self, table: &Huffman) -> Result<(), ScanError> {
        let size = u32::from(self.symbol(table)?);
        if size > 11 {
            return Err(ScanError::BadSize(size as u8));
        }
        self.consume(size);
        Ok(())
    }

    /// Skips the 63 AC coefficients of a block.
    #[inline]
    pub(crate) fn skip_ac(&mut self, table: &Huffman) -> Result<(), ScanError> {
        let mut k = 1u32;
        loop {
            if self.count < 32 {
                self.refill();
            }
            let entry = table.skip[(self.bits >> (64 - FAST_BITS)) as usize];
            let advance = if entry != 0 {
                self.consume(u32::from(entry & 0xFF));
                u32::from(entry >> 8)
            } else {
                let symbol = self.slow_symbol(table)?;
                let size = u32::from(symbol & 15);
                if size > 10 {
                    return Err(ScanError::BadSize(size as u8));
                }
                self.consume(size);
                match (size, symbol >> 4) {
                    (0, 15) => 16,
                    (0, _) => 0,
                    (_, run) => u32::from(run) + 1,
                }
            };
            if advance == 0 {
                return Ok(());
            }
            k += advance;
            if k >= 64 {
                return if k == 64 {
                    Ok(())
                } else {
                    Err(ScanError::Overrun)
                };
            }
        }
    }

    /// Walks the 63 AC coefficients of a block, adding each one's
    /// `weights[k] * value` to its parity class in `sums`.
    #[inline]
    pub(crate) fn weigh_ac(
        &mut self,
        table: &Huffman,
        weights: &[f32; 64],
        classes: &[u8; 64],
        sums: &mut [f32; 4],
    ) -> Result<(), ScanError> {
        let mut k = 1usize;
        while k < 64 {
            let symbol = self.symbol(table)?;
            let (run, size) = (usize::from(symbol >> 4), u32::from(symbol & 15));
            if size == 0 {
                // ZRL, or end of block (see `Huffman::new`).
                if run != 15 {
                    return Ok(());
                }
                k += 16;
                continue;
            }
            if size > 10 {
                return Err(ScanError::BadSize(size as u8));
            }
            k += run;
            if k > 63 {
                return Err(ScanError::Overrun);
            }
            let raw = (self.bits >> (64 - size)) as i32;
            self.consume(size);
            let value = if raw < 1 << (size - 1) {
                raw - (1 << size) + 1
            } else {
                raw
            };
            sums[usize::from(classes[k])] += value as f32 * weights[k];
            k += 1;
        }
        if k > 64 {
            return Err(ScanError::Overrun);
        }
        Ok(())
    }

    /// Checks the end of an entropy-coded segment: every whole byte used,
    /// nothing read past the data, and the next thing is a marker.
    #[inline]
    pub(crate) fn finish(&mut self) -> Result<(), ScanError> {
        self.refill();
        if self.count < self.padding {
            return Err(ScanError::Truncated);
        }
        let left = (self.count - self.padding) / 8;
        if left > 0 || self.padding == 0 {
            let unread = left as usize + usize::from(self.padding == 0);
            return Err(ScanError::Extraneous(unread));
        }
        Ok(())
    }

    /// Steps over restart marker `RSTn` and resets the buffer.
    #[inline]
    pub(crate) fn restart(&mut self, n: u8) -> Result<(), ScanError> {
        let found = match self.data.get(self.pos..self.pos + 2) {
            Some(&[0xFF, m]) => m,
            _ => 0,
        };
        if found != 0xD0 + n {
            return Err(ScanError::Restart { expected: n, found });
        }
        self.pos += 2;
        self.bits = 0;
        self.count = 0;
        self.padding = 0;
        Ok(())
    }

    /// Checks that end-of-image follows the scan.
    #[inline]
    pub(crate) fn end(&self) -> Result<(), ScanError> {
        let mut pos = self.pos;
        while self.data.get(pos) == Some(&0xFF) && self.data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        match self.data.get(pos..pos + 2) {
            Some(&[0xFF, 0xD9]) => Ok(()),
            _ => Err(ScanError::NoEnd),
        }
    }
}
