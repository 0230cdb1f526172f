//! From a dangerous scene to words: the [`Captioner`] trait and the default,
//! deterministic [`TemplateCaptioner`] built from detections and the registry.
//!
//! A learned image-captioning model (e.g. on candle, with local weights) can
//! implement [`Captioner`] later and receive the same [`Scene`], snapshot included.

use chrono::{DateTime, Utc};
use safecity_events::{BoundingBox, Detection, EventType, FrameSize, Movement};

use crate::registry::Place;

/// One earlier sighting of the same incident.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sighting {
    /// When.
    pub at: DateTime<Utc>,
    /// Where the weapon (or its carrier) was in the frame.
    pub bounding_box: BoundingBox,
}

/// The tracked object's movement relative to one of the camera's zones (the
/// detector measured it on the object's track).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneMove {
    /// Towards the zone or away from it.
    pub movement: Movement,
    /// How people call the zone.
    pub zone: Place,
}

/// Everything known about the scene.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene<'a> {
    /// `gun` or `knife`.
    pub event_type: EventType,
    /// Where the camera is.
    pub place: Place,
    /// The camera's region.
    pub region: &'a str,
    /// When the frame was captured.
    pub captured_at: DateTime<Utc>,
    /// What the detector found.
    pub detections: &'a [Detection],
    /// Size of the analysed frame.
    pub frame_size: FrameSize,
    /// Earlier sightings of this incident, oldest first (may be empty).
    pub track: &'a [Sighting],
    /// The detector's movement of the object relative to the camera's zones
    /// (may be empty); preferred over the box-size estimate of [`movement`].
    pub zone_moves: &'a [ZoneMove],
    /// The snapshot JPEG, for captioners that look at pixels.
    pub snapshot: Option<&'a [u8]>,
}

/// The text of a warning in both languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption {
    /// Korean.
    pub korean: String,
    /// English.
    pub english: String,
}

impl Caption {
    /// Korean first, then English: the post's text.
    pub fn text(&self) -> String {
        format!("{}\n\n{}", self.korean, self.english)
    }
}

/// Why a captioner failed.
#[derive(Debug, thiserror::Error)]
#[error("captioning failed: {0}")]
pub struct CaptionError(pub String);

/// Turns a scene into a warning.
pub trait Captioner: Send + Sync + 'static {
    /// Describes the scene.
    fn caption(&self, scene: &Scene<'_>) -> Result<Caption, CaptionError>;
}

/// The default captioner: a template filled from the detections.
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplateCaptioner;

fn weapon_names(event_type: EventType) -> (&'static str, &'static str, &'static str) {
    // (class, Korean with object particle, English)
    match event_type {
        EventType::Gun => ("gun", "총기를", "a gun"),
        EventType::Knife => ("knife", "흉기(칼)를", "a knife"),
        EventType::Fire => ("fire", "불을", "fire"),
        EventType::Accident => ("accident", "사고를", "an accident"),
    }
}

fn center(b: &BoundingBox) -> (f32, f32) {
    (b.x + b.width / 2.0, b.y + b.height / 2.0)
}

/// Where in the view a box is, in thirds: (Korean, English).
pub fn position(b: &BoundingBox, frame: FrameSize) -> (String, String) {
    let (cx, cy) = center(b);
    let third =
        |v: f32, size: u32| ((v / size.max(1) as f32) * 3.0).floor().clamp(0.0, 2.0) as usize;
    let (col, row) = (third(cx, frame.width), third(cy, frame.height));
    let ko_row = ["위쪽", "가운데", "아래쪽"][row];
    let ko_col = ["왼쪽", "가운데", "오른쪽"][col];
    let en_row = ["upper", "middle", "lower"][row];
    let en_col = ["left", "centre", "right"][col];
    let korean = match (row, col) {
        (1, 1) => "화면 중앙".to_owned(),
        (1, _) => format!("화면 {ko_col}"),
        (_, 1) => format!("화면 {ko_row}"),
        _ => format!("화면 {ko_col} {ko_row}"),
    };
    let english = match (row, col) {
        (1, 1) => "in the centre of the view".to_owned(),
        (1, _) => format!("on the {en_col} of the view"),
        (_, 1) => format!("in the {en_row} part of the view"),
        _ => format!("in the {en_row} {en_col} of the view"),
    };
    (korean, english)
}

