//! The JPEG headers up to the first scan: markers walked, frame, Huffman
//! and quantisation tables and scan header parsed, and the frame checked to
//! be in the reduced decoder's scope.

use crate::huffman::Huffman;
use crate::limits::MAX_SIDE;

/// The parts of a baseline JPEG's headers the DC decode needs.
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) width: usize,
    pub(crate) height: usize,
    /// Frame components: (id, h, v, quant table).
    pub(crate) components: Vec<(u8, usize, usize, usize)>,
    /// Scan components in scan order: (frame index, DC table, AC table).
    pub(crate) scan: Vec<(usize, usize, usize)>,
    /// Each quantisation table, in zig-zag order.
    pub(crate) quant: [Option<[i32; 64]>; 4],
    pub(crate) dc: [Option<Huffman>; 4],
    pub(crate) ac: [Option<Huffman>; 4],
    pub(crate) restart_interval: usize,
    /// Offset of the first entropy-coded byte.
    pub(crate) data: usize,
}

impl Header {
    /// Parses up to the first scan; None when the frame is outside this
    /// decoder's scope (or its headers are odd: the full decoder judges).
    pub(crate) fn parse(jpeg: &[u8]) -> Option<Header> {
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
}
