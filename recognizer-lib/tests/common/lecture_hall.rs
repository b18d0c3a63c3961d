//! A lecture hall built from the data set's photos, for the small-face and crowd tests and the
//! crowd benchmark: a 1280x720 frame with two back rows of ~30 px faces and two front rows of
//! ~50 px faces, 20 people enrolled from `faces/train` (probe photos from `faces/val`) and 8
//! strangers (people never enrolled: `faces/val/att_s31..`, and `examples/`), each person a
//! head-and-shoulders cut-out of their photo scaled so that MTCNN's box of their face has the
//! row's size. Frames move every person by a pixel or two, as people in a hall do; videos are
//! encoded with the `ffmpeg` CLI (libx264) into a temporary folder.
//!
//! Which photos: each person's first probe photo (file name order) that the photo pipeline
//! (MTCNN at full size) names correctly, and for strangers the first that it names nobody in.
//! The hall asks whether video at 50 and 30 px names the people a full-size photo names.
//!
//! Included with `#[path]` by the tests and benches that use it (it needs the `image` crate).

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use image::imageops::FilterType;
use image::{Rgb, RgbImage};
use rollcall_recognizer::clip::{ClipAnalysis, ClipTimings};
use rollcall_recognizer::directory::sqlite::SqliteDirectory;
use rollcall_recognizer::enrollment::{
    embed_person_photos, load_gallery, recalibrate, scan_photo_tree, store_enrollment,
};
use rollcall_recognizer::vision::{load_image, FacePipeline, Gallery, Identity};

/// Frame size.
pub const WIDTH: u32 = 1280;
/// Frame size.
pub const HEIGHT: u32 = 720;
/// Face size (longer side of MTCNN's box) in the two front rows.
pub const FRONT_FACE_PX: f32 = 50.0;
/// Face size in the two back rows.
pub const BACK_FACE_PX: f32 = 30.0;
/// Enrolled people per row size, and strangers per row size.
const ENROLLED_PER_SIZE: usize = 10;
const STRANGERS_PER_SIZE: usize = 4;
/// Seats per row; rows (face centre height, face size), back to front.
const SEATS_PER_ROW: usize = 7;
const ROWS: [(f32, f32); 4] = [
    (150.0, BACK_FACE_PX),
    (255.0, BACK_FACE_PX),
    (400.0, FRONT_FACE_PX),
    (575.0, FRONT_FACE_PX),
];
/// Strangers: never-enrolled people of `faces/val` and of `examples/`.
const STRANGERS: [&str; 8] = [
    "examples/kit_harington",
    "faces/val/att_s31",
    "examples/rose_leslie",
    "faces/val/att_s33",
    "examples/lin_manuel_miranda",
    "faces/val/att_s35",
    "examples/alex_lacamoire",
    "faces/val/att_s37",
];

/// One person in the hall.
pub struct Seat {
    /// Their id (folder name); strangers' ids are not in the gallery.
    pub person: String,
    /// Whether they are enrolled.
    pub enrolled: bool,
    /// Their face size in the frame (pixels).
    pub face_px: f32,
    /// The photo they were cut from.
    pub photo: PathBuf,
    /// Where their face's centre is in frame 0.
    pub centre: (f32, f32),
    /// The cut-out, and where its face centre is inside it.
    cutout: RgbImage,
    anchor: (f32, f32),
}

/// The hall: the people in their seats over a background.
pub struct LectureHall {
    /// Everyone, back rows first.
    pub seats: Vec<Seat>,
    background: RgbImage,
}

