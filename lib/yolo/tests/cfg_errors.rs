//! The cfg parser rejects what it cannot run faithfully, naming section, line and key.

use safecity_yolo::darknet::cfg::{CfgError, LayerConfig, NetConfig};

/// A valid two-layer net; `extra` is appended to the `[convolutional]` section (line 5 on).
fn with_conv_key(extra: &str) -> String {
    format!(
        "[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=18\nsize=1\n{extra}\n[yolo]\nmask=0\nanchors=1,1\nclasses=1\n"
    )
}

#[test]
fn unknown_section_names_section_and_line() {
    let cfg = "[net]\nwidth=32\nheight=32\n\n[crop]\ncrop_width=10\n";
    let err = NetConfig::parse(cfg).unwrap_err();
    assert_eq!(
        err,
        CfgError::UnknownSection {
            section: "crop".into(),
            line: 5
        }
    );
    assert_eq!(err.to_string(), "[crop] at line 5: unsupported section");
}

#[test]
fn unknown_key_names_section_line_and_key() {
    let err = NetConfig::parse(&with_conv_key("activation=leaky\nfrobnicate=1")).unwrap_err();
    assert_eq!(
        err,
        CfgError::UnknownKey {
            section: "convolutional".into(),
            line: 4,
            key: "frobnicate".into(),
            key_line: 8
        }
    );
    assert_eq!(
        err.to_string(),
        "[convolutional] at line 4: unknown key `frobnicate` (line 8)"
    );
}

#[test]
fn unsupported_activation_is_a_bad_value() {
    let err = NetConfig::parse(&with_conv_key("activation=swish")).unwrap_err();
    match &err {
        CfgError::BadValue {
            section,
            line,
            key,
            value,
            ..
        } => {
            assert_eq!(
                (section.as_str(), *line, key.as_str(), value.as_str()),
                ("convolutional", 4, "activation", "swish")
            );
        }
        other => panic!("expected BadValue, got {other:?}"),
    }
    assert!(
        err.to_string().contains("linear, leaky, mish, logistic"),
        "{err}"
    );
}

#[test]
fn keys_that_would_change_inference_are_rejected_unless_neutral() {
    // dilation=1 and stride_x equal to stride are harmless; dilation=2 is not implemented.
    NetConfig::parse(&with_conv_key("dilation=1\nstride_x=1")).unwrap();
    let err = NetConfig::parse(&with_conv_key("dilation=2")).unwrap_err();
    assert!(
        matches!(&err, CfgError::BadValue { key, line: 4, .. } if key == "dilation"),
        "{err:?}"
    );
    let err = NetConfig::parse(&with_conv_key("xnor=1")).unwrap_err();
    assert!(
        matches!(&err, CfgError::BadValue { key, .. } if key == "xnor"),
        "{err:?}"
    );
}

#[test]
fn route_to_a_missing_layer_names_the_reference() {
    // Layer 1 refers 5 layers back: before layer 0.
    let cfg = "[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=4\n[route]\nlayers=-1,-5\n";
    let err = NetConfig::parse(cfg).unwrap_err();
    assert_eq!(
        err,
        CfgError::BadLayerRef {
            section: "route".into(),
            line: 6,
            key: "layers",
            reference: -5,
            resolved: -4,
            index: 1
        }
    );
    assert!(
        err.to_string()
            .starts_with("[route] at line 6: `layers` refers to layer -5"),
        "{err}"
    );

    // A forward reference (absolute index of the route itself or later) is refused too.
    let cfg = "[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=4\n[route]\nlayers=1\n";
    assert!(matches!(
        NetConfig::parse(cfg).unwrap_err(),
        CfgError::BadLayerRef {
            resolved: 1,
            index: 1,
            ..
        }
    ));
    // Same for [shortcut] from=.
    let cfg = "[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=4\n[shortcut]\nfrom=-3\n";
    assert!(matches!(
        NetConfig::parse(cfg).unwrap_err(),
        CfgError::BadLayerRef {
            key: "from",
            line: 6,
            ..
        }
    ));
}

#[test]
fn route_group_id_must_be_below_groups() {
    let cfg = "[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=4\n[route]\nlayers=-1\ngroups=2\ngroup_id=2\n";
    let err = NetConfig::parse(cfg).unwrap_err();
    assert!(
        matches!(&err, CfgError::BadValue { section, line: 6, key, .. } if section == "route" && key == "group_id"),
        "{err:?}"
    );
}

