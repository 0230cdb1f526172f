//! Tracking objects per camera across frames: a stable track id per object,
//! as the simple IoU trackers of Frigate and DeepStream do it. Pure: no
//! clock but the frames' capture times, no I/O.
//!
//! - A detection joins the track of the same event type whose last box it
//!   overlaps most, if the overlap (IoU) is at least [`MATCH_IOU`]; pairs are
//!   taken greedily, best overlap first, one detection per track. Others
//!   start new tracks.
//! - A track counts its **hits** (frames it was seen in): an incident needs
//!   `min_hits` (`SAFECITY_DETECTOR_MIN_TRACK_FRAMES`).
//! - A track whose box stays put (IoU with the box where it stopped of at
//!   least [`STILL_IOU`]) for `stationary_after` of capture time is
//!   **stationary** (a parked car). Moving tracks are forgotten after
//!   `memory` without a sighting; stationary ones after `stationary_memory`,
//!   so the parked car seen again an hour later is the same track.
//! - Frames may come out of order (batches, retries): an older frame adds
//!   hits but never moves a track back in time; an older frame showing the
//!   object where it stands now moves the start of its stillness back.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use safecity_cameras::Point;
use safecity_events::{BoundingBox, EventType};

/// Least overlap for a detection to continue a track.
pub const MATCH_IOU: f32 = 0.3;
/// Least overlap with the box where a track stopped for it to count as still.
pub const STILL_IOU: f32 = 0.7;
/// Ground points remembered per track (for movement).
const HISTORY: usize = 16;
/// Tracks remembered per camera at most (the least recently seen go first).
const MAX_TRACKS: usize = 256;

/// Intersection over union of two boxes (0 when either is empty).
pub fn iou(a: &BoundingBox, b: &BoundingBox) -> f32 {
    let x0 = a.x.max(b.x);
    let y0 = a.y.max(b.y);
    let x1 = (a.x + a.width).min(b.x + b.width);
    let y1 = (a.y + a.height).min(b.y + b.height);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = a.width * a.height + b.width * b.height - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// How tracks are kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackSettings {
    /// A moving track is forgotten after this long without a sighting.
    pub memory: chrono::Duration,
    /// Unmoved for this long = stationary.
    pub stationary_after: chrono::Duration,
    /// A stationary track is forgotten after this long without a sighting.
    pub stationary_memory: chrono::Duration,
}

/// One tracked object.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Stable id within the camera.
    pub id: u64,
    /// The event type its detections raise.
    pub event: EventType,
    /// Frames it was seen in.
    pub hits: u32,
    /// Its latest box (pixels of the frame).
    pub last_box: BoundingBox,
    /// Capture time of its first sighting.
    pub first_seen: DateTime<Utc>,
    /// Capture time of its latest sighting.
    pub last_seen: DateTime<Utc>,
    /// The box where it stopped moving, and since when.
    still: (BoundingBox, DateTime<Utc>),
    /// Recent ground points (relative), oldest first.
    pub ground: VecDeque<(DateTime<Utc>, Point)>,
    /// The incident this track opened or joined, once it did.
    pub incident: Option<String>,
}

impl Track {
    /// Whether the object has not moved for `stationary_after`.
    pub fn stationary(&self, settings: &TrackSettings) -> bool {
        self.last_seen - self.still.1 >= settings.stationary_after
    }

    fn forgotten(&self, at: DateTime<Utc>, settings: &TrackSettings) -> bool {
        let memory = if self.stationary(settings) {
            settings.stationary_memory
        } else {
            settings.memory
        };
        at - self.last_seen > memory
    }
}

/// A detection handed to the tracker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// Its event type (tracks never mix types).
    pub event: EventType,
    /// Its box.
    pub bounding_box: BoundingBox,
    /// Where it stands (relative): see `zones::ground_point`.
    pub ground: Point,
}

/// The tracks of one camera.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraTracks {
    next_id: u64,
    tracks: Vec<Track>,
}