/// A person's cut-out from a photo, scaled so that their face is `face_px`, and the face
/// centre inside it; an error when the photo pipeline finds no face.
fn cutout(
    pipeline: &FacePipeline,
    image: &RgbImage,
    face_px: f32,
) -> Result<(RgbImage, (f32, f32)), String> {
    let detections = pipeline.detect(image).map_err(|e| e.to_string())?;
    let face = detections
        .faces
        .iter()
        .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
        .ok_or("no face")?;
    let b = face.bbox;
    let side = b.width().max(b.height());
    let (cx, cy) = ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0);
    // Head and shoulders: 2.4 face widths wide, from 1.1 above the centre to 1.5 below.
    let (w, h) = (image.width() as f32, image.height() as f32);
    let x0 = (cx - 1.2 * side).max(0.0).floor();
    let y0 = (cy - 1.1 * side).max(0.0).floor();
    let x1 = (cx + 1.2 * side).min(w).ceil();
    let y1 = (cy + 1.5 * side).min(h).ceil();
    let crop = image::imageops::crop_imm(
        image,
        x0 as u32,
        y0 as u32,
        (x1 - x0) as u32,
        (y1 - y0) as u32,
    )
    .to_image();
    let scale = face_px / side;
    let (sw, sh) = (
        ((x1 - x0) * scale).round().max(1.0) as u32,
        ((y1 - y0) * scale).round().max(1.0) as u32,
    );
    let scaled = image::imageops::resize(&crop, sw, sh, FilterType::Triangle);
    Ok((scaled, ((cx - x0) * scale, (cy - y0) * scale)))
}

/// The first photo of `photos` whose largest face `accept`s the photo pipeline's verdict.
fn first_photo(
    pipeline: &FacePipeline,
    photos: &[PathBuf],
    accept: impl Fn(&Identity) -> bool,
    gallery: &Gallery,
) -> Option<(PathBuf, RgbImage)> {
    photos.iter().find_map(|path| {
        let image = load_image(path).ok()?;
        let (face, _, _) = pipeline.largest_face(&image).ok()?;
        accept(&gallery.identify(&face?.embedding)).then(|| (path.clone(), image))
    })
}

/// A deterministic permutation of `0..n` (a fixed linear congruential shuffle).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    order
}

/// Everyone of `faces/train` (45 people), as `rollcall enroll --photos faces/train` enrols them:
/// the gallery [`LectureHall::build`] wants.
pub fn everyone_enrolled(data: &Path, pipeline: &FacePipeline) -> Result<Gallery, String> {
    let directory = SqliteDirectory::open_in_memory().map_err(|e| e.to_string())?;
    let tree = scan_photo_tree(&data.join("faces/train")).map_err(|e| e.to_string())?;
    for (person, photos) in &tree.people {
        let enrollment = embed_person_photos(pipeline, person, photos);
        store_enrollment(&directory, &enrollment).map_err(|e| e.to_string())?;
    }
    recalibrate(&directory).map_err(|e| e.to_string())?;
    load_gallery(&directory, None).map_err(|e| e.to_string())
}

/// A stream's analyses clip by clip, for the crowd benches: faces embedded, people named, and
/// the total, decode, detect and embed milliseconds of each clip.
pub fn per_clip_figures(runs: &[ClipAnalysis]) -> String {
    let ms = |stage: fn(&ClipTimings) -> f64| {
        runs.iter()
            .map(|a| stage(&a.timings).round() as u64)
            .collect::<Vec<_>>()
    };
    format!(
        "faces embedded per clip {:?}, people named per clip {:?}, total ms {:?} (decode {:?}, \
         detect {:?}, embed {:?})",
        runs.iter().map(|a| a.faces_embedded).collect::<Vec<_>>(),
        runs.iter().map(|a| a.people.len()).collect::<Vec<_>>(),
        ms(|t| t.total_ms),
        ms(|t| t.decode_ms),
        ms(|t| t.detect_ms),
        ms(|t| t.embed_ms),
    )
}

