//! Camera path without a camera: enumeration, a clear error for a missing device, and the
//! post-capture decoding on recorded MJPEG / YUYV / NV12 frames (made by ffmpeg from the test
//! pattern; regenerate with `cargo test -p streamit-media --test media make_fixtures -- --ignored`).

use std::path::PathBuf;

use streamit_media::camera::{CameraPixelFormat, CameraSource, decode_camera_frame, list_cameras};
use streamit_media::frame::psnr_y;
use streamit_media::pattern::generate_pattern;
use streamit_media::{MediaClock, MediaTime, VideoSource, read_pattern_code};

const W: u32 = 320;
const H: u32 = 180;
const FRAME_NO: u32 = 42;
const TS: u64 = 1_234_567;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn enumeration_works_without_cameras() {
    let cams = list_cameras().unwrap();
    println!("cameras: {cams:?}");
    for c in &cams {
        assert!(!c.name.is_empty());
    }
}

#[test]
fn opening_a_missing_camera_is_a_clear_error() {
    let err = Box::new(CameraSource::new(57, 1280, 720, 30))
        .start(MediaClock::new())
        .unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert!(msg.contains("camera 57"), "{msg}");
}

#[test]
fn recorded_frames_decode_to_the_pattern() {
    let reference = generate_pattern(W, H, FRAME_NO, MediaTime(TS)).unwrap();
    for (file, fmt, min_psnr) in [
        ("pattern_320x180.mjpeg", CameraPixelFormat::Mjpeg, 30.0),
        ("pattern_320x180.yuyv", CameraPixelFormat::Yuyv, 40.0),
        ("pattern_320x180.nv12", CameraPixelFormat::Nv12, 40.0),
    ] {
        let data = std::fs::read(fixtures().join(file)).unwrap();
        let f = decode_camera_frame(fmt, &data, W, H, MediaTime(5)).unwrap();
        assert_eq!((f.width, f.height, f.pts), (W, H, MediaTime(5)));
        let p = psnr_y(&reference, &f).unwrap();
        println!("{file}: PSNR-Y {p:.1} dB");
        assert!(p >= min_psnr, "{file}: {p}");
        assert_eq!(read_pattern_code(&f), Some((FRAME_NO, TS)), "{file}");
        if fmt != CameraPixelFormat::Mjpeg {
            // lossless luma; NV12 is lossless in chroma too, YUYV's 4:2:2 chroma was
            // resampled vertically by ffmpeg
            assert!(f.y() == reference.y(), "{file}: luma differs");
            let pu = streamit_media::frame::psnr(f.u(), reference.u());
            let pv = streamit_media::frame::psnr(f.v(), reference.v());
            println!("{file}: PSNR-U {pu:.1} dB, PSNR-V {pv:.1} dB");
            if fmt == CameraPixelFormat::Nv12 {
                assert!(f.data() == reference.data(), "{file}: chroma differs");
            } else {
                assert!(pu >= 35.0 && pv >= 35.0, "{file}: chroma PSNR {pu} {pv}");
            }
        }
    }
    // truncated input is an error, not a panic
    let data = std::fs::read(fixtures().join("pattern_320x180.yuyv")).unwrap();
    assert!(
        decode_camera_frame(CameraPixelFormat::Yuyv, &data[..1000], W, H, MediaTime(0)).is_err()
    );
    assert!(
        decode_camera_frame(CameraPixelFormat::Mjpeg, &data[..1000], W, H, MediaTime(0)).is_err()
    );
}

#[test]
#[ignore = "regenerates the committed fixtures with ffmpeg"]
fn make_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let y4m = dir.path().join("p.y4m");
    let f = generate_pattern(W, H, FRAME_NO, MediaTime(TS)).unwrap();
    streamit_media::source::write_y4m(&y4m, &[f], 30).unwrap();
    for (args, out) in [
        (
            vec!["-c:v", "mjpeg", "-q:v", "2", "-f", "mjpeg"],
            "pattern_320x180.mjpeg",
        ),
        (
            vec!["-pix_fmt", "yuyv422", "-f", "rawvideo"],
            "pattern_320x180.yuyv",
        ),
        (
            vec!["-pix_fmt", "nv12", "-f", "rawvideo"],
            "pattern_320x180.nv12",
        ),
    ] {
        let st = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&y4m)
            .args(args)
            .arg(fixtures().join(out))
            .status()
            .unwrap();
        assert!(st.success());
    }
}