impl CameraTracks {
    /// The tracks now remembered.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// The track `id`.
    pub fn track(&self, id: u64) -> Option<&Track> {
        self.tracks.iter().find(|t| t.id == id)
    }

    /// The track `id`, to mark its incident.
    pub fn track_mut(&mut self, id: u64) -> Option<&mut Track> {
        self.tracks.iter_mut().find(|t| t.id == id)
    }

    /// Greedy IoU matching of `observed` to the tracks: the track index per
    /// detection, or `None` for a new object.
    fn matches(&self, observed: &[Observed]) -> Vec<Option<usize>> {
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (d, o) in observed.iter().enumerate() {
            for (t, track) in self.tracks.iter().enumerate() {
                if track.event != o.event {
                    continue;
                }
                let overlap = iou(&track.last_box, &o.bounding_box);
                if overlap >= MATCH_IOU {
                    pairs.push((overlap, d, t));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut by_detection = vec![None; observed.len()];
        let mut taken = vec![false; self.tracks.len()];
        for (_, d, t) in pairs {
            if by_detection[d].is_none() && !taken[t] {
                by_detection[d] = Some(t);
                taken[t] = true;
            }
        }
        by_detection
    }

    /// The track ids `observed` would join, without changing anything (for
    /// a redelivered frame): `None` where no track matches.
    pub fn peek(&self, observed: &[Observed]) -> Vec<Option<u64>> {
        self.matches(observed)
            .into_iter()
            .map(|t| t.map(|t| self.tracks[t].id))
            .collect()
    }

    /// Files the detections of a frame captured `at`: forgets old tracks,
    /// continues or starts one per detection, and returns their ids in the
    /// order of `observed`.
    pub fn update(
        &mut self,
        at: DateTime<Utc>,
        observed: &[Observed],
        settings: &TrackSettings,
    ) -> Vec<u64> {
        self.tracks.retain(|t| !t.forgotten(at, settings));
        let matches = self.matches(observed);
        let mut ids = Vec::with_capacity(observed.len());
        for (o, matched) in observed.iter().zip(matches) {
            match matched {
                Some(t) => {
                    let track = &mut self.tracks[t];
                    track.hits += 1;
                    if at < track.last_seen && iou(&track.still.0, &o.bounding_box) >= STILL_IOU {
                        // A late frame of the object where it stands now:
                        // it has stood there since then at least.
                        track.still.1 = track.still.1.min(at);
                    }
                    if at >= track.last_seen {
                        track.last_seen = at;
                        track.last_box = o.bounding_box;
                        if iou(&track.still.0, &o.bounding_box) < STILL_IOU {
                            track.still = (o.bounding_box, at);
                        }
                        track.ground.push_back((at, o.ground));
                        if track.ground.len() > HISTORY {
                            track.ground.pop_front();
                        }
                    }
                    track.first_seen = track.first_seen.min(at);
                    ids.push(track.id);
                }
                None => {
                    self.next_id += 1;
                    self.tracks.push(Track {
                        id: self.next_id,
                        event: o.event,
                        hits: 1,
                        last_box: o.bounding_box,
                        first_seen: at,
                        last_seen: at,
                        still: (o.bounding_box, at),
                        ground: VecDeque::from([(at, o.ground)]),
                        incident: None,
                    });
                    ids.push(self.next_id);
                }
            }
        }
        if self.tracks.len() > MAX_TRACKS {
            self.tracks.sort_by_key(|t| std::cmp::Reverse(t.last_seen));
            self.tracks.truncate(MAX_TRACKS);
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: f64) -> DateTime<Utc> {
        let base: DateTime<Utc> = "2026-12-02T10:00:00Z".parse().expect("time");
        base + chrono::Duration::milliseconds((seconds * 1000.0) as i64)
    }

    fn settings() -> TrackSettings {
        TrackSettings {
            memory: chrono::Duration::seconds(5),
            stationary_after: chrono::Duration::seconds(10),
            stationary_memory: chrono::Duration::seconds(3600),
        }
    }

    fn at(x: f32, y: f32) -> Observed {
        Observed {
            event: EventType::Accident,
            bounding_box: BoundingBox {
                x,
                y,
                width: 100.0,
                height: 50.0,
            },
            ground: Point {
                x: f64::from(x + 50.0) / 640.0,
                y: f64::from(y + 50.0) / 360.0,
            },
        }
    }

    #[test]
    fn iou_of_boxes() {
        let a = at(0.0, 0.0).bounding_box;
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &at(200.0, 0.0).bounding_box), 0.0);
        // Half overlap: 2500 / (5000 + 5000 - 2500) = 1/3.
        assert!((iou(&a, &at(50.0, 0.0).bounding_box) - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn a_moving_object_keeps_its_id_and_counts_hits() {
        let mut tracks = CameraTracks::default();
        let s = settings();
        let first = tracks.update(t(0.0), &[at(0.0, 100.0)], &s);
        let second = tracks.update(t(0.2), &[at(20.0, 100.0)], &s);
        let third = tracks.update(t(0.4), &[at(40.0, 100.0), at(400.0, 10.0)], &s);
        assert_eq!(first, second);
        assert_eq!(third[0], first[0]);
        assert_ne!(third[1], first[0], "a second object gets its own track");
        let track = tracks.track(first[0]).expect("track");
        assert_eq!(track.hits, 3);
        assert_eq!(track.ground.len(), 3);
        assert!(!track.stationary(&s));
    }

    #[test]
    fn types_do_not_mix_and_one_detection_per_track() {
        let mut tracks = CameraTracks::default();
        let s = settings();
        let car = tracks.update(t(0.0), &[at(0.0, 0.0)], &s)[0];
        let knife = Observed {
            event: EventType::Knife,
            ..at(0.0, 0.0)
        };
        let ids = tracks.update(t(0.1), &[knife, at(5.0, 0.0), at(8.0, 0.0)], &s);
        assert_ne!(ids[0], car, "a knife never continues a car's track");
        assert_eq!(ids[1], car, "the closer box wins");
        assert_ne!(ids[2], car);
    }

    #[test]
    fn moving_tracks_are_forgotten_after_the_memory_and_still_ones_are_kept() {
        let mut tracks = CameraTracks::default();
        let s = settings();
        let walker = tracks.update(t(0.0), &[at(0.0, 0.0)], &s)[0];
        let again = tracks.update(t(6.0), &[at(0.0, 0.0)], &s)[0];
        assert_ne!(walker, again, "6 s without a sighting: a new object");
        // A parked car: the same box for 10 s is stationary...
        let mut tracks = CameraTracks::default();
        let car = tracks.update(t(0.0), &[at(300.0, 200.0)], &s)[0];
        for second in 1..=10 {
            tracks.update(t(f64::from(second)), &[at(301.0, 200.0)], &s);
        }
        assert!(tracks.track(car).expect("car").stationary(&s));
        // ...and still the same track after twenty minutes unseen.
        let later = tracks.update(t(1210.0), &[at(300.0, 201.0)], &s)[0];
        assert_eq!(later, car);
        // Moving off makes it an ordinary track again.
        tracks.update(t(1210.5), &[at(340.0, 201.0)], &s);
        assert!(!tracks.track(car).expect("car").stationary(&s));
    }

    #[test]
    fn late_frames_add_hits_but_do_not_move_the_track_back() {
        let mut tracks = CameraTracks::default();
        let s = settings();
        let id = tracks.update(t(1.0), &[at(40.0, 0.0)], &s)[0];
        tracks.update(t(0.5), &[at(20.0, 0.0)], &s);
        let track = tracks.track(id).expect("track");
        assert_eq!(track.hits, 2);
        assert_eq!(track.last_box.x, 40.0);
        assert_eq!((track.first_seen, track.last_seen), (t(0.5), t(1.0)));
        assert_eq!(tracks.peek(&[at(41.0, 0.0)]), [Some(id)]);
        assert_eq!(tracks.peek(&[at(400.0, 0.0)]), [None]);
        assert_eq!(
            tracks.track(id).expect("track").hits,
            2,
            "peek changes nothing"
        );
    }
}
