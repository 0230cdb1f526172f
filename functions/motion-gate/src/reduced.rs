//! Reduced luma decode: a baseline JPEG straight to its 8x8 block means
//! (DC-only) or 4x4 quadrant means, without any inverse DCT.
//!
//! The mean of an 8x8 block of samples is its DC coefficient: `DC * q / 8 +
//! 128` (`q` the DC quantiser). When a frame is at least 8x the gate's work
//! size on both axes, decoding full resolution and then area-averaging 8x8
//! blocks (or larger) throws away almost everything the inverse DCT computed.
//! This decoder fuses the two: it entropy-decodes the scan (every component:
//! the stream is interleaved, and AC coefficients have to be walked to find
//! the next block), keeps only the luma DC values (differentially predicted),
//! skips every AC coefficient without storing it and runs no IDCT at all.
//! libjpeg-turbo's `scale_denom = 8` (OpenCV's `IMREAD_REDUCED_GRAYSCALE_8`)
//! is the same idea.
//!
//! The 4x variant ([`decode_quarter_luma`]) gives each 4x4 quadrant's exact
//! mean instead: summed over 4 samples, `cos((2x + 1) u pi / 16)` cancels for
//! even `u > 0`, so a quadrant mean is a fixed weighting of the 25
//! coefficients with `u, v` in {0, 1, 3, 5, 7} (the other quadrants flip the
//! signs of odd `u` / odd `v`). Their values are decoded and weighted; the
//! rest are skipped; still no IDCT (libjpeg-turbo's `scale_denom = 4` runs a
//! 2x2 IDCT, which is not an exact mean).
//!
//! Output: one byte per luma block, `ceil(width / 8) x ceil(height / 8)`
//! (a partial edge block averages the encoder's edge padding too). Each byte
//! is `clamp(((DC * q + 4) >> 3) + 128)`, libjpeg's 1x1 IDCT; a full decode
//! clamps every pixel first, so on blocks whose ringing crosses 0 or 255
//! the two can differ.
//!
//! Scope: 8-bit baseline and extended Huffman (SOF0/SOF1), one scan holding
//! every component, gray or YCbCr with luma at the highest sampling factors
//! (4:4:4, 4:2:2, 4:2:0, 4:4:0, ...), restart intervals. Everything else
//! (progressive, arithmetic, lossless, 12-bit, CMYK/YCCK/RGB, multi-scan
//! baseline, odd headers) is [`None`] from [`decode_dc_luma`]: the caller
//! decodes it the ordinary way. Damaged entropy data is an error, as strict
//! as the full decoder: an invalid Huffman code, a coefficient run past 63, a
//! scan that ends early (truncated: it would read past the data), leaves
//! bytes unread before its end marker, or a wrong or missing restart marker.

/// Largest frame side accepted (same limit as the full decode).
const MAX_SIDE: usize = crate::decode::MAX_SIDE;
/// Bits resolved by one Huffman table lookup.
const FAST_BITS: u32 = 9;

/// Why a scan did not decode (the frame is corrupt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// A bit pattern that is no code of its Huffman table.
    #[error("invalid Huffman code")]
    BadCode,
    /// A coefficient magnitude category above the 8-bit baseline maximum.
    #[error("coefficient size {0} out of range")]
    BadSize(u8),
    /// A run of AC coefficients past the 64th.
    #[error("AC coefficients run past the block end")]
    Overrun,
    /// The entropy data ended before the last block: a truncated frame.
    #[error("entropy data truncated")]
    Truncated,
    /// Whole bytes of entropy data left over before a marker.
    #[error("{0} bytes of entropy data left before a marker")]
    Extraneous(usize),
    /// A restart marker missing or out of sequence.
    #[error("expected restart marker RST{expected}, found {found:#04x}")]
    Restart {
        /// The restart number due.
        expected: u8,
        /// The marker byte found instead (0 for none).
        found: u8,
    },
    /// The scan is not followed by the end-of-image marker.
    #[error("no end-of-image marker after the scan")]
    NoEnd,
}

/// A reduced luma plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reduced {
    /// Width (`ceil(source_width / scale)`).
    pub width: u32,
    /// Height (`ceil(source_height / scale)`).
    pub height: u32,
    /// The JPEG's width in pixels.
    pub source_width: u32,
    /// The JPEG's height in pixels.
    pub source_height: u32,
}

