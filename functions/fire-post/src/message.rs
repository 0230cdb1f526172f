//! The words of a fire alert, in Korean and English: pure functions.

use chrono::{DateTime, FixedOffset, Utc};
use safecity_events::SafetyEvent;
use safecity_social::ledger::HeldIncident;

/// Korea Standard Time, the time people in the city read.
fn kst(at: DateTime<Utc>) -> String {
    let offset = FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset");
    at.with_timezone(&offset)
        .format("%Y-%m-%d %H:%M KST")
        .to_string()
}

fn confidence(event: &SafetyEvent) -> u32 {
    let best = event
        .detections
        .iter()
        .map(|d| d.confidence)
        .fold(0.0_f32, f32::max);
    (best * 100.0).round() as u32
}

/// One line describing the incident, kept in the ledger for follow-ups.
pub fn summary(event: &SafetyEvent) -> String {
    format!(
        "{} ({}) {}",
        event.camera.id,
        event.camera.region,
        kst(event.captured_at)
    )
}

/// The alert for one fire incident.
pub fn alert_text(event: &SafetyEvent) -> String {
    let camera = &event.camera;
    format!(
        "🔥 화재 경보 | Fire alert\n\
         {region} {id} 카메라 부근에서 화재가 감지되었습니다 ({time}, 신뢰도 {conf}%). 접근을 피하고 119 안내에 따르세요.\n\
         Fire detected near camera {id} in {region} at {time} (confidence {conf}%). Keep away and follow emergency instructions.\n\
         📍 https://www.openstreetmap.org/?mlat={lat:.5}&mlon={lon:.5}#map=17/{lat:.5}/{lon:.5}",
        region = camera.region,
        id = camera.id,
        time = kst(event.captured_at),
        conf = confidence(event),
        lat = camera.latitude,
        lon = camera.longitude,
    )
}

/// The end of a fire incident: the detector has not seen it for its window
/// (closed at `closed_at`).
pub fn closed_text(event: &SafetyEvent, closed_at: DateTime<Utc>) -> String {
    let camera = &event.camera;
    format!(
        "✅ 화재 경보 해제 | Fire no longer detected\n\
         {region} {id} 카메라 부근의 화재가 {time} 이후 더 이상 감지되지 않습니다. 현장 안내에 계속 따르세요.\n\
         The fire near camera {id} in {region} is no longer detected as of {time}. Keep following on-site instructions.",
        region = camera.region,
        id = camera.id,
        time = kst(closed_at),
    )
}

/// One follow-up covering incidents held back by storm control.
pub fn follow_up_text(region: &str, held: &[HeldIncident]) -> String {
    let lines: Vec<String> = held.iter().map(|h| format!("• {}", h.summary)).collect();
    format!(
        "🔥 화재 추가 경보 | More fire alerts\n\
         {region} 지역에서 화재가 {n}건 더 감지되었습니다.\n\
         {n} more fire incident(s) detected in {region}:\n{}",
        lines.join("\n"),
        n = held.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use safecity_events::{BoundingBox, Camera, Detection, EventType, FrameSize};

    fn event() -> SafetyEvent {
        SafetyEvent {
            event_type: EventType::Fire,
            incident_id: "inc-1".into(),
            camera: Camera {
                id: "busan-haeundae-01".into(),
                region: "busan".into(),
                latitude: 35.15871,
                longitude: 129.16042,
            },
            detections: vec![
                Detection {
                    class: "smoke".into(),
                    confidence: 0.55,
                    bounding_box: BoundingBox {
                        x: 0.0,
                        y: 0.0,
                        width: 1.0,
                        height: 1.0,
                    },
                },
                Detection {
                    class: "fire".into(),
                    confidence: 0.914,
                    bounding_box: BoundingBox {
                        x: 0.0,
                        y: 0.0,
                        width: 1.0,
                        height: 1.0,
                    },
                },
            ],
            captured_at: "2026-11-27T10:05:00Z".parse().expect("time"),
            frame_size: FrameSize {
                width: 640,
                height: 360,
            },
            snapshot: None,
            frame_age: None,
        }
    }

    #[test]
    fn the_close_says_where_and_since_when_in_both_languages() {
        let text = closed_text(&event(), "2026-11-27T10:20:00Z".parse().expect("time"));
        assert!(
            text.contains("busan-haeundae-01 카메라 부근의 화재가 2026-11-27 19:20 KST 이후 더 이상 감지되지 않습니다"),
            "{text}"
        );
        assert!(
            text.contains("The fire near camera busan-haeundae-01 in busan is no longer detected as of 2026-11-27 19:20 KST"),
            "{text}"
        );
    }

    #[test]
    fn the_alert_says_where_when_and_how_sure_in_both_languages() {
        let text = alert_text(&event());
        assert!(
            text.contains("busan busan-haeundae-01 카메라 부근에서 화재가 감지되었습니다"),
            "{text}"
        );
        assert!(text.contains("2026-11-27 19:05 KST"), "{text}");
        assert!(
            text.contains("신뢰도 91%") && text.contains("confidence 91%"),
            "{text}"
        );
        assert!(text.contains("mlat=35.15871&mlon=129.16042"), "{text}");
    }

    #[test]
    fn the_follow_up_lists_every_held_incident() {
        let held = vec![
            HeldIncident {
                incident_id: "a".into(),
                summary: "cam-a (busan) 2026-11-27 19:05 KST".into(),
                received_at: Utc::now(),
            },
            HeldIncident {
                incident_id: "b".into(),
                summary: "cam-b (busan) 2026-11-27 19:06 KST".into(),
                received_at: Utc::now(),
            },
        ];
        let text = follow_up_text("busan", &held);
        assert!(
            text.contains("화재가 2건 더") && text.contains("2 more fire incident(s)"),
            "{text}"
        );
        assert!(
            text.contains("• cam-a") && text.contains("• cam-b"),
            "{text}"
        );
    }
}
