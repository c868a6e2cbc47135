//! What a byte stream that should be MJPEG is, from its first bytes.
//!
//! A Raspberry Pi's camera tools (`rpicam-vid`, `libcamera-vid`) write H.264 unless asked for
//! MJPEG, and a pipe from ffmpeg may carry a container or raw frames. Cut as MJPEG, such a
//! stream yields no frame at all, or a vague warning about skipped stretches; recognised here
//! within its first kilobytes, it is refused with a sentence that says how to ask for MJPEG.

/// What the head of a stream looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// JPEG frames (a JPEG start-of-image marker first).
    Mjpeg,
    /// An H.264 Annex B elementary stream (what `rpicam-vid` writes by default).
    H264,
    /// An H.265 (HEVC) Annex B elementary stream.
    H265,
    /// An MP4 / QuickTime file.
    Mp4,
    /// Matroska or WebM.
    Matroska,
    /// An MPEG transport stream.
    MpegTs,
    /// YUV4MPEG2 (raw frames with a text header, ffmpeg's `-f yuv4mpegpipe`).
    Y4m,
    /// No JPEG in the first [`DECIDE_WITHIN`] bytes and nothing else recognised: raw frames
    /// (`-f rawvideo`, a camera's YUYV) or not video at all.
    NotMjpeg,
}

/// How many bytes are enough to call a stream [`StreamKind::NotMjpeg`]: more than any JPEG
/// header a camera writes before its first start-of-image marker could account for.
pub(crate) const DECIDE_WITHIN: usize = 64 * 1024;

impl StreamKind {
    /// A name for messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Mjpeg => "an MJPEG stream",
            Self::H264 => "an H.264 stream",
            Self::H265 => "an H.265 (HEVC) stream",
            Self::Mp4 => "an MP4 file",
            Self::Matroska => "a Matroska/WebM file",
            Self::MpegTs => "an MPEG transport stream",
            Self::Y4m => "raw YUV4MPEG2 frames",
            Self::NotMjpeg => "no JPEG frame (raw pixels, or not video)",
        }
    }

    /// Why such a stream is refused, and how to get MJPEG instead.
    pub(crate) fn refusal(self) -> String {
        format!("{}, not MJPEG; {ASK_FOR_MJPEG}", self.describe())
    }
}

/// How to get an MJPEG stream, for refusals.
pub(crate) const ASK_FOR_MJPEG: &str = "glance reads MJPEG streams: ask for them with \
    `rpicam-vid -t 0 --codec mjpeg -o -` (or libcamera-vid) on a Raspberry Pi camera, or \
    `ffmpeg -i INPUT -c:v mjpeg -q:v 5 -f mjpeg -`";

/// What [`sniff`] calls the stream `head` starts ("an H.264 stream", …), for the fuzz target
/// of outside bytes; `None` while more bytes are needed.
#[doc(hidden)]
pub fn describe_stream(head: &[u8]) -> Option<&'static str> {
    sniff(head).map(StreamKind::describe)
}

/// The kind of stream `head` starts, or `None` while more bytes are needed to tell.
///
/// `head` is everything read so far (at most [`DECIDE_WITHIN`] bytes are ever needed). JPEG
/// start-of-image markers after a stretch of garbage count as MJPEG: the splitter skips the
/// garbage, as it always has.
pub(crate) fn sniff(head: &[u8]) -> Option<StreamKind> {
    if head.len() < 12 {
        return None;
    }
    if head.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some(StreamKind::Mjpeg);
    }
    if head.starts_with(b"YUV4MPEG2") {
        return Some(StreamKind::Y4m);
    }
    if &head[4..8] == b"ftyp" {
        return Some(StreamKind::Mp4);
    }
    if head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        return Some(StreamKind::Matroska);
    }
    if head[0] == 0x47 {
        // A transport stream's sync byte: two more packets tell.
        if head.len() <= 376 {
            return None;
        }
        if head[188] == 0x47 && head[376] == 0x47 {
            return Some(StreamKind::MpegTs);
        }
    }
    if let Some(kind) = annex_b(head) {
        return Some(kind);
    }
    // Only within the first DECIDE_WITHIN bytes, so that a verdict never changes as more
    // bytes come (the fuzz target checks it).
    let window = &head[..head.len().min(DECIDE_WITHIN)];
    if window.windows(3).any(|w| w == [0xff, 0xd8, 0xff]) {
        return Some(StreamKind::Mjpeg);
    }
    (head.len() >= DECIDE_WITHIN).then_some(StreamKind::NotMjpeg)
}