/// Movement between the first sighting and now: growing boxes come closer.
/// (Korean, English), or `None` when there is no earlier sighting or no clear change.
pub fn movement(track: &[Sighting], now: &BoundingBox) -> Option<(&'static str, &'static str)> {
    let first = track.first()?;
    let area = |b: &BoundingBox| (b.width * b.height).max(1.0);
    let growth = area(now) / area(&first.bounding_box);
    if growth >= 1.25 {
        Some((
            "카메라 쪽으로 다가오고 있습니다.",
            "They are moving towards the camera.",
        ))
    } else if growth <= 0.8 {
        Some((
            "카메라에서 멀어지고 있습니다.",
            "They are moving away from the camera.",
        ))
    } else {
        None
    }
}

/// Movement relative to zones, approaching first: (Korean, English).
pub fn zone_movement(moves: &[ZoneMove]) -> Option<(String, String)> {
    let chosen = moves
        .iter()
        .find(|m| m.movement == Movement::Approaching)
        .or(moves.first())?;
    let zone = &chosen.zone;
    Some(match chosen.movement {
        Movement::Approaching => (
            format!("{} 쪽으로 다가가고 있습니다.", zone.korean),
            format!("They are approaching {}.", zone.english),
        ),
        Movement::Leaving => (
            format!("{}에서 멀어지고 있습니다.", zone.korean),
            format!("They are moving away from {}.", zone.english),
        ),
    })
}

fn kst(at: DateTime<Utc>) -> String {
    safecity_social::post::kst(at, "%H:%M")
}