/// Decodes `jpeg` into `pixels` (one byte per 8x8 luma block, reused across
/// frames) when it is a baseline gray or YCbCr JPEG of at least `min_width` x
/// `min_height` pixels; `Ok(None)` (nothing decoded) for anything else.
pub fn decode_dc_luma(
    jpeg: &[u8],
    pixels: &mut Vec<u8>,
    min_width: u32,
    min_height: u32,
) -> Result<Option<Reduced>, ScanError> {
    decode_reduced(jpeg, pixels, false, min_width, min_height)
}

/// Like [`decode_dc_luma`] at a quarter of the size: one byte per 4x4 luma
/// quadrant (the quadrant's exact mean, from the 25 coefficients whose
/// cosines do not cancel over 4 samples; still no IDCT).
pub fn decode_quarter_luma(
    jpeg: &[u8],
    pixels: &mut Vec<u8>,
    min_width: u32,
    min_height: u32,
) -> Result<Option<Reduced>, ScanError> {
    decode_reduced(jpeg, pixels, true, min_width, min_height)
}

/// For a pipeline working at `work_width` x `work_height`: the 8x reduced
/// decode ([`decode_dc_luma`]) when the frame is at least 8x that on both
/// axes, else the 4x one ([`decode_quarter_luma`]) when it is at least 4x,
/// else `Ok(None)`. The headers are parsed once.
pub fn decode_for_work(
    jpeg: &[u8],
    pixels: &mut Vec<u8>,
    work_width: u32,
    work_height: u32,
) -> Result<Option<Reduced>, ScanError> {
    let Some(header) = Header::parse(jpeg) else {
        return Ok(None);
    };
    let at_least = |scale: usize| {
        header.width >= scale * work_width as usize && header.height >= scale * work_height as usize
    };
    if at_least(8) {
        header.decode(jpeg, pixels, false).map(Some)
    } else if at_least(4) {
        header.decode(jpeg, pixels, true).map(Some)
    } else {
        Ok(None)
    }
}

fn decode_reduced(
    jpeg: &[u8],
    pixels: &mut Vec<u8>,
    quarter: bool,
    min_width: u32,
    min_height: u32,
) -> Result<Option<Reduced>, ScanError> {
    let Some(header) = Header::parse(jpeg) else {
        return Ok(None);
    };
    if header.width < min_width as usize || header.height < min_height as usize {
        return Ok(None);
    }
    header.decode(jpeg, pixels, quarter).map(Some)
}

/// Natural (row-major) index of each zig-zag position.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// For each zig-zag position: its weight in the top-left 4x4 quadrant's
/// mean, `C(u) C(v) S(u) S(v) / 64` with `S(u) = sum over x in 0..4 of
/// cos((2x + 1) u pi / 16)` (zero for even u > 0), and its parity class
/// `(u odd) + 2 (v odd)`: the other quadrants take the same weights with the
/// sign `(-1)^u` (right half) and `(-1)^v` (bottom half).
fn quadrant_weights() -> ([f32; 64], [u8; 64]) {
    let s = |u: usize| -> f64 {
        (0..4)
            .map(|x| ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos())
            .sum()
    };
    let c = |u: usize| {
        if u == 0 {
            std::f64::consts::FRAC_1_SQRT_2
        } else {
            1.0
        }
    };
    let mut weights = [0f32; 64];
    let mut classes = [0u8; 64];
    for (k, &n) in ZIGZAG.iter().enumerate() {
        let (u, v) = (n % 8, n / 8);
        let w = c(u) * c(v) * s(u) * s(v) / 64.0;
        weights[k] = if w.abs() < 1e-9 { 0.0 } else { w as f32 };
        classes[k] = (u % 2 + 2 * (v % 2)) as u8;
    }
    (weights, classes)
}