impl LectureHall {
    /// Pick the people and their photos (see the module documentation) and seat them; `gallery`
    /// holds everyone of `faces/train`, enrolled with `pipeline`.
    pub fn build(
        data: &Path,
        pipeline: &FacePipeline,
        gallery: &Gallery,
    ) -> Result<LectureHall, String> {
        let val = scan_photo_tree(&data.join("faces/val")).map_err(|e| e.to_string())?;
        let train = scan_photo_tree(&data.join("faces/train")).map_err(|e| e.to_string())?;
        let enrolled_ids: Vec<&str> = train.people.iter().map(|(p, _)| p.as_str()).collect();
        // LFW and the celebrities first (colour photos), then AT&T (grey crops).
        let mut candidates: Vec<&(String, Vec<PathBuf>)> = val
            .people
            .iter()
            .filter(|(p, _)| enrolled_ids.contains(&p.as_str()))
            .collect();
        candidates.sort_by_key(|(p, _)| (p.starts_with("att_"), p.clone()));

        let mut people: Vec<(String, bool, PathBuf, RgbImage)> = Vec::new();
        for (person, photos) in candidates {
            if people.len() == 2 * ENROLLED_PER_SIZE {
                break;
            }
            let named = |identity: &Identity| matches!(identity, Identity::Known(c) if c.person_id == *person);
            if let Some((path, image)) = first_photo(pipeline, photos, named, gallery) {
                people.push((person.clone(), true, path, image));
            }
        }
        if people.len() < 2 * ENROLLED_PER_SIZE {
            return Err(format!(
                "only {} enrolled people have a probe photo the photo pipeline names",
                people.len()
            ));
        }
        for folder in STRANGERS {
            let dir = data.join(folder);
            let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            photos.sort();
            let nobody = |identity: &Identity| matches!(identity, Identity::Unknown { .. });
            let (path, image) = first_photo(pipeline, &photos, nobody, gallery)
                .ok_or_else(|| format!("{folder}: no photo of this stranger stays unknown"))?;
            let id = Path::new(folder)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            people.push((id, false, path, image));
        }

        // Half of each group in the back rows, half in the front rows, seats shuffled.
        let mut back = Vec::new();
        let mut front = Vec::new();
        let (enrolled, strangers): (Vec<_>, Vec<_>) = people
            .into_iter()
            .partition(|(_, enrolled, _, _)| *enrolled);
        for group in [enrolled, strangers] {
            for (i, person) in group.into_iter().enumerate() {
                if i % 2 == 0 {
                    back.push(person);
                } else {
                    front.push(person);
                }
            }
        }
        let mut seats = Vec::new();
        for (group, rows, seed) in [(back, &ROWS[..2], 7u64), (front, &ROWS[2..], 11u64)] {
            let places = shuffled(rows.len() * SEATS_PER_ROW, seed);
            for (k, (person, enrolled, photo, image)) in group.into_iter().enumerate() {
                let place = places[k];
                let (row_y, face_px) = rows[place / SEATS_PER_ROW];
                let column = place % SEATS_PER_ROW;
                let x = 95.0
                    + column as f32 * 181.0
                    + if place / SEATS_PER_ROW == 1 {
                        60.0
                    } else {
                        0.0
                    };
                let (cutout, anchor) = cutout(pipeline, &image, face_px)
                    .map_err(|e| format!("{}: {e}", photo.display()))?;
                seats.push(Seat {
                    person,
                    enrolled,
                    face_px,
                    photo,
                    centre: (x, row_y),
                    cutout,
                    anchor,
                });
            }
        }
        assert_eq!(
            seats.len(),
            2 * (ENROLLED_PER_SIZE + STRANGERS_PER_SIZE),
            "every person seated"
        );
        Ok(LectureHall {
            seats,
            background: background(),
        })
    }

    /// Enrolled people seated with faces of `face_px`.
    pub fn enrolled_at(&self, face_px: f32) -> Vec<&str> {
        self.seats
            .iter()
            .filter(|s| s.enrolled && s.face_px == face_px)
            .map(|s| s.person.as_str())
            .collect()
    }

    /// Strangers in the hall.
    pub fn strangers(&self) -> usize {
        self.seats.iter().filter(|s| !s.enrolled).count()
    }

    /// Frame `t`: everyone moved by a pixel or two from their seat.
    pub fn frame(&self, t: u32) -> RgbImage {
        self.frame_of(t, |_| true)
    }

    /// Frame `t` with only the seats `seated` keeps (the others empty).
    pub fn frame_of(&self, t: u32, seated: impl Fn(&Seat) -> bool) -> RgbImage {
        let mut frame = self.background.clone();
        for (k, seat) in self.seats.iter().enumerate() {
            if !seated(seat) {
                continue;
            }
            let phase = k as f32;
            let dx = (2.0 * (0.35 * t as f32 + 1.3 * phase).sin()).round();
            let dy = (0.27 * t as f32 + 0.7 * phase).sin().round();
            let x = (seat.centre.0 + dx - seat.anchor.0).round() as i64;
            let y = (seat.centre.1 + dy - seat.anchor.1).round() as i64;
            image::imageops::overlay(&mut frame, &seat.cutout, x, y);
        }
        frame
    }

