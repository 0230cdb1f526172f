//! Huffman tables as the reduced decoder reads them: a 9-bit lookup for
//! short codes (with a second one for skipping AC coefficients) and
//! canonical per-length limits for the rest.

/// Bits resolved by one Huffman table lookup.
pub(crate) const FAST_BITS: u32 = 9;

/// One Huffman table: a 9-bit lookup for short codes, canonical limits for
/// the rest.
#[derive(Debug, Clone)]
pub(crate) struct Huffman {
    /// By the next 9 bits: `code length | symbol << 8` (0: longer code).
    pub(crate) fast: [u16; 1 << FAST_BITS],
    /// For AC skipping, by the next 9 bits: `bits to consume | zig-zag
    /// advance << 8` (advance 0 = end of block; 0 entry: slow path).
    pub(crate) skip: [u16; 1 << FAST_BITS],
    /// Largest code of each length (index 1..=16), -1 when none.
    pub(crate) max_code: [i32; 17],
    /// `symbol index - code` for each length.
    pub(crate) offset: [i32; 17],
    pub(crate) symbols: Vec<u8>,
}

impl Huffman {
    /// Builds a table from a DHT's 16 counts and its symbols (None: invalid).
    pub(crate) fn new(counts: &[u8; 16], symbols: &[u8]) -> Option<Self> {
        let mut table = Huffman {
            fast: [0; 1 << FAST_BITS],
            skip: [0; 1 << FAST_BITS],
            max_code: [-1; 17],
            offset: [0; 17],
            symbols: symbols.to_vec(),
        };
        let mut code: u32 = 0;
        let mut index = 0usize;
        for len in 1..=16u32 {
            let count = usize::from(counts[len as usize - 1]);
            if count > 0 {
                table.offset[len as usize] = index as i32 - code as i32;
                for _ in 0..count {
                    if code >= 1 << len {
                        return None;
                    }
                    let symbol = symbols[index];
                    if len <= FAST_BITS {
                        let shift = FAST_BITS - len;
                        let first = (code << shift) as usize;
                        let size = u32::from(symbol & 15);
                        let run = u32::from(symbol >> 4);
                        // Size 0: ZRL (16 zeros) for run 15, else end of
                        // block (as libjpeg reads the undefined ones).
                        let advance = match (size, run) {
                            (0, 15) => 16,
                            (0, _) => 0,
                            _ => run + 1,
                        };
                        // AC sizes above 10 are invalid: left to the slow path's error.
                        let skip = if size > 10 {
                            0
                        } else {
                            ((len + size) | advance << 8) as u16
                        };
                        for slot in first..first + (1 << shift) {
                            table.fast[slot] = (len | u32::from(symbol) << 8) as u16;
                            table.skip[slot] = skip;
                        }
                    }
                    code += 1;
                    index += 1;
                }
                table.max_code[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        Some(table)
    }
}
