//! Polygons in relative frame coordinates: `x` from the left edge, `y` from
//! the top, both within 0..=1 of the frame's width and height, so a mask or a
//! zone drawn once survives a change of resolution. Pure functions.
//!
//! In the registry a polygon is a list of `[x, y]` pairs:
//! `points = [[0.0, 0.6], [0.4, 0.6], [0.4, 1.0], [0.0, 1.0]]`.

use serde::{Deserialize, Serialize};

/// A point in relative frame coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 2]", into = "[f64; 2]")]
pub struct Point {
    /// 0 = left edge, 1 = right edge.
    pub x: f64,
    /// 0 = top edge, 1 = bottom edge.
    pub y: f64,
}

impl From<[f64; 2]> for Point {
    fn from([x, y]: [f64; 2]) -> Self {
        Point { x, y }
    }
}

impl From<Point> for [f64; 2] {
    fn from(point: Point) -> Self {
        [point.x, point.y]
    }
}

/// Why a polygon is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolygonError {
    /// Fewer than three points.
    #[error("has {count} point(s); a polygon needs at least 3")]
    TooFewPoints {
        /// How many it has.
        count: usize,
    },
    /// A coordinate is outside 0..=1 (or not a number).
    #[error(
        "point {index} [{x}, {y}] is outside the frame: coordinates are relative, within 0..=1"
    )]
    OutOfRange {
        /// Index of the point.
        index: usize,
        /// Its x.
        x: f64,
        /// Its y.
        y: f64,
    },
    /// Two edges cross or touch (a bow tie, a figure eight).
    #[error(
        "is self-intersecting: edge {first} (points {first}-{first_end}) meets edge {second} (points {second}-{second_end})"
    )]
    SelfIntersecting {
        /// The first edge (from point `first`).
        first: usize,
        /// Its end point.
        first_end: usize,
        /// The second edge.
        second: usize,
        /// Its end point.
        second_end: usize,
    },
    /// The points enclose no area (all on one line).
    #[error("encloses no area (its points are on one line)")]
    NoArea,
}

/// A simple polygon in relative frame coordinates (validate with
/// [`Polygon::validate`]: the registry does on load).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Polygon {
    points: Vec<Point>,
}

/// Cross product of `b - a` and `c - a`: > 0 counter-clockwise.
fn orient(a: Point, b: Point, c: Point) -> f64 {
    (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x)
}

/// `c` on segment `a`-`b`, given the three are collinear.
fn on_segment(a: Point, b: Point, c: Point) -> bool {
    c.x >= a.x.min(b.x) && c.x <= a.x.max(b.x) && c.y >= a.y.min(b.y) && c.y <= a.y.max(b.y)
}

/// Whether segments `a`-`b` and `c`-`d` meet (crossing or touching).
pub fn segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool {
    const EPS: f64 = 1e-12;
    let (d1, d2) = (orient(c, d, a), orient(c, d, b));
    let (d3, d4) = (orient(a, b, c), orient(a, b, d));
    if ((d1 > EPS && d2 < -EPS) || (d1 < -EPS && d2 > EPS))
        && ((d3 > EPS && d4 < -EPS) || (d3 < -EPS && d4 > EPS))
    {
        return true;
    }
    (d1.abs() <= EPS && on_segment(c, d, a))
        || (d2.abs() <= EPS && on_segment(c, d, b))
        || (d3.abs() <= EPS && on_segment(a, b, c))
        || (d4.abs() <= EPS && on_segment(a, b, d))
}

/// Distance from `p` to the segment `a`-`b`.
fn segment_distance(p: Point, a: Point, b: Point) -> f64 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let length2 = dx * dx + dy * dy;
    let t = if length2 == 0.0 {
        0.0
    } else {
        (((p.x - a.x) * dx + (p.y - a.y) * dy) / length2).clamp(0.0, 1.0)
    };
    let (cx, cy) = (a.x + t * dx, a.y + t * dy);
    ((p.x - cx).powi(2) + (p.y - cy).powi(2)).sqrt()
}

impl Polygon {
    /// A polygon through `points` (not yet validated).
    pub fn new(points: Vec<Point>) -> Self {
        Polygon { points }
    }