#[test]
fn structure_errors_point_at_the_line() {
    assert_eq!(
        NetConfig::parse("# nothing\n\n").unwrap_err(),
        CfgError::Empty
    );
    assert_eq!(
        NetConfig::parse("\n[convolutional]\nfilters=1\n").unwrap_err(),
        CfgError::MissingNet {
            section: "convolutional".into(),
            line: 2
        }
    );
    assert_eq!(
        NetConfig::parse("[net]\nwidth=32\nheight=32\nthis is not a key\n").unwrap_err(),
        CfgError::Syntax {
            line: 4,
            text: "this is not a key".into()
        }
    );
    assert_eq!(
        NetConfig::parse("[net]\nwidth=32\nheight=32\nwidth=64\n").unwrap_err(),
        CfgError::DuplicateKey {
            section: "net".into(),
            line: 1,
            key: "width".into(),
            key_line: 4
        }
    );
    assert_eq!(
        NetConfig::parse("[net]\nheight=32\n[convolutional]\n").unwrap_err(),
        CfgError::MissingKey {
            section: "net".into(),
            line: 1,
            key: "width"
        }
    );
    assert_eq!(
        NetConfig::parse("[net]\nwidth=32\nheight=32\n").unwrap_err(),
        CfgError::NoLayers { line: 1 }
    );
}

#[test]
fn yolo_anchor_count_and_mask_are_checked() {
    let base =
        "[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=18\n[yolo]\nclasses=1\nnum=2\n";
    let err = NetConfig::parse(&format!("{base}anchors=1,2,3\n")).unwrap_err();
    assert!(
        matches!(&err, CfgError::BadValue { key, line: 6, .. } if key == "anchors"),
        "{err:?}"
    );
    let err = NetConfig::parse(&format!("{base}anchors=1,2,3,4\nmask=2\n")).unwrap_err();
    assert!(
        matches!(&err, CfgError::BadValue { key, .. } if key == "mask"),
        "{err:?}"
    );
    let err = NetConfig::parse(&format!("{base}mask=0\n")).unwrap_err();
    assert!(
        matches!(
            &err,
            CfgError::MissingKey {
                key: "anchors",
                line: 6,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn comments_whitespace_and_training_keys_are_accepted() {
    let cfg = "\
# a comment line
;another comment
[net]
batch=64
subdivisions = 16
width= 32   # trailing comment
height =32
momentum=0.949
policy=steps
steps=400000,450000
mosaic=1

[convolutional]
batch_normalize=1
filters = 18
size=3
stride=1
pad=1
activation=mish

[yolo]
mask = 0
anchors = 12, 16
classes=1
num=1
jitter=.3
ignore_thresh = .7
truth_thresh = 1
scale_x_y = 1.2
iou_thresh=0.213
cls_normalizer=1.0
iou_normalizer=0.07
iou_loss=ciou
nms_kind=greedynms
beta_nms=0.6
max_delta=5
random=1
resize=1.5
";
    let net = NetConfig::parse(cfg).unwrap();
    assert_eq!((net.width, net.height), (32, 32));
    match &net.layers[1] {
        LayerConfig::Yolo(y) => {
            assert_eq!(y.scale_x_y, 1.2);
            assert_eq!(y.nms_kind, "greedynms");
            assert_eq!(y.line, 21);
        }
        other => panic!("expected [yolo], got {other:?}"),
    }
}

#[test]
fn the_official_yolov4_tiny_cfg_parses() {
    let text = safecity_yolo::assets::text("yolov4-tiny.cfg");
    let net = NetConfig::parse(&text).unwrap();
    assert_eq!((net.width, net.height, net.channels), (416, 416, 3));
    assert_eq!(net.layers.len(), 38);
    assert_eq!(net.yolo_layers(), vec![30, 37]);
    match &net.layers[3] {
        LayerConfig::Route(r) => {
            assert_eq!((r.layers.clone(), r.groups, r.group_id), (vec![2], 2, 1))
        }
        other => panic!("layer 3 should be a grouped route, got {other:?}"),
    }
}

#[test]
fn the_official_yolov4_cfg_parses_with_its_training_keys() {
    let text = safecity_yolo::assets::text("yolov4.cfg");
    let net = NetConfig::parse(&text).unwrap();
    assert_eq!((net.width, net.height), (608, 608));
    assert_eq!(net.layers.len(), 162);
    assert_eq!(net.yolo_layers(), vec![139, 150, 161]);
    let scales: Vec<f32> = net
        .yolo_layers()
        .iter()
        .map(|&i| match &net.layers[i] {
            LayerConfig::Yolo(y) => y.scale_x_y,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(scales, vec![1.2, 1.1, 1.05]);
}