/// One Huffman table: a 9-bit lookup for short codes, canonical limits for
/// the rest.
#[derive(Debug, Clone)]
struct Huffman {
    /// By the next 9 bits: `code length | symbol << 8` (0: longer code).
    fast: [u16; 1 << FAST_BITS],
    /// For AC skipping, by the next 9 bits: `bits to consume | zig-zag
    /// advance << 8` (advance 0 = end of block; 0 entry: slow path).
    skip: [u16; 1 << FAST_BITS],
    /// Largest code of each length (index 1..=16), -1 when none.
    max_code: [i32; 17],
    /// `symbol index - code` for each length.
    offset: [i32; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    /// Builds a table from a DHT's 16 counts and its symbols (None: invalid).
    fn new(counts: &[u8; 16], symbols: &[u8]) -> Option<Self> {
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

/// The parts of a baseline JPEG's headers the DC decode needs.
#[derive(Debug)]
struct Header {
    width: usize,
    height: usize,
    /// Frame components: (id, h, v, quant table).
    components: Vec<(u8, usize, usize, usize)>,
    /// Scan components in scan order: (frame index, DC table, AC table).
    scan: Vec<(usize, usize, usize)>,
    /// Each quantisation table, in zig-zag order.
    quant: [Option<[i32; 64]>; 4],
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
    restart_interval: usize,
    /// Offset of the first entropy-coded byte.
    data: usize,
}

impl Header {
    /// Parses up to the first scan; None when the frame is outside this
    /// decoder's scope (or its headers are odd: the full decoder judges).
    fn parse(jpeg: &[u8]) -> Option<Header> {
        if jpeg.get(..2)? != [0xFF, 0xD8] {
            return None;
        }
        let mut header = Header {
            width: 0,
            height: 0,
            components: Vec::new(),
            scan: Vec::new(),
            quant: [None; 4],
            dc: [None, None, None, None],
            ac: [None, None, None, None],
            restart_interval: 0,
            data: 0,
        };
        let mut adobe_transform = None;
        let mut pos = 2;
        loop {
            if *jpeg.get(pos)? != 0xFF {
                return None;
            }
            while *jpeg.get(pos)? == 0xFF {
                pos += 1;
            }
            let marker = *jpeg.get(pos)?;
            pos += 1;
            let length = usize::from(u16::from_be_bytes([*jpeg.get(pos)?, *jpeg.get(pos + 1)?]));
            let body = jpeg.get(pos + 2..pos + length)?;
            pos += length;
            match marker {
                0xC0 | 0xC1 => header.frame(body)?,
                // Progressive, lossless, hierarchical, arithmetic: not here.
                0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC8..=0xCB | 0xCD..=0xCF => return None,
                0xC4 => header.huffman(body)?,
                0xDB => header.quant(body)?,
                0xDD => {
                    header.restart_interval = usize::from(u16::from_be_bytes(body.try_into().ok()?))
                }
                0xEE if body.len() >= 12 && body.starts_with(b"Adobe") => {
                    adobe_transform = Some(body[11]);
                }
                0xDA => {
                    header.start_of_scan(body)?;
                    header.data = pos;
                    break;
                }
                0xD8 | 0xD9 | 0xD0..=0xD7 | 0x01 => return None,
                _ => {}
            }
        }
        let ids: Vec<u8> = header.components.iter().map(|c| c.0).collect();
        let colour = match header.components.len() {
            1 => true,
            // YCbCr unless an Adobe marker or the component ids say RGB.
            3 => adobe_transform != Some(0) && ids != b"RGB",
            _ => false,
        };
        colour.then_some(header)
    }

    fn frame(&mut self, body: &[u8]) -> Option<()> {
        if *body.first()? != 8 || !self.components.is_empty() {
            return None;
        }
        self.height = usize::from(u16::from_be_bytes([*body.get(1)?, *body.get(2)?]));
        self.width = usize::from(u16::from_be_bytes([*body.get(3)?, *body.get(4)?]));
        let count = usize::from(*body.get(5)?);
        if self.width == 0 || self.height == 0 || self.width > MAX_SIDE || self.height > MAX_SIDE {
            return None;
        }
        if body.len() != 6 + 3 * count {
            return None;
        }
        for c in body[6..].chunks_exact(3) {
            let (h, v, q) = (
                usize::from(c[1] >> 4),
                usize::from(c[1] & 15),
                usize::from(c[2]),
            );
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) || q > 3 {
                return None;
            }
            self.components.push((c[0], h, v, q));
        }
        Some(())
    }

    fn huffman(&mut self, mut body: &[u8]) -> Option<()> {
        while !body.is_empty() {
            let (class, id) = (body[0] >> 4, usize::from(body[0] & 15));
            let counts: &[u8; 16] = body.get(1..17)?.try_into().ok()?;
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            let symbols = body.get(17..17 + total)?;
            let table = Huffman::new(counts, symbols)?;
            match (class, id) {
                (0, 0..=3) => self.dc[id] = Some(table),
                (1, 0..=3) => self.ac[id] = Some(table),
                _ => return None,
            }
            body = &body[17 + total..];
        }
        Some(())
    }

    fn quant(&mut self, mut body: &[u8]) -> Option<()> {
        while !body.is_empty() {
            let (precision, id) = (body[0] >> 4, usize::from(body[0] & 15));
            if id > 3 {
                return None;
            }
            let size = match precision {
                0 => 65,
                1 => 129,
                _ => return None,
            };
            let values = body.get(1..size)?;
            let mut table = [0i32; 64];
            for (k, q) in table.iter_mut().enumerate() {
                *q = if precision == 0 {
                    i32::from(values[k])
                } else {
                    i32::from(u16::from_be_bytes([values[2 * k], values[2 * k + 1]]))
                };
            }
            self.quant[id] = Some(table);
            body = &body[size..];
        }
        Some(())
    }

    fn start_of_scan(&mut self, body: &[u8]) -> Option<()> {
        let count = usize::from(*body.first()?);
        if self.components.is_empty()
            || count != self.components.len()
            || body.len() != 4 + 2 * count
        {
            return None;
        }
        for c in body[1..1 + 2 * count].chunks_exact(2) {
            let index = self.components.iter().position(|f| f.0 == c[0])?;
            let (dc, ac) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
            if dc > 3 || ac > 3 || self.dc[dc].is_none() || self.ac[ac].is_none() {
                return None;
            }
            if self.scan.iter().any(|s| s.0 == index) {
                return None;
            }
            self.scan.push((index, dc, ac));
        }
        let tail = &body[1 + 2 * count..];
        // Baseline: spectral selection 0..=63, no successive approximation.
        if tail != [0, 63, 0] {
            return None;
        }
        // Luma (the first frame component) must have the highest sampling
        // factors: one luma block per 8x8 pixels.
        let (_, lh, lv, lq) = self.components[0];
        let hmax = self.components.iter().map(|c| c.1).max()?;
        let vmax = self.components.iter().map(|c| c.2).max()?;
        if lh != hmax || lv != vmax || self.quant[lq].is_none() {
            return None;
        }
        // At most 10 blocks per MCU (the standard's limit).
        let blocks: usize = self.components.iter().map(|c| c.1 * c.2).sum();
        if count > 1 && blocks > 10 {
            return None;
        }
        Some(())
    }

    /// Entropy-decodes the scan into one byte per luma block (`quarter`:
    /// per 4x4 quadrant).
    fn decode(
        &self,
        jpeg: &[u8],
        pixels: &mut Vec<u8>,
        quarter: bool,
    ) -> Result<Reduced, ScanError> {
        let (bw, bh) = (self.width.div_ceil(8), self.height.div_ceil(8));
        let (ow, oh) = if quarter {
            (self.width.div_ceil(4), self.height.div_ceil(4))
        } else {
            (bw, bh)
        };
        pixels.clear();
        pixels.resize(ow * oh, 0);
        let (_, lh, lv, lq) = self.components[0];
        let quant = self.quant[lq].unwrap_or([1; 64]);
        let q = quant[0];
        // Quadrant weights with the luma quantiser folded in.
        let (mut weights, classes) = quadrant_weights();
        for (w, &q) in weights.iter_mut().zip(&quant) {
            *w *= q as f32;
        }
        // Per MCU: the blocks in stream order, (luma offset or None, tables).
        struct Slot<'a> {
            luma: Option<(usize, usize)>,
            component: usize,
            dc: &'a Huffman,
            ac: &'a Huffman,
        }
        let mut slots = Vec::with_capacity(10);
        let interleaved = self.scan.len() > 1;
        for &(index, dc, ac) in &self.scan {
            let (_, h, v, _) = self.components[index];
            let (h, v) = if interleaved { (h, v) } else { (1, 1) };
            for y in 0..v {
                for x in 0..h {
                    slots.push(Slot {
                        luma: (index == 0).then_some((x, y)),
                        component: index,
                        dc: self.dc[dc].as_ref().expect("checked in the scan header"),
                        ac: self.ac[ac].as_ref().expect("checked in the scan header"),
                    });
                }
            }
        }
        let (mcu_w, mcu_h) = if interleaved {
            let hmax = self.components.iter().map(|c| c.1).max().unwrap_or(1);
            let vmax = self.components.iter().map(|c| c.2).max().unwrap_or(1);
            (
                self.width.div_ceil(8 * hmax),
                self.height.div_ceil(8 * vmax),
            )
        } else {
            (bw, bh)
        };
        let (per_x, per_y) = if interleaved { (lh, lv) } else { (1, 1) };
        let mcus = mcu_w * mcu_h;
        let interval = if self.restart_interval == 0 {
            mcus
        } else {
            self.restart_interval
        };
        let mut reader = Bits::new(jpeg, self.data);
        let mut predictions = [0i32; 4];
        let mut restart = 0u8;
        for mcu in 0..mcus {
            if mcu > 0 && mcu % interval == 0 {
                reader.finish()?;
                reader.restart(restart)?;
                restart = (restart + 1) & 7;
                predictions = [0; 4];
            }
            let (mx, my) = (mcu % mcu_w, mcu / mcu_w);
            for slot in &slots {
                match slot.luma {
                    Some((x, y)) => {
                        let diff = reader.dc(slot.dc)?;
                        let dc = predictions[slot.component] + diff;
                        predictions[slot.component] = dc;
                        let (bx, by) = (mx * per_x + x, my * per_y + y);
                        if !quarter {
                            reader.skip_ac(slot.ac)?;
                            if bx < bw && by < bh {
                                pixels[by * bw + bx] =
                                    (((dc * q + 4) >> 3) + 128).clamp(0, 255) as u8;
                            }
                            continue;
                        }
                        // Sums of the weighted coefficients by parity class.
                        let mut p = [0f32; 4];
                        p[0] = dc as f32 * weights[0];
                        reader.weigh_ac(slot.ac, &weights, &classes, &mut p)?;
                        if bx < bw && by < bh {
                            let quadrants = [
                                p[0] + p[1] + p[2] + p[3],
                                p[0] - p[1] + p[2] - p[3],
                                p[0] + p[1] - p[2] - p[3],
                                p[0] - p[1] - p[2] + p[3],
                            ];
                            for (i, mean) in quadrants.into_iter().enumerate() {
                                let (ox, oy) = (2 * bx + (i & 1), 2 * by + (i >> 1));
                                if ox < ow && oy < oh {
                                    pixels[oy * ow + ox] = (mean + 128.5).clamp(0.0, 255.0) as u8;
                                }
                            }
                        }
                    }
                    None => {
                        reader.skip_dc(slot.dc)?;
                        reader.skip_ac(slot.ac)?;
                    }
                }
            }
        }
        reader.finish()?;
        reader.end()?;
        Ok(Reduced {
            width: ow as u32,
            height: oh as u32,
            source_width: self.width as u32,
            source_height: self.height as u32,
        })
    }
}

/// A big-endian bit reader over entropy-coded data (byte stuffing removed),
/// bits kept MSB-aligned in a 64-bit buffer. Past the data (a marker or the
/// end) it feeds zero bytes and counts them, so that reading into them can be
/// told apart: that is a truncated scan.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    bits: u64,
    count: u32,
    /// Zero bits fed past the data (at the low end of the buffer).
    padding: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
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
    fn dc(&mut self, table: &Huffman) -> Result<i32, ScanError> {
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
    fn skip_dc(&mut self, table: &Huffman) -> Result<(), ScanError> {
        let size = u32::from(self.symbol(table)?);
        if size > 11 {
            return Err(ScanError::BadSize(size as u8));
        }
        self.consume(size);
        Ok(())
    }

    /// Skips the 63 AC coefficients of a block.
    #[inline]
    fn skip_ac(&mut self, table: &Huffman) -> Result<(), ScanError> {
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
    fn weigh_ac(
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
    fn finish(&mut self) -> Result<(), ScanError> {
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
    fn restart(&mut self, n: u8) -> Result<(), ScanError> {
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
    fn end(&self) -> Result<(), ScanError> {
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
