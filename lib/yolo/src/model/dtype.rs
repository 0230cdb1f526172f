//! [`MODEL_DTYPE`], the element type of the whole network. A module of its
//! own so the blocks (`conv.rs`) and the network (`mod.rs`) both take it from
//! here and no block imports back from the network that holds it.

use candle_core::DType;

/// The default element type of every tensor a model holds and computes
/// (f32); [`LoadOptions::dtype`](super::LoadOptions::dtype) picks another.
pub const MODEL_DTYPE: DType = DType::F32;
