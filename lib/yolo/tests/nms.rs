//! NMS against hand-computed overlaps, including cases where DIoU and IoU decide differently.

use safecity_yolo::postprocess::{Candidate, NmsKind, NormBox, diou, iou, nms};

fn bx(x: f32, y: f32, w: f32, h: f32) -> NormBox {
    NormBox { x, y, w, h }
}

fn cand(class_id: usize, confidence: f32, bbox: NormBox) -> Candidate {
    Candidate {
        class_id,
        confidence,
        bbox,
    }
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

// Three 0.2x0.2 boxes in a row, 0.06 apart:
//   A = (0.30, 0.5), B = (0.36, 0.5), C = (0.42, 0.5).
// IoU(A,B): overlap 0.14 x 0.2 = 0.028; union 0.04 + 0.04 - 0.028 = 0.052 -> 7/13 = 0.538462.
// DIoU(A,B): enclosing 0.26 x 0.2, c^2 = 0.0676 + 0.04 = 0.1076, d^2 = 0.0036,
//   (0.0036 / 0.1076)^0.6 = 0.130225 -> 0.538462 - 0.130225 = 0.408237.
// IoU(A,C): overlap 0.08 x 0.2 = 0.016; union 0.064 -> 0.25.
// DIoU(A,C): c^2 = 0.32^2 + 0.2^2 = 0.1424, d^2 = 0.0144, (0.101124)^0.6 = 0.252878 -> -0.002878.
const A: NormBox = NormBox {
    x: 0.30,
    y: 0.5,
    w: 0.2,
    h: 0.2,
};
const B: NormBox = NormBox {
    x: 0.36,
    y: 0.5,
    w: 0.2,
    h: 0.2,
};
const C: NormBox = NormBox {
    x: 0.42,
    y: 0.5,
    w: 0.2,
    h: 0.2,
};

#[test]
fn overlap_measures_match_hand_computed_values() {
    assert!(close(iou(&A, &B), 7.0 / 13.0), "{}", iou(&A, &B));
    assert!(close(diou(&A, &B), 0.408_237), "{}", diou(&A, &B));
    assert!(close(iou(&A, &C), 0.25), "{}", iou(&A, &C));
    assert!(close(diou(&A, &C), -0.002_878), "{}", diou(&A, &C));
    // Symmetric.
    assert_eq!(iou(&A, &B), iou(&B, &A));
    assert_eq!(diou(&A, &B), diou(&B, &A));
    // Disjoint boxes: IoU 0; DIoU negative.
    let far = bx(0.8, 0.5, 0.1, 0.1);
    assert_eq!(iou(&A, &far), 0.0);
    assert!(diou(&A, &far) < 0.0);
    // Same centre: no distance penalty, DIoU == IoU (0.16^2 / 0.2^2 = 0.64).
    let inner = bx(0.30, 0.5, 0.16, 0.16);
    assert!(close(iou(&A, &inner), 0.64));
    assert_eq!(diou(&A, &inner), iou(&A, &inner));
}

#[test]
fn iou_suppresses_b_but_diou_keeps_it() {
    let input = vec![cand(0, 0.9, A), cand(0, 0.8, B)];
    let by_iou = nms(input.clone(), NmsKind::Iou, 0.45);
    assert_eq!(by_iou, vec![cand(0, 0.9, A)]);
    let by_diou = nms(input, NmsKind::Diou, 0.45);
    assert_eq!(by_diou, vec![cand(0, 0.9, A), cand(0, 0.8, B)]);
}

#[test]
fn suppression_is_greedy_not_transitive() {
    // B is suppressed by A; C overlaps B (0.538) but B is gone and C overlaps A only 0.25: C stays.
    let input = vec![cand(0, 0.7, C), cand(0, 0.9, A), cand(0, 0.8, B)];
    assert_eq!(
        nms(input.clone(), NmsKind::Iou, 0.45),
        vec![cand(0, 0.9, A), cand(0, 0.7, C)]
    );
    // With DIoU nothing crosses 0.45: all three stay, sorted by confidence.
    assert_eq!(
        nms(input.clone(), NmsKind::Diou, 0.45),
        vec![cand(0, 0.9, A), cand(0, 0.8, B), cand(0, 0.7, C)]
    );
    // At 0.3 DIoU suppresses B (0.408) but not C (-0.003 to A).
    assert_eq!(
        nms(input, NmsKind::Diou, 0.3),
        vec![cand(0, 0.9, A), cand(0, 0.7, C)]
    );
}

#[test]
fn classes_are_suppressed_independently() {
    // Identical boxes of different classes never suppress each other.
    let input = vec![cand(0, 0.9, A), cand(1, 0.6, A), cand(1, 0.95, A)];
    let kept = nms(input, NmsKind::Diou, 0.45);
    assert_eq!(kept, vec![cand(1, 0.95, A), cand(0, 0.9, A)]);
}

#[test]
fn threshold_is_strict() {
    // IoU(A, inner) is exactly 0.64: suppressed above, kept at the threshold.
    let inner = bx(0.30, 0.5, 0.16, 0.16);
    let input = vec![cand(0, 0.9, A), cand(0, 0.5, inner)];
    assert_eq!(nms(input.clone(), NmsKind::Iou, 0.5).len(), 1);
    assert_eq!(nms(input, NmsKind::Iou, 0.7).len(), 2);
    assert!(nms(Vec::new(), NmsKind::Diou, 0.45).is_empty());
}
