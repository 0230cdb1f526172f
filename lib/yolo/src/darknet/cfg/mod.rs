//! The Darknet `.cfg` parser.
//!
//! A cfg is a list of `[section]`s of `key=value` lines. The first section is
//! `[net]` (input size); every later section is one layer, numbered from 0.
//! Keys that only matter for training (`batch`, `jitter`, `ignore_thresh`, ...)
//! are accepted and ignored. Anything that would change inference and is not
//! implemented here — an unknown section, an unknown key, a value such as
//! `activation=swish` or `dilation=2` — is an error naming the section, its
//! line and the key, so a city never runs a silently different network.
//!
//! [`NetConfig::parse`] runs the parts in order: `lexer.rs` cuts the text
//! into sections of `key=value` entries, `fields.rs` reads a section's values
//! as typed fields, `validate.rs` turns each layer section into its config
//! (the types in `layers.rs`), and `error.rs` names every failure.

mod error;
mod fields;
mod layers;
mod lexer;
mod validate;

pub use error::CfgError;
pub use layers::{
    ConvConfig, LayerConfig, MaxPoolConfig, RouteConfig, ShortcutConfig, UpsampleConfig, YoloConfig,
};

use fields::Fields;
use lexer::split_sections;
use validate::{NET_TRAINING_KEYS, parse_layer};

/// The parsed network: input geometry and the layers in cfg order.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Network input width (`[net] width=`).
    pub width: usize,
    /// Network input height (`[net] height=`).
    pub height: usize,
    /// Network input channels (`[net] channels=`, default 3).
    pub channels: usize,
    /// `[net] letter_box=1`: Darknet letterboxes instead of stretching.
    pub letter_box: bool,
    /// The layers, Darknet numbering: index 0 is the first section after `[net]`.
    pub layers: Vec<LayerConfig>,
}

impl NetConfig {
    /// Parses and validates a Darknet cfg.
    pub fn parse(text: &str) -> Result<NetConfig, CfgError> {
        let sections = split_sections(text)?;
        let mut iter = sections.into_iter();
        let net = iter.next().ok_or(CfgError::Empty)?;
        if net.name != "net" && net.name != "network" {
            return Err(CfgError::MissingNet {
                section: net.name,
                line: net.line,
            });
        }
        let net_line = net.line;
        let mut fields = Fields::new(net)?;
        let width = fields.positive_required("width")?;
        let height = fields.positive_required("height")?;
        let channels = fields.positive_or("channels", 3)?;
        let letter_box = fields.flag("letter_box")?;
        fields.finish(NET_TRAINING_KEYS)?;

        let mut layers = Vec::new();
        for section in iter {
            layers.push(parse_layer(section, layers.len())?);
        }
        if layers.is_empty() {
            return Err(CfgError::NoLayers { line: net_line });
        }
        Ok(NetConfig {
            width,
            height,
            channels,
            letter_box,
            layers,
        })
    }

    /// Indices of the `[yolo]` layers, in cfg order.
    pub fn yolo_layers(&self) -> Vec<usize> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l, LayerConfig::Yolo(_)))
            .map(|(i, _)| i)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;

    #[test]
    fn parses_a_small_net_with_relative_refs_and_defaults() {
        // `;` only starts a comment at the beginning of a line (as in Darknet).
        let cfg = "[net]\nwidth=64 ; trailing\nheight=8\n[maxpool]\n";
        assert!(matches!(
            NetConfig::parse(cfg),
            Err(CfgError::BadValue { .. })
        ));

        let cfg = "\
[net]
batch=64
width = 64
height=32
; a comment
[convolutional]
filters=8
size=3
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[route]
layers = -1, 0
groups=2
group_id=1
[yolo]
mask=0
anchors=10,14, 23,27
num=2
classes=1
jitter=.3
";
        let net = NetConfig::parse(cfg).unwrap();
        assert_eq!((net.width, net.height, net.channels), (64, 32, 3));
        assert_eq!(net.layers.len(), 4);
        match &net.layers[0] {
            LayerConfig::Convolutional(c) => {
                assert_eq!(
                    (c.filters, c.size, c.stride, c.padding, c.groups),
                    (8, 3, 1, 1, 1)
                );
                assert_eq!(c.activation, Activation::Leaky);
                assert_eq!(c.line, 6);
            }
            other => panic!("expected conv, got {other:?}"),
        }
        match &net.layers[1] {
            LayerConfig::MaxPool(m) => assert_eq!((m.size, m.stride, m.padding), (2, 2, 1)),
            other => panic!("expected maxpool, got {other:?}"),
        }
        match &net.layers[2] {
            LayerConfig::Route(r) => {
                assert_eq!((r.layers.clone(), r.groups, r.group_id), (vec![1, 0], 2, 1))
            }
            other => panic!("expected route, got {other:?}"),
        }
        match &net.layers[3] {
            LayerConfig::Yolo(y) => {
                assert_eq!(y.masked_anchors(), vec![(10.0, 14.0)]);
                assert_eq!(y.expected_channels(), 6);
            }
            other => panic!("expected yolo, got {other:?}"),
        }
        assert_eq!(net.yolo_layers(), vec![3]);
    }
}
