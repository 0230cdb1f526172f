//! Scripted, deterministic camera scenes for the CCTV simulator.
//!
//! Frame `n` of a scene depends only on its [`SceneSpec`] and `n`: a still
//! background (procedural street or a real photo, optionally panned), sensor
//! noise, a slow global lighting drift, and objects that enter, move and leave
//! (solid boxes or sprites cut from a photo).

//!
//! The parts: `spec.rs` (what a scene is), `render.rs` ([`Scene`]: frames),
//! `background.rs` (photos and the procedural street), `jpeg.rs` (encoding
//! and corruption), `rng.rs` ([`SplitMix`]) and `error.rs`.

mod background;
mod error;
mod jpeg;
mod render;
mod rng;
mod spec;

pub use error::SceneError;
pub use jpeg::{corrupt, encode_jpeg};
pub use render::Scene;
pub use rng::SplitMix;
pub use spec::{Background, Drift, SceneObject, SceneSpec};

#[cfg(test)]
mod tests {
    use image::{ImageFormat, RgbImage};

    use super::*;

    fn spec() -> SceneSpec {
        SceneSpec {
            width: 64,
            height: 32,
            noise: 6,
            ..SceneSpec::default()
        }
    }

    #[test]
    fn frames_are_deterministic_and_noisy() {
        let scene = Scene::new(spec()).expect("scene");
        assert_eq!(scene.render(7), scene.render(7));
        assert_ne!(scene.render(7), scene.render(8));
        let a = scene.render(1);
        let b = scene.render(2);
        let max_diff = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .expect("pixels");
        assert!(max_diff <= 12, "noise stays within +-6: {max_diff}");
    }

    #[test]
    fn objects_move_and_leave() {
        let mut s = spec();
        s.noise = 0;
        s.background = Background::Flat { level: 0 };
        s.objects.push(SceneObject {
            enter: 2,
            leave: Some(5),
            x: 0.0,
            y: 0.0,
            vx: 10.0,
            vy: 0.0,
            width: 4,
            height: 4,
            color: [255, 255, 255],
            ..SceneObject::default()
        });
        let scene = Scene::new(s).expect("scene");
        assert_eq!(scene.render(1).get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(scene.render(2).get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(scene.render(3).get_pixel(10, 0).0, [255, 255, 255]);
        assert_eq!(scene.render(3).get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(scene.render(5).get_pixel(30, 0).0, [0, 0, 0]);
    }

    #[test]
    fn blinking_objects_come_and_go_and_stopped_ones_park() {
        let mut s = spec();
        s.noise = 0;
        s.background = Background::Flat { level: 0 };
        s.objects.push(SceneObject {
            enter: 2,
            width: 4,
            height: 4,
            color: [255, 255, 255],
            blink_frames: 3,
            ..SceneObject::default()
        });
        s.objects.push(SceneObject {
            enter: 0,
            x: 20.0,
            y: 20.0,
            vx: 5.0,
            width: 2,
            height: 2,
            color: [9, 9, 9],
            stop: Some(4),
            ..SceneObject::default()
        });
        let scene = Scene::new(s).expect("scene");
        let lit: Vec<bool> = (0..11)
            .map(|n| scene.render(n).get_pixel(1, 1).0 == [255, 255, 255])
            .collect();
        // Entered at 2: on 2-4, off 5-7, on 8-10.
        assert_eq!(
            lit,
            [
                false, false, true, true, true, false, false, false, true, true, true
            ]
        );
        // Moves 5 px a frame until frame 4 (x = 40), then stays there.
        assert_eq!(scene.render(3).get_pixel(35, 20).0, [9, 9, 9]);
        for n in [4, 5, 30] {
            assert_eq!(scene.render(n).get_pixel(40, 20).0, [9, 9, 9], "frame {n}");
        }
    }

    #[test]
    fn a_pan_moves_the_view_only_within_its_frames() {
        // A horizontal ramp as the "photo": the view's left column tells the offset.
        let dir = std::env::temp_dir().join(format!("safecity-pan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("ramp.png");
        let ramp = RgbImage::from_fn(80, 32, |x, _| image::Rgb([x as u8 * 3; 3]));
        ramp.save(&path).expect("ramp written");
        let mut s = spec();
        s.noise = 0;
        s.background = Background::Photo {
            path,
            pan_px_per_frame: 2.0,
            pan_from: 3,
            pan_until: Some(6),
        };
        let scene = Scene::new(s).expect("scene");
        let left = |n| scene.render(n).get_pixel(0, 0).0[0];
        // Canvas 80 wide (64 + 64 / 4): the ramp is drawn 1:1.
        assert_eq!([left(0), left(3)], [0, 0], "still before the pan");
        assert_eq!([left(4), left(5), left(6)], [6, 12, 18], "2 px a frame");
        assert_eq!([left(7), left(50)], [18, 18], "still after it");
        let _ = std::fs::remove_dir_all(&dir);
        let mut bad = spec();
        bad.background = Background::Photo {
            path: "x.jpg".into(),
            pan_px_per_frame: 1.0,
            pan_from: 5,
            pan_until: Some(5),
        };
        assert!(matches!(
            Scene::new(bad),
            Err(SceneError::InvalidSpec {
                field: "background.photo.pan_until",
                ..
            })
        ));
    }

    #[test]
    fn drift_shifts_every_pixel() {
        let mut s = spec();
        s.noise = 0;
        s.background = Background::Flat { level: 100 };
        s.drift = Some(Drift {
            amplitude: 20.0,
            period_frames: 40,
        });
        let scene = Scene::new(s).expect("scene");
        assert_eq!(scene.render(0).get_pixel(3, 3).0, [100; 3]);
        assert_eq!(scene.render(10).get_pixel(3, 3).0, [120; 3]);
        assert_eq!(scene.render(30).get_pixel(3, 3).0, [80; 3]);
    }

    #[test]
    fn corrupt_frames_do_not_decode() {
        let mut s = spec();
        s.corrupt_frames = vec![3];
        let scene = Scene::new(s).expect("scene");
        let good = scene.jpeg(2).expect("jpeg");
        assert!(image::load_from_memory_with_format(&good, ImageFormat::Jpeg).is_ok());
        let bad = scene.jpeg(3).expect("jpeg");
        assert!(bad.starts_with(&[0xFF, 0xD8]));
        assert!(image::load_from_memory_with_format(&bad, ImageFormat::Jpeg).is_err());
    }
}