/// H.264 or H.265 from the NAL unit header after an Annex B start code at the very start
/// (encoders begin with a parameter set, an access unit delimiter or SEI).
fn annex_b(head: &[u8]) -> Option<StreamKind> {
    let nal = if head.starts_with(&[0, 0, 0, 1]) {
        &head[4..]
    } else if head.starts_with(&[0, 0, 1]) {
        &head[3..]
    } else {
        return None;
    };
    let (b0, b1) = (nal[0], nal[1]);
    if b0 & 0x80 != 0 {
        return None; // forbidden_zero_bit set: neither
    }
    // H.265: a two-byte header, type in bits 1..7 of the first byte, layer 0 and a temporal
    // id of 1 (second byte 0x01) for VPS (32), SPS (33), PPS (34), AUD (35) and prefix SEI (39).
    let hevc_type = (b0 >> 1) & 0x3f;
    if b1 == 0x01 && b0 & 1 == 0 && matches!(hevc_type, 32..=35 | 39) {
        return Some(StreamKind::H265);
    }
    // H.264: a one-byte header, type in the low five bits: SPS (7), PPS (8), AUD (9), SEI (6),
    // or a slice (1, 5).
    match b0 & 0x1f {
        1 | 5..=9 => Some(StreamKind::H264),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(start: &[u8]) -> Vec<u8> {
        let mut v = start.to_vec();
        v.resize(64, 0x5a);
        v
    }

    #[test]
    fn each_kind_is_told_from_its_first_bytes() {
        let cases: &[(&[u8], StreamKind)] = &[
            (&[0xff, 0xd8, 0xff, 0xe0], StreamKind::Mjpeg),
            (&[0, 0, 0, 1, 0x67, 0x64, 0x00, 0x28], StreamKind::H264), // SPS, High profile
            (&[0, 0, 0, 1, 0x09, 0xf0], StreamKind::H264),             // AUD (ffmpeg libx264)
            (&[0, 0, 1, 0x06, 0x05], StreamKind::H264),                // SEI, 3-byte start code
            (&[0, 0, 0, 1, 0x40, 0x01, 0x0c], StreamKind::H265),       // VPS
            (&[0, 0, 0, 1, 0x46, 0x01, 0x50], StreamKind::H265),       // AUD
            (b"\x00\x00\x00\x20ftypisom", StreamKind::Mp4),
            (&[0x1a, 0x45, 0xdf, 0xa3, 0x9f], StreamKind::Matroska),
            (b"YUV4MPEG2 W640 H480", StreamKind::Y4m),
        ];
        for (start, want) in cases {
            assert_eq!(sniff(&padded(start)), Some(*want), "{start:02x?}");
        }
        let mut ts = vec![0u8; 400];
        ts[0] = 0x47;
        ts[188] = 0x47;
        ts[376] = 0x47;
        assert_eq!(sniff(&ts), Some(StreamKind::MpegTs));
    }

    #[test]
    fn raw_pixels_are_told_only_after_enough_bytes_and_jpeg_after_garbage_is_mjpeg() {
        // Raw YUYV: mid-grey with noise, never a JPEG marker.
        let raw: Vec<u8> = (0..DECIDE_WITHIN + 10)
            .map(|i| 0x80 ^ (i as u8 & 7))
            .collect();
        assert_eq!(sniff(&raw[..1000]), None);
        assert_eq!(sniff(&raw), Some(StreamKind::NotMjpeg));
        let mut late = raw[..5000].to_vec();
        late.extend_from_slice(&[0xff, 0xd8, 0xff, 0xe0]);
        assert_eq!(sniff(&late), Some(StreamKind::Mjpeg));
        assert_eq!(sniff(&[0xff, 0xd8]), None);
    }

    #[test]
    fn the_refusal_names_the_stream_and_how_to_ask_for_mjpeg() {
        let why = StreamKind::H264.refusal();
        assert!(why.starts_with("an H.264 stream, not MJPEG"));
        assert!(why.contains("--codec mjpeg"));
    }
}
