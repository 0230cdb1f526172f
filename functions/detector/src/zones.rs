//! Where detections stand relative to a camera's zones: pure functions.
//!
//! - The **ground point** of a detection is the bottom centre of its box —
//!   where an object touches the ground, as Frigate does it. A weapon (a
//!   detection raising `knife` or `gun`) held by a person (its box centre
//!   inside a `person` box) stands where its carrier stands: the bottom
//!   centre of the smallest person box around it.
//! - A detection **touches** the zones that contain its ground point.
//! - A track **approaches** a zone it is not in when its ground point got
//!   closer to the zone by at least [`MIN_SHIFT`] of the frame over its
//!   recent history, and **leaves** it when it got as much farther.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use safecity_cameras::{Point, Zone};
use safecity_events::{BoundingBox, EventType, FrameSize, Movement, ZoneMovement};

/// The model class that carries things (knives, guns) and counts as people.
pub const CARRIER_CLASS: &str = "person";

/// Least change of distance to a zone (relative to the frame) that counts
/// as moving towards or away from it.
pub const MIN_SHIFT: f64 = 0.03;

fn bottom_centre(b: &BoundingBox, frame: FrameSize) -> Point {
    Point {
        x: (f64::from(b.x + b.width / 2.0) / f64::from(frame.width.max(1))).clamp(0.0, 1.0),
        y: (f64::from(b.y + b.height) / f64::from(frame.height.max(1))).clamp(0.0, 1.0),
    }
}

fn contains_centre(outer: &BoundingBox, inner: &BoundingBox) -> bool {
    let (cx, cy) = (inner.x + inner.width / 2.0, inner.y + inner.height / 2.0);
    cx >= outer.x && cx <= outer.x + outer.width && cy >= outer.y && cy <= outer.y + outer.height
}

/// The ground point (relative) of a detection of `class` raising `event`
/// with box `b`, given the frame's `people` boxes (see the module docs).
pub fn ground_point(
    event: EventType,
    class: &str,
    b: &BoundingBox,
    people: &[BoundingBox],
    frame: FrameSize,
) -> Point {
    let weapon = matches!(event, EventType::Knife | EventType::Gun);
    if weapon
        && class != CARRIER_CLASS
        && let Some(carrier) = people
            .iter()
            .filter(|p| contains_centre(p, b))
            .min_by(|p, q| (p.width * p.height).total_cmp(&(q.width * q.height)))
    {
        return bottom_centre(carrier, frame);
    }
    bottom_centre(b, frame)
}

/// The names of the zones containing `point`, in the camera's order.
pub fn zones_at(zones: &[Zone], point: Point) -> Vec<String> {
    zones
        .iter()
        .filter(|z| z.contains(point))
        .map(|z| z.name.clone())
        .collect()
}

/// How a track moved relative to the zones it is not in, from its ground
/// points (oldest first), sorted by zone name.
pub fn movement(history: &VecDeque<(DateTime<Utc>, Point)>, zones: &[Zone]) -> Vec<ZoneMovement> {
    let (Some(&(_, oldest)), Some(&(_, newest))) = (history.front(), history.back()) else {
        return Vec::new();
    };
    let mut out: Vec<ZoneMovement> = zones
        .iter()
        .filter(|z| !z.contains(newest))
        .filter_map(|z| {
            let closer = z.points.distance(oldest) - z.points.distance(newest);
            let movement = if closer >= MIN_SHIFT {
                Movement::Approaching
            } else if closer <= -MIN_SHIFT {
                Movement::Leaving
            } else {
                return None;
            };
            Some(ZoneMovement {
                zone: z.name.clone(),
                movement,
            })
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use safecity_cameras::Polygon;

    use super::*;

    const FRAME: FrameSize = FrameSize {
        width: 200,
        height: 100,
    };

    fn zone(name: &str, points: &[[f64; 2]]) -> Zone {
        Zone {
            name: name.to_owned(),
            label: None,
            label_ko: None,
            points: Polygon::new(points.iter().map(|&p| p.into()).collect()),
        }
    }

    fn gate() -> Zone {
        // The right third of the frame, lower half.
        zone(
            "school-gate",
            &[[0.66, 0.5], [1.0, 0.5], [1.0, 1.0], [0.66, 1.0]],
        )
    }

    fn bbox(x: f32, y: f32, w: f32, h: f32) -> BoundingBox {
        BoundingBox {
            x,
            y,
            width: w,
            height: h,
        }
    }

    #[test]
    fn objects_stand_on_their_bottom_centre_and_knives_where_their_carrier_stands() {
        let person = bbox(140.0, 20.0, 40.0, 78.0);
        let knife = bbox(150.0, 40.0, 10.0, 10.0);
        // The person's feet: x (140 + 20) / 200 = 0.8, y 98 / 100.
        let p = ground_point(EventType::Knife, "knife", &knife, &[person], FRAME);
        assert!(
            (p.x - 0.8).abs() < 1e-6 && (p.y - 0.98).abs() < 1e-6,
            "{p:?}"
        );
        assert_eq!(zones_at(&[gate()], p), ["school-gate"]);
        // A knife on its own stands at its own bottom centre: 0.775, 0.5.
        let alone = ground_point(EventType::Knife, "knife", &knife, &[], FRAME);
        assert!((alone.y - 0.5).abs() < 1e-6);
        // A car is never "carried".
        let car = bbox(145.0, 30.0, 10.0, 10.0);
        let car_ground = ground_point(EventType::Accident, "car", &car, &[person], FRAME);
        assert!((car_ground.y - 0.4).abs() < 1e-6);
        assert!(zones_at(&[gate()], car_ground).is_empty());
        // A person mapped to a weapon event stands on their own feet.
        let own = ground_point(EventType::Knife, "person", &person, &[person], FRAME);
        assert!((own.y - 0.98).abs() < 1e-6);
    }

    #[test]
    fn tracks_approach_and_leave_zones_they_are_not_in() {
        let t0: DateTime<Utc> = "2026-12-02T10:00:00Z".parse().expect("time");
        let walk = |xs: &[f64]| -> VecDeque<(DateTime<Utc>, Point)> {
            xs.iter()
                .enumerate()
                .map(|(i, &x)| {
                    (
                        t0 + chrono::Duration::seconds(i as i64),
                        Point { x, y: 0.9 },
                    )
                })
                .collect()
        };
        let zones = [
            gate(),
            zone(
                "crossing",
                &[[0.0, 0.5], [0.2, 0.5], [0.2, 1.0], [0.0, 1.0]],
            ),
        ];
        let towards = movement(&walk(&[0.3, 0.4, 0.5]), &zones);
        assert_eq!(
            towards,
            [
                "crossing:leaving".parse().expect("movement"),
                "school-gate:approaching".parse().expect("movement"),
            ]
        );
        // Inside the zone: no movement relative to it.
        assert_eq!(
            movement(&walk(&[0.5, 0.7]), &zones),
            ["crossing:leaving"
                .parse::<ZoneMovement>()
                .expect("movement")]
        );
        // Standing still, or a single sighting: nothing.
        assert!(movement(&walk(&[0.4, 0.41]), &zones).is_empty());
        assert!(movement(&walk(&[0.4]), &zones).is_empty());
    }
}
