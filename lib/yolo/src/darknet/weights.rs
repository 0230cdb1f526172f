//! The Darknet `.weights` reader.
//!
//! Little-endian: a header (`major`, `minor`, `revision` as i32, then `seen`
//! as u64 when `major*10 + minor >= 2`, else u32), then for every
//! `[convolutional]` in cfg order: biases\[n\]; when `batch_normalize=1`,
//! scales\[n\], rolling means\[n\] and rolling variances\[n\]; then the kernel
//! as `n * (c/groups) * k * k` floats in OIHW order. Batch norm is folded into
//! the kernel and bias here, so the model runs one convolution per block.
//!
//! Darknet also sets a "transpose" flag when `major` or `minor` exceeds 1000;
//! it only affects `[connected]` layers, which no YOLOv4 cfg has, so it is
//! reported in the header and otherwise has no effect.

/// Darknet's batch-norm epsilon (`sqrt(var + 1e-5)`, as in its fused and cuDNN paths).
pub const DARKNET_BN_EPSILON: f32 = 1e-5;
/// OpenCV's Darknet importer epsilon (`1e-6`); use it to compare against OpenCV DNN.
pub const OPENCV_BN_EPSILON: f32 = 1e-6;

/// A failure reading a `.weights` file; float counts say how far off it is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WeightsError {
    /// Fewer bytes than the header needs.
    #[error("weights file is {found} bytes: too short for the Darknet header ({expected} bytes)")]
    HeaderTooShort {
        /// Header bytes needed.
        expected: usize,
        /// Bytes in the file.
        found: usize,
    },
    /// The body after the header is not a whole number of f32s.
    #[error(
        "weights body is {bytes} bytes after the {header}-byte header: not a multiple of 4 (f32)"
    )]
    Misaligned {
        /// Body bytes.
        bytes: usize,
        /// Header bytes.
        header: usize,
    },
    /// The file ends before every convolution got its parameters.
    #[error(
        "weights file too short for this cfg: expected {expected} floats, found {found}; \
         it ends inside layer {layer} ([convolutional] at line {line})"
    )]
    Truncated {
        /// Floats the cfg needs.
        expected: usize,
        /// Floats in the file.
        found: usize,
        /// The first layer whose parameters are incomplete.
        layer: usize,
        /// That layer's cfg line.
        line: usize,
    },
    /// Floats remain after the last convolution: the cfg does not match.
    #[error(
        "weights file too long for this cfg: expected {expected} floats, found {found} \
         ({} left over); is it the weights of a different cfg?",
        found - expected
    )]
    TooLong {
        /// Floats the cfg needs.
        expected: usize,
        /// Floats in the file.
        found: usize,
    },
}

/// The header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightsHeader {
    /// Format major version.
    pub major: i32,
    /// Format minor version.
    pub minor: i32,
    /// Format revision.
    pub revision: i32,
    /// Images seen in training.
    pub seen: u64,
    /// Darknet's transpose flag (`major > 1000 || minor > 1000`), relevant only to `[connected]`.
    pub transpose: bool,
    /// Header length in bytes (16 or 20).
    pub len: usize,
}

/// What the reader needs to know about one `[convolutional]` layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Layer index (Darknet numbering).
    pub layer: usize,
    /// cfg line of the section.
    pub line: usize,
    /// Output channels.
    pub filters: usize,
    /// Input channels per group (`c / groups`).
    pub channels_per_group: usize,
    /// Kernel size.
    pub size: usize,
    /// Whether BN parameters are stored.
    pub batch_normalize: bool,
}

impl ConvShape {
    /// Floats this layer occupies in the file.
    pub fn float_count(&self) -> usize {
        let bn = if self.batch_normalize {
            3 * self.filters
        } else {
            0
        };
        self.filters + bn + self.kernel_len()
    }

    /// Kernel floats: `filters * channels_per_group * size * size`.
    pub fn kernel_len(&self) -> usize {
        self.filters * self.channels_per_group * self.size * self.size
    }
}

/// One convolution's parameters, batch norm already folded in.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvParams {
    /// OIHW kernel, `filters * channels_per_group * size * size` floats.
    pub weight: Vec<f32>,
    /// Per-output-channel bias.
    pub bias: Vec<f32>,
}