    /// The points, in order.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// The edges as (start index, start, end).
    fn edges(&self) -> impl Iterator<Item = (usize, Point, Point)> + '_ {
        let n = self.points.len();
        (0..n).map(move |i| (i, self.points[i], self.points[(i + 1) % n]))
    }

    /// Checks: at least 3 points, every coordinate within 0..=1, no two
    /// edges meeting except neighbours at their shared point, some area.
    pub fn validate(&self) -> Result<(), PolygonError> {
        let n = self.points.len();
        if n < 3 {
            return Err(PolygonError::TooFewPoints { count: n });
        }
        for (index, p) in self.points.iter().enumerate() {
            if !((0.0..=1.0).contains(&p.x) && (0.0..=1.0).contains(&p.y)) {
                return Err(PolygonError::OutOfRange {
                    index,
                    x: p.x,
                    y: p.y,
                });
            }
        }
        let crossing = |first: usize, second: usize| PolygonError::SelfIntersecting {
            first,
            first_end: (first + 1) % n,
            second,
            second_end: (second + 1) % n,
        };
        let edge = |i: usize| (self.points[i], self.points[(i + 1) % n]);
        for i in 0..n {
            let (a, b) = edge(i);
            for j in i + 2..n {
                if i == 0 && j == n - 1 {
                    continue; // neighbours through point 0
                }
                let (c, d) = edge(j);
                if segments_meet(a, b, c, d) {
                    return Err(crossing(i, j));
                }
            }
        }
        if self.area() < 1e-9 {
            return Err(PolygonError::NoArea);
        }
        // Neighbouring edges share one point; they must not fold back onto
        // each other (collinear and pointing the same way from it).
        for i in 0..n {
            let j = (i + 1) % n;
            let (before, shared, after) =
                (self.points[i], self.points[j], self.points[(j + 1) % n]);
            let folded = orient(before, shared, after).abs() <= 1e-12
                && (before.x - shared.x) * (after.x - shared.x)
                    + (before.y - shared.y) * (after.y - shared.y)
                    > 0.0;
            if folded {
                return Err(crossing(i, j));
            }
        }
        Ok(())
    }

    /// Enclosed area (shoelace), in frame fractions.
    pub fn area(&self) -> f64 {
        let twice: f64 = self.edges().map(|(_, a, b)| a.x * b.y - b.x * a.y).sum();
        twice.abs() / 2.0
    }

    /// The bounding box: (min x, min y, max x, max y).
    pub fn bounds(&self) -> (f64, f64, f64, f64) {
        self.points.iter().fold(
            (
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ),
            |(x0, y0, x1, y1), p| (x0.min(p.x), y0.min(p.y), x1.max(p.x), y1.max(p.y)),
        )
    }

    /// Whether `p` is inside (even-odd rule; points on an edge count as inside).
    pub fn contains(&self, p: Point) -> bool {
        let mut inside = false;
        for (_, a, b) in self.edges() {
            if segment_distance(p, a, b) <= 1e-12 {
                return true;
            }
            if (a.y > p.y) != (b.y > p.y) {
                let x = a.x + (p.y - a.y) * (b.x - a.x) / (b.y - a.y);
                if p.x < x {
                    inside = !inside;
                }
            }
        }
        inside
    }

    /// Distance from `p` to the polygon: 0 inside, else to the nearest edge
    /// (in relative units, so 0.1 = a tenth of the frame).
    pub fn distance(&self, p: Point) -> f64 {
        if self.contains(p) {
            return 0.0;
        }
        self.edges()
            .map(|(_, a, b)| segment_distance(p, a, b))
            .fold(f64::INFINITY, f64::min)
    }

    /// Whether the polygon and the rectangle `[x0, x1] x [y0, y1]` share any
    /// area or boundary.
    pub fn overlaps_rect(&self, x0: f64, y0: f64, x1: f64, y1: f64) -> bool {
        let (bx0, by0, bx1, by1) = self.bounds();
        if bx1 < x0 || bx0 > x1 || by1 < y0 || by0 > y1 {
            return false;
        }
        if self
            .points
            .iter()
            .any(|p| p.x >= x0 && p.x <= x1 && p.y >= y0 && p.y <= y1)
        {
            return true;
        }
        let corners = [
            Point { x: x0, y: y0 },
            Point { x: x1, y: y0 },
            Point { x: x1, y: y1 },
            Point { x: x0, y: y1 },
        ];
        if corners.iter().any(|&c| self.contains(c)) {
            return true;
        }
        self.edges()
            .any(|(_, a, b)| (0..4).any(|k| segments_meet(a, b, corners[k], corners[(k + 1) % 4])))
    }
}

/// Which cells of a grid any of `polygons` overlaps: cell `(c, r)` spans
/// `xs[c]..xs[c + 1]` by `ys[r]..ys[r + 1]` (relative boundaries, so `xs`
/// has one more entry than there are columns). Row-major, `true` = covered.
///
/// Conservative on purpose: a cell that the polygon only grazes is covered,
/// so that nothing inside a mask reaches an uncovered cell.
pub fn cover_grid(polygons: &[Polygon], xs: &[f64], ys: &[f64]) -> Vec<bool> {
    let (w, h) = (xs.len().saturating_sub(1), ys.len().saturating_sub(1));
    let mut covered = vec![false; w * h];
    for polygon in polygons {
        let (bx0, by0, bx1, by1) = polygon.bounds();
        for r in 0..h {
            let (y0, y1) = (ys[r], ys[r + 1]);
            if y1 < by0 || y0 > by1 {
                continue;
            }
            for c in 0..w {
                let (x0, x1) = (xs[c], xs[c + 1]);
                if x1 < bx0 || x0 > bx1 || covered[r * w + c] {
                    continue;
                }
                covered[r * w + c] = polygon.overlaps_rect(x0, y0, x1, y1);
            }
        }
    }
    covered
}

