//! Head decoding against hand-computed boxes (Darknet's yolo_layer.c formulas).

use safecity_yolo::postprocess::{HeadLayout, HeadOutput, NormBox, decode};

const NET: usize = 416;

/// A 2x2 head with one anchor (52x104 px) and two classes, filled with `fill`
/// except the entries set by `set(k, row, col, value)`.
fn head(batch: usize, entries: &[(usize, usize, usize, usize, f32)], fill: f32) -> Vec<f32> {
    let (h, w, channels) = (2, 2, 7);
    let mut data = vec![fill; batch * channels * h * w];
    for &(b, k, row, col, v) in entries {
        data[((b * channels + k) * h + row) * w + col] = v;
    }
    data
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn decodes_scale_x_y_boxes_and_thresholds_class_confidence() {
    let layout = HeadLayout {
        anchors: vec![(52.0, 104.0)],
        classes: 2,
        scale_x_y: 1.05,
        new_coords: false,
    };
    // Cell row 0, col 1: tx=0 (sigmoid .5), ty=ln 3 (sigmoid .75), tw=ln 2, th=0,
    // objectness ln 9 (sigmoid .9), class 0 ln 4 (sigmoid .8), class 1 0 (sigmoid .5).
    // Everything else: objectness logit -10 (sigmoid 4.5e-5), below any threshold.
    let data = head(
        1,
        &[
            (0, 0, 0, 1, 0.0),
            (0, 1, 0, 1, 3f32.ln()),
            (0, 2, 0, 1, 2f32.ln()),
            (0, 3, 0, 1, 0.0),
            (0, 4, 0, 1, 9f32.ln()),
            (0, 5, 0, 1, 4f32.ln()),
            (0, 6, 0, 1, 0.0),
        ],
        -10.0,
    );
    let out = HeadOutput {
        layout: &layout,
        data: &data,
        batch: 1,
        height: 2,
        width: 2,
    };
    // Threshold 0.5: class 0 (0.9 * 0.8 = 0.72) passes, class 1 (0.9 * 0.5 = 0.45) does not.
    let result = decode(&[out], NET, NET, 0.5);
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].len(), 1, "{result:?}");
    let c = result[0][0];
    assert_eq!(c.class_id, 0);
    assert!(close(c.confidence, 0.72), "{c:?}");
    // sx = 0.5 * 1.05 - 0.025 = 0.5   -> x = (1 + 0.5) / 2 = 0.75
    // sy = 0.75 * 1.05 - 0.025 = 0.7625 -> y = (0 + 0.7625) / 2 = 0.38125
    // w = 2 * 52 / 416 = 0.25; h = 1 * 104 / 416 = 0.25
    let want = NormBox {
        x: 0.75,
        y: 0.381_25,
        w: 0.25,
        h: 0.25,
    };
    for (got, want) in [
        (c.bbox.x, want.x),
        (c.bbox.y, want.y),
        (c.bbox.w, want.w),
        (c.bbox.h, want.h),
    ] {
        assert!(close(got, want), "{:?} vs {want:?}", c.bbox);
    }
    // Threshold 0.4: both classes of that box.
    let result = decode(&[out], NET, NET, 0.4);
    let classes: Vec<usize> = result[0].iter().map(|c| c.class_id).collect();
    assert_eq!(classes, vec![0, 1]);
}

#[test]
fn objectness_at_or_below_threshold_yields_nothing() {
    let layout = HeadLayout {
        anchors: vec![(10.0, 10.0)],
        classes: 2,
        scale_x_y: 1.0,
        new_coords: false,
    };
    // Objectness logit 0 = 0.5 and class logits +20 (~1.0): 0.5 is not > 0.5.
    let mut data = head(1, &[], 0.0);
    for k in 5..7 {
        for i in 0..4 {
            data[k * 4 + i] = 20.0;
        }
    }
    let out = HeadOutput {
        layout: &layout,
        data: &data,
        batch: 1,
        height: 2,
        width: 2,
    };
    assert!(decode(&[out], NET, NET, 0.5)[0].is_empty());
    assert_eq!(decode(&[out], NET, NET, 0.49)[0].len(), 8);
}

#[test]
fn new_coords_inputs_are_already_logistic() {
    let layout = HeadLayout {
        anchors: vec![(52.0, 104.0)],
        classes: 2,
        scale_x_y: 2.0,
        new_coords: true,
    };
    // Values are probabilities: x=0.25 -> sx = 0.25*2 - 0.5 = 0; y=0.5 -> sy = 0.5;
    // w=0.5 -> 4 * 0.25 * 52 / 416 = 0.125; h=1 -> 4 * 104 / 416 = 1.
    // objectness 0.8, class 1 0.5 -> 0.4.
    let data = head(
        1,
        &[
            (0, 0, 1, 0, 0.25),
            (0, 1, 1, 0, 0.5),
            (0, 2, 1, 0, 0.5),
            (0, 3, 1, 0, 1.0),
            (0, 4, 1, 0, 0.8),
            (0, 6, 1, 0, 0.5),
        ],
        0.0,
    );
    let out = HeadOutput {
        layout: &layout,
        data: &data,
        batch: 1,
        height: 2,
        width: 2,
    };
    let result = decode(&[out], NET, NET, 0.25);
    assert_eq!(result[0].len(), 1, "{result:?}");
    let c = result[0][0];
    assert_eq!(c.class_id, 1);
    assert!(close(c.confidence, 0.4));
    // col 0, row 1 of a 2x2 grid.
    assert!(close(c.bbox.x, 0.0) && close(c.bbox.y, 0.75), "{c:?}");
    assert!(close(c.bbox.w, 0.125) && close(c.bbox.h, 1.0), "{c:?}");
}

#[test]
fn batches_are_split_per_image() {
    let layout = HeadLayout {
        anchors: vec![(52.0, 104.0)],
        classes: 2,
        scale_x_y: 1.0,
        new_coords: false,
    };
    // Image 1 has one confident box at row 1, col 1; image 0 has none.
    let data = head(2, &[(1, 4, 1, 1, 10.0), (1, 5, 1, 1, 10.0)], -10.0);
    let out = HeadOutput {
        layout: &layout,
        data: &data,
        batch: 2,
        height: 2,
        width: 2,
    };
    let result = decode(&[out], NET, NET, 0.25);
    assert_eq!(result.len(), 2);
    assert!(result[0].is_empty());
    assert_eq!(result[1].len(), 1);
    // tx = ty = -10 -> sigmoid ~ 4.5e-5: the box sits at the cell's top-left corner.
    assert!((result[1][0].bbox.x - 0.5).abs() < 1e-4);
    assert!((result[1][0].bbox.y - 0.5).abs() < 1e-4);
}