/// Parses the header.
pub fn read_header(bytes: &[u8]) -> Result<WeightsHeader, WeightsError> {
    let int = |i: usize| -> Option<i32> {
        bytes
            .get(4 * i..4 * i + 4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let too_short = |expected| WeightsError::HeaderTooShort {
        expected,
        found: bytes.len(),
    };
    let (Some(major), Some(minor), Some(revision)) = (int(0), int(1), int(2)) else {
        return Err(too_short(16));
    };
    let wide_seen = i64::from(major) * 10 + i64::from(minor) >= 2;
    let (seen, len) = if wide_seen {
        let b = bytes.get(12..20).ok_or_else(|| too_short(20))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        (u64::from_le_bytes(a), 20)
    } else {
        let b = bytes.get(12..16).ok_or_else(|| too_short(16))?;
        (u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])), 16)
    };
    Ok(WeightsHeader {
        major,
        minor,
        revision,
        seen,
        transpose: major > 1000 || minor > 1000,
        len,
    })
}

/// Reads every convolution's parameters and folds batch norm with `bn_epsilon`:
/// `w' = w * scale / sqrt(var + eps)`, `b' = beta - mean * scale / sqrt(var + eps)`.
/// The file must be consumed exactly.
pub fn read(
    bytes: &[u8],
    convs: &[ConvShape],
    bn_epsilon: f32,
) -> Result<(WeightsHeader, Vec<ConvParams>), WeightsError> {
    let header = read_header(bytes)?;
    let body = &bytes[header.len..];
    if !body.len().is_multiple_of(4) {
        return Err(WeightsError::Misaligned {
            bytes: body.len(),
            header: header.len,
        });
    }
    let found = body.len() / 4;
    let expected: usize = convs.iter().map(ConvShape::float_count).sum();
    if found > expected {
        return Err(WeightsError::TooLong { expected, found });
    }
    let mut floats = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let mut consumed = 0usize;
    let mut out = Vec::with_capacity(convs.len());
    for conv in convs {
        if consumed + conv.float_count() > found {
            return Err(WeightsError::Truncated {
                expected,
                found,
                layer: conv.layer,
                line: conv.line,
            });
        }
        consumed += conv.float_count();
        let n = conv.filters;
        let mut take = |len: usize| -> Vec<f32> { floats.by_ref().take(len).collect() };
        let mut bias = take(n);
        let bn = conv.batch_normalize.then(|| (take(n), take(n), take(n)));
        let mut weight = take(conv.kernel_len());
        if let Some((scales, means, variances)) = bn {
            let per_filter = conv.channels_per_group * conv.size * conv.size;
            for o in 0..n {
                let factor = scales[o] / (variances[o] + bn_epsilon).sqrt();
                for w in &mut weight[o * per_filter..(o + 1) * per_filter] {
                    *w *= factor;
                }
                bias[o] -= means[o] * factor;
            }
        }
        out.push(ConvParams { weight, bias });
    }
    Ok((header, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &[i32], seen64: bool, floats: &[f32]) -> Vec<u8> {
        let mut bytes: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
        if seen64 {
            bytes.extend_from_slice(&7u64.to_le_bytes());
        } else {
            bytes.extend_from_slice(&7u32.to_le_bytes());
        }
        bytes.extend(floats.iter().flat_map(|v| v.to_le_bytes()));
        bytes
    }

    #[test]
    fn header_width_follows_the_version_rule() {
        let h = read_header(&file(&[0, 2, 5], true, &[])).unwrap();
        assert_eq!((h.len, h.seen, h.transpose), (20, 7, false));
        let h = read_header(&file(&[0, 1, 0], false, &[])).unwrap();
        assert_eq!((h.len, h.seen), (16, 7));
        let h = read_header(&file(&[1001, 0, 0], true, &[])).unwrap();
        assert_eq!((h.len, h.transpose), (20, true));
        assert_eq!(
            read_header(&[0; 10]),
            Err(WeightsError::HeaderTooShort {
                expected: 16,
                found: 10
            })
        );
    }

    #[test]
    fn folds_batch_norm_into_weight_and_bias() {
        // One filter, one input channel, 1x1 kernel: beta=1, scale=2, mean=3, var=4, w=5.
        let shape = ConvShape {
            layer: 0,
            line: 2,
            filters: 1,
            channels_per_group: 1,
            size: 1,
            batch_normalize: true,
        };
        let bytes = file(&[0, 2, 5], true, &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let (_, params) = read(&bytes, &[shape], 0.0).unwrap();
        // factor = 2 / sqrt(4) = 1; w' = 5; b' = 1 - 3 = -2.
        assert_eq!(params[0].weight, vec![5.0]);
        assert_eq!(params[0].bias, vec![-2.0]);
    }
}