/// Grows the covered cells of a `w` x `h` grid by `radius` cells in every
/// direction (a square neighbourhood).
pub fn dilate(covered: &[bool], w: usize, h: usize, radius: usize) -> Vec<bool> {
    if radius == 0 {
        return covered.to_vec();
    }
    let mut out = vec![false; w * h];
    for r in 0..h {
        for c in 0..w {
            if !covered[r * w + c] {
                continue;
            }
            for rr in r.saturating_sub(radius)..=(r + radius).min(h - 1) {
                for cc in c.saturating_sub(radius)..=(c + radius).min(w - 1) {
                    out[rr * w + cc] = true;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polygon(points: &[[f64; 2]]) -> Polygon {
        Polygon::new(points.iter().map(|&p| p.into()).collect())
    }

    fn square() -> Polygon {
        polygon(&[[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]])
    }

    #[test]
    fn a_square_contains_its_inside_and_measures_distance_outside() {
        let s = square();
        assert!(s.validate().is_ok());
        assert!((s.area() - 0.16).abs() < 1e-12);
        assert!(s.contains(Point { x: 0.4, y: 0.4 }));
        assert!(s.contains(Point { x: 0.2, y: 0.4 }), "an edge counts");
        assert!(!s.contains(Point { x: 0.7, y: 0.4 }));
        assert_eq!(s.distance(Point { x: 0.4, y: 0.4 }), 0.0);
        assert!((s.distance(Point { x: 0.9, y: 0.4 }) - 0.3).abs() < 1e-12);
        // To a corner: sqrt(0.1^2 + 0.1^2).
        assert!((s.distance(Point { x: 0.7, y: 0.7 }) - 0.02f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn a_concave_polygon_is_not_its_bounding_box() {
        // An L: the notch at the top right is outside.
        let l = polygon(&[
            [0.0, 0.0],
            [0.2, 0.0],
            [0.2, 0.8],
            [1.0, 0.8],
            [1.0, 1.0],
            [0.0, 1.0],
        ]);
        assert!(l.validate().is_ok());
        assert!(l.contains(Point { x: 0.1, y: 0.5 }));
        assert!(!l.contains(Point { x: 0.6, y: 0.4 }));
        assert!(l.contains(Point { x: 0.6, y: 0.9 }));
    }

    #[test]
    fn bad_polygons_say_why() {
        assert_eq!(
            polygon(&[[0.0, 0.0], [1.0, 1.0]]).validate(),
            Err(PolygonError::TooFewPoints { count: 2 })
        );
        assert!(matches!(
            polygon(&[[0.0, 0.0], [1.5, 0.0], [1.0, 1.0]]).validate(),
            Err(PolygonError::OutOfRange { index: 1, .. })
        ));
        assert!(matches!(
            polygon(&[[0.0, 0.0], [f64::NAN, 0.0], [1.0, 1.0]]).validate(),
            Err(PolygonError::OutOfRange { index: 1, .. })
        ));
        // A bow tie: edges 0 (0-1) and 2 (2-3) cross.
        let bow = polygon(&[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]);
        let err = bow.validate().expect_err("bow tie");
        assert_eq!(
            err,
            PolygonError::SelfIntersecting {
                first: 0,
                first_end: 1,
                second: 2,
                second_end: 3
            }
        );
        assert!(err.to_string().contains("self-intersecting"), "{err}");
        assert_eq!(
            polygon(&[[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]).validate(),
            Err(PolygonError::NoArea)
        );
        // A spike folding back on itself.
        let spike = polygon(&[[0.1, 0.1], [0.9, 0.1], [0.5, 0.1], [0.5, 0.9]]);
        assert!(matches!(
            spike.validate(),
            Err(PolygonError::SelfIntersecting { .. })
        ));
    }

    #[test]
    fn rectangles_overlap_when_they_share_area_or_an_edge() {
        let s = square();
        assert!(s.overlaps_rect(0.3, 0.3, 0.4, 0.4), "inside");
        assert!(s.overlaps_rect(0.0, 0.0, 1.0, 1.0), "around");
        assert!(s.overlaps_rect(0.55, 0.0, 0.65, 1.0), "a strip across");
        assert!(!s.overlaps_rect(0.7, 0.0, 0.8, 1.0), "beside");
        let triangle = polygon(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]);
        assert!(
            !triangle.overlaps_rect(0.8, 0.8, 0.9, 0.9),
            "past the diagonal"
        );
    }

    #[test]
    fn grids_are_covered_conservatively_and_dilated() {
        // 4x4 grid of quarters; the square 0.2..0.6 touches cells 0..=2.
        let b = [0.0, 0.25, 0.5, 0.75, 1.0];
        let covered = cover_grid(&[square()], &b, &b);
        let rows: Vec<String> = covered
            .chunks(4)
            .map(|r| r.iter().map(|&c| if c { '#' } else { '.' }).collect())
            .collect();
        assert_eq!(rows, ["###.", "###.", "###.", "...."]);
        let grown = dilate(&covered, 4, 4, 1);
        assert!(grown.iter().all(|&c| c), "one cell more everywhere");
        let small = cover_grid(&[polygon(&[[0.9, 0.9], [1.0, 0.9], [1.0, 1.0]])], &b, &b);
        assert_eq!(small.iter().filter(|&&c| c).count(), 1);
        assert!(small[15]);
    }
}