impl Captioner for TemplateCaptioner {
    fn caption(&self, scene: &Scene<'_>) -> Result<Caption, CaptionError> {
        let (class, weapon_ko, weapon_en) = weapon_names(scene.event_type);
        let weapon = scene
            .detections
            .iter()
            .filter(|d| d.class == class)
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
            .or_else(|| scene.detections.first())
            .ok_or_else(|| CaptionError("the event has no detections".to_owned()))?;
        let people = scene
            .detections
            .iter()
            .filter(|d| d.class == "person")
            .count();
        let (where_ko, where_en) = position(&weapon.bounding_box, scene.frame_size);
        let confidence = (weapon.confidence * 100.0).round() as u32;
        let time = kst(scene.captured_at);
        let by_zone = zone_movement(scene.zone_moves);
        let by_size = movement(scene.track, &weapon.bounding_box)
            .map(|(ko, en)| (ko.to_owned(), en.to_owned()));
        let (move_ko, move_en) = match by_zone.or(by_size) {
            Some((ko, en)) => (format!(" {ko}"), format!(" {en}")),
            None => (String::new(), String::new()),
        };
        let people_ko = if people == 0 {
            String::new()
        } else {
            format!(" 주변에 사람 {people}명이 보입니다.")
        };
        let people_en = match people {
            0 => String::new(),
            1 => " One person is in view.".to_owned(),
            n => format!(" {n} people are in view."),
        };
        let korean = format!(
            "⚠️ 위험 인물 접근 경보\n{time} {place}({region})에서 {weapon_ko} 든 사람이 {where_ko}에 감지되었습니다 (신뢰도 {confidence}%).{people_ko}{move_ko} 주의하시고 안전한 곳으로 피하세요.",
            place = scene.place.korean,
            region = scene.region,
        );
        let english = format!(
            "⚠️ Dangerous person approaching\nAt {time}, a person with {weapon_en} was seen at {place} ({region}), {where_en} (confidence {confidence}%).{people_en}{move_en} Stay alert and move to a safe place.",
            place = scene.place.english,
            region = scene.region,
        );
        Ok(Caption { korean, english })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(class: &str, confidence: f32, x: f32, y: f32, w: f32, h: f32) -> Detection {
        Detection {
            class: class.into(),
            confidence,
            bounding_box: BoundingBox {
                x,
                y,
                width: w,
                height: h,
            },
        }
    }

    const FRAME: FrameSize = FrameSize {
        width: 600,
        height: 300,
    };

    fn scene<'a>(detections: &'a [Detection], track: &'a [Sighting]) -> Scene<'a> {
        Scene {
            event_type: EventType::Knife,
            place: Place {
                english: "Haeundae Beach".into(),
                korean: "해운대 해수욕장".into(),
            },
            region: "busan",
            captured_at: "2026-11-27T12:30:00Z".parse().expect("time"),
            detections,
            frame_size: FRAME,
            track,
            zone_moves: &[],
            snapshot: None,
        }
    }

    #[test]
    fn positions_are_named_by_thirds() {
        let at = |x: f32, y: f32| {
            position(
                &detection("knife", 1.0, x, y, 10.0, 10.0).bounding_box,
                FRAME,
            )
        };
        assert_eq!(
            at(20.0, 20.0),
            (
                "화면 왼쪽 위쪽".into(),
                "in the upper left of the view".into()
            )
        );
        assert_eq!(
            at(295.0, 145.0),
            ("화면 중앙".into(), "in the centre of the view".into())
        );
        assert_eq!(
            at(550.0, 140.0),
            ("화면 오른쪽".into(), "on the right of the view".into())
        );
        assert_eq!(
            at(290.0, 280.0),
            ("화면 아래쪽".into(), "in the lower part of the view".into())
        );
    }

    #[test]
    fn a_knife_scene_reads_well_in_both_languages() {
        let detections = [
            detection("person", 0.9, 380.0, 40.0, 100.0, 250.0),
            detection("knife", 0.42, 420.0, 200.0, 30.0, 40.0),
            detection("knife", 0.87, 430.0, 210.0, 30.0, 40.0),
            detection("person", 0.7, 50.0, 40.0, 90.0, 240.0),
        ];
        let caption = TemplateCaptioner
            .caption(&scene(&detections, &[]))
            .expect("caption");
        assert_eq!(
            caption.korean,
            "⚠️ 위험 인물 접근 경보\n21:30 KST 해운대 해수욕장(busan)에서 흉기(칼)를 든 사람이 화면 오른쪽 아래쪽에 감지되었습니다 (신뢰도 87%). 주변에 사람 2명이 보입니다. 주의하시고 안전한 곳으로 피하세요."
        );
        assert_eq!(
            caption.english,
            "⚠️ Dangerous person approaching\nAt 21:30 KST, a person with a knife was seen at Haeundae Beach (busan), in the lower right of the view (confidence 87%). 2 people are in view. Stay alert and move to a safe place."
        );
        assert!(caption.text().starts_with("⚠️ 위험 인물"));
    }

    #[test]
    fn growing_boxes_mean_approaching_and_shrinking_ones_leaving() {
        let now = detection("knife", 0.9, 300.0, 100.0, 60.0, 60.0);
        let small = Sighting {
            at: Utc::now(),
            bounding_box: BoundingBox {
                x: 300.0,
                y: 100.0,
                width: 30.0,
                height: 30.0,
            },
        };
        let big = Sighting {
            bounding_box: BoundingBox {
                width: 120.0,
                height: 120.0,
                ..small.bounding_box
            },
            ..small
        };
        assert_eq!(movement(&[], &now.bounding_box), None);
        assert_eq!(
            movement(&[small], &now.bounding_box).expect("approach").1,
            "They are moving towards the camera."
        );
        assert_eq!(
            movement(&[big], &now.bounding_box).expect("leave").1,
            "They are moving away from the camera."
        );
        let detections = [now];
        let caption = TemplateCaptioner
            .caption(&scene(&detections, &[small]))
            .expect("caption");
        assert!(
            caption.korean.contains("카메라 쪽으로 다가오고 있습니다."),
            "{}",
            caption.korean
        );
    }

    #[test]
    fn the_detectors_zone_movement_wins_over_box_sizes() {
        let now = detection("knife", 0.9, 300.0, 100.0, 60.0, 60.0);
        let small = Sighting {
            at: Utc::now(),
            bounding_box: BoundingBox {
                x: 300.0,
                y: 100.0,
                width: 30.0,
                height: 30.0,
            },
        };
        let gate = Place {
            english: "the school gate".into(),
            korean: "학교 정문".into(),
        };
        let moves = [
            ZoneMove {
                movement: Movement::Leaving,
                zone: Place {
                    english: "the crossing".into(),
                    korean: "횡단보도".into(),
                },
            },
            ZoneMove {
                movement: Movement::Approaching,
                zone: gate.clone(),
            },
        ];
        let detections = [now];
        let track = [small];
        let mut with_zones = scene(&detections, &track);
        with_zones.zone_moves = &moves;
        let caption = TemplateCaptioner.caption(&with_zones).expect("caption");
        assert!(
            caption
                .english
                .contains("They are approaching the school gate."),
            "{}",
            caption.english
        );
        assert!(
            caption
                .korean
                .contains("학교 정문 쪽으로 다가가고 있습니다."),
            "{}",
            caption.korean
        );
        assert!(!caption.english.contains("towards the camera"));
        let leaving = [ZoneMove {
            movement: Movement::Leaving,
            zone: gate,
        }];
        assert_eq!(
            zone_movement(&leaving).expect("leaving").1,
            "They are moving away from the school gate."
        );
    }

    #[test]
    fn no_detections_is_an_error() {
        assert!(TemplateCaptioner.caption(&scene(&[], &[])).is_err());
    }
}