    /// `frames` frames at `fps` encoded by the `ffmpeg` CLI (libx264, 4:2:0) into `out`, with
    /// `extra` output options (e.g. `-bf 0 -g 15 -f h264` for the edge's raw clip format).
    pub fn encode(&self, out: &Path, frames: u32, fps: u32, extra: &[&str]) -> Result<(), String> {
        Self::encode_frames(out, frames, fps, extra, |t| self.frame(t))
    }

    /// [`encode`](Self::encode) with frame `t` drawn by `frame` (e.g. with
    /// [`frame_of`](Self::frame_of)).
    pub fn encode_frames(
        out: &Path,
        frames: u32,
        fps: u32,
        extra: &[&str],
        frame: impl Fn(u32) -> RgbImage,
    ) -> Result<(), String> {
        let mut child = Command::new("ffmpeg")
            .args([
                "-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            ])
            .args([
                "-s",
                &format!("{WIDTH}x{HEIGHT}"),
                "-r",
                &fps.to_string(),
                "-i",
                "-",
            ])
            .args([
                "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18",
            ])
            .args(extra)
            .arg(out)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
        {
            let mut stdin = child.stdin.take().ok_or("no ffmpeg stdin")?;
            for t in 0..frames {
                stdin
                    .write_all(frame(t).as_raw())
                    .map_err(|e| format!("writing frames to ffmpeg: {e}"))?;
            }
        }
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!(
                "ffmpeg (with libx264) failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(())
    }
}

/// The face of each person's first probe photo in `faces/val` (55 people) with its face scaled
/// to `face_px`, laid out in a grid (3 face sizes apart, at least 40 px) over a plain
/// `width` x `height` frame, as many as fit; returns the frame and the face centres. For
/// measuring which face sizes a detector finds.
pub fn face_grid(
    data: &Path,
    pipeline: &FacePipeline,
    face_px: f32,
    width: u32,
    height: u32,
) -> Result<(RgbImage, Vec<(f32, f32)>), String> {
    let val = scan_photo_tree(&data.join("faces/val")).map_err(|e| e.to_string())?;
    let mut frame = RgbImage::from_pixel(width, height, Rgb([90, 90, 100]));
    let step = (face_px * 3.0).max(40.0);
    let mut centres = Vec::new();
    let (mut x, mut y) = (step / 2.0 + 5.0, step / 2.0 + 5.0);
    for (_, photos) in &val.people {
        if y + step / 2.0 > height as f32 {
            break;
        }
        let Some(photo) = photos.first() else {
            continue;
        };
        let image = load_image(photo).map_err(|e| e.to_string())?;
        let Ok((cutout, anchor)) = cutout(pipeline, &image, face_px) else {
            continue;
        };
        let (left, top) = ((x - anchor.0).round() as i64, (y - anchor.1).round() as i64);
        image::imageops::overlay(&mut frame, &cutout, left, top);
        centres.push((x, y));
        x += step;
        if x + step / 2.0 > width as f32 {
            x = step / 2.0 + 5.0;
            y += step;
        }
    }
    Ok((frame, centres))
}

/// How many of `centres` (faces of `face_px`) a box of `boxes` is centred on.
pub fn found(
    centres: &[(f32, f32)],
    face_px: f32,
    boxes: &[rollcall_recognizer::vision::FaceBox],
) -> usize {
    centres
        .iter()
        .filter(|(cx, cy)| {
            boxes.iter().any(|b| {
                ((b.x1 + b.x2) / 2.0 - cx).abs() < face_px * 0.5
                    && ((b.y1 + b.y2) / 2.0 - cy).abs() < face_px * 0.6
            })
        })
        .count()
}

/// Tiers of a lecture hall: a wall getting lighter towards the front, a desk under each row.
fn background() -> RgbImage {
    RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let yf = y as f32;
        let desk = ROWS
            .iter()
            .any(|(row_y, face)| yf > row_y + 1.6 * face && yf < row_y + 2.3 * face);
        if desk {
            Rgb([118, 84, 52])
        } else {
            let shade = (55.0 + 70.0 * yf / HEIGHT as f32) as u8;
            let grain = ((x * 7 + y * 13) % 9) as u8;
            Rgb([
                shade + grain,
                shade + grain,
                (shade + 12).saturating_add(grain),
            ])
        }
    })
}
