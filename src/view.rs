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
}

impl Views {
    /// Pictures of frames that are not JPEG are made while this is on.
    pub(crate) fn set_wanted(&self, on: bool) {
        self.wanted.store(on, Ordering::Relaxed);
    }

    /// The picture of a frame that was prepared without error.
    pub(crate) fn picture(&self, data: FrameData) -> Option<Arc<Vec<u8>>> {
        match data {
            FrameData::Encoded(bytes) if is_jpeg(&bytes) => Some(Arc::new(bytes)),
            _ if !self.wanted.load(Ordering::Relaxed) => None,
            FrameData::Encoded(bytes) => {
                // Decoded once already within the decode limits (the frame was prepared).
                let image = image::load_from_memory(&bytes).ok()?.to_rgb8();
                encode(&image).map(Arc::new)
            }
            FrameData::Yuyv {
                data,
                width,
                height,
                stride,
            } => {
                let image =
                    crate::source::convert::yuyv_to_rgb(&data, width, height, stride).ok()?;
                encode(&image).map(Arc::new)
            }
        }
    }
}

fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

fn encode(image: &RgbImage) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY);
    match enc.encode_image(image) {
        Ok(()) => Some(out),
        Err(e) => {
            log::warn!("cannot encode the live view: {e}");
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
        let kept = v.picture(FrameData::Encoded(jpeg.clone())).unwrap();
        assert_eq!(*kept, jpeg, "a JPEG frame is its own picture");
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(v.picture(FrameData::Encoded(png.clone())).is_none());
        v.set_wanted(true);
        let pic = v.picture(FrameData::Encoded(png)).unwrap();
        let back = image::load_from_memory(&pic).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (32, 24));
        assert!(is_jpeg(&pic));
    }
}
