//! The picture of a frame for people (the web console's live view and snapshot, MQTT's
//! snapshot): the camera's or file's own JPEG when the frame is one, which costs nothing, else a
//! JPEG encoded from the frame, which costs an encode and is done only while someone wants
//! pictures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use image::RgbImage;

use crate::source::FrameData;

/// JPEG quality of encoded pictures: a live view, not an archive.
const QUALITY: u8 = 80;

/// Whether pictures are wanted, shared by the run loop (which says so) and the stage that
/// prepares frames (which makes them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Views {
    wanted: Arc<AtomicBool>,
    keep_images: Arc<AtomicBool>,
}

impl Views {
    /// Pictures of frames that are not JPEG are made while this is on.
    pub(crate) fn set_wanted(&self, on: bool) {
        self.wanted.store(on, Ordering::Relaxed);
    }

    /// Keep the decoded image of frames that are not JPEG (for `--capture`, which encodes the
    /// few it keeps): a copy of the image a frame, against an encode a frame.
    pub(crate) fn set_keep_images(&self, on: bool) {
        self.keep_images.store(on, Ordering::Relaxed);
    }

    /// A copy of the decoded image of a frame that is not a JPEG, when kept.
    pub(crate) fn kept(&self, image: &RgbImage) -> Option<Arc<RgbImage>> {
        self.keep_images
            .load(Ordering::Relaxed)
            .then(|| Arc::new(image.clone()))
    }

    /// The frame is a JPEG, its own picture.
    pub(crate) fn is_jpeg(data: &FrameData) -> bool {
        matches!(data, FrameData::Encoded(bytes) if is_jpeg(bytes))
    }

    /// The picture of a frame that is not a JPEG, from its decoded image, when wanted.
    pub(crate) fn encoded(&self, image: &RgbImage) -> Option<Arc<Vec<u8>>> {
        if self.wanted.load(Ordering::Relaxed) {
            encode(image).map(Arc::new)
        } else {
            None
        }
    }

    /// The picture of a frame that was prepared without error: a JPEG frame's own bytes (no
    /// copy), else `encoded` (from [`Self::encoded`]).
    pub(crate) fn picture(data: FrameData, encoded: Option<Arc<Vec<u8>>>) -> Option<Arc<Vec<u8>>> {
        match data {
            FrameData::Encoded(bytes) if is_jpeg(&bytes) => Some(Arc::new(bytes)),
            _ => encoded,
        }
    }
}

fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

fn encode(image: &RgbImage) -> Option<Vec<u8>> {
    encode_jpeg(image, QUALITY, "the live view")
}

/// `image` as a JPEG of `quality`; `None` (logged, naming `what`) if it cannot be encoded.
pub(crate) fn encode_jpeg(image: &RgbImage, quality: u8, what: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    match enc.encode_image(image) {
        Ok(()) => Some(out),
        Err(e) => {
            log::warn!("cannot encode {what}: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_frames_are_kept_as_they_are_and_others_encoded_only_when_wanted() {
        let img = RgbImage::from_fn(32, 24, |x, y| image::Rgb([x as u8 * 8, y as u8 * 10, 128]));
        let jpeg = encode(&img).unwrap();
        let v = Views::default();
        assert!(Views::is_jpeg(&FrameData::Encoded(jpeg.clone())));
        let kept = Views::picture(FrameData::Encoded(jpeg.clone()), None).unwrap();
        assert_eq!(*kept, jpeg, "a JPEG frame is its own picture");
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(!Views::is_jpeg(&FrameData::Encoded(png.clone())));
        assert!(Views::picture(FrameData::Encoded(png.clone()), v.encoded(&img)).is_none());
        v.set_wanted(true);
        let pic = Views::picture(FrameData::Encoded(png), v.encoded(&img)).unwrap();
        let back = image::load_from_memory(&pic).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (32, 24));
        assert!(is_jpeg(&pic));
    }
}
