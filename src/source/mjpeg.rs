//! Splitting an MJPEG byte stream (concatenated JPEG images, as `ffmpeg -f mjpeg -` or
//! `libcamera-vid --codec mjpeg -o -` write) into frames.
//!
//! The splitter walks JPEG markers instead of searching for the bytes `FF D9`, so an EXIF
//! thumbnail inside an APP segment does not end a frame early. Garbage between frames is
//! skipped up to the next start-of-image; a frame longer than the limit is discarded. Both are
//! counted in [`MjpegSplitter::errors`]; nothing here panics or grows without bound.

/// Default largest frame accepted, in bytes (a 4K JPEG at high quality is ~5 MB).
pub(crate) const DEFAULT_MAX_FRAME: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for `FF D8`.
    Seek,
    /// At `pos` a marker is expected.
    Marker,
    /// Inside entropy-coded data; `pos` is where to continue scanning.
    Entropy,
}

/// Incremental MJPEG splitter.
#[derive(Debug)]
pub struct MjpegSplitter {
    buf: Vec<u8>,
    /// Where the frame being parsed starts in `buf`: bytes before it are consumed and dropped
    /// once per `push`, so that a flood of false starts costs linear time, not a shift of the
    /// whole buffer per byte.
    start: usize,
    pos: usize,
    /// Bytes moved by compacting `buf` (at most what is held after each push): the measure
    /// of work that the flood test bounds.
    moved: u64,
    state: State,
    max_frame: usize,
    /// Frames completed.
    pub frames: u64,
    /// Garbage runs skipped and oversized or malformed frames discarded.
    pub errors: u64,
}

impl Default for MjpegSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl MjpegSplitter {
    /// A splitter refusing frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            pos: 0,
            moved: 0,
            state: State::Seek,
            max_frame: max_frame.max(4),
            frames: 0,
            errors: 0,
        }
    }

    /// Feeds bytes; calls `on_frame` with each complete JPEG. Linear in the bytes fed.
    pub fn push(&mut self, data: &[u8], mut on_frame: impl FnMut(Vec<u8>)) {
        self.buf.extend_from_slice(data);
        loop {
            match self.step() {
                Step::NeedMore => {
                    if self.buf.len() - self.start > self.max_frame {
                        self.errors += 1;
                        self.start = self.buf.len();
                        self.reset();
                    }
                    break;
                }
                Step::Frame(end) => {
                    let frame = self.buf[self.start..end].to_vec();
                    self.start = end;
                    self.frames += 1;
                    self.reset();
                    on_frame(frame);
                }
                Step::Resync => {
                    self.errors += 1;
                    // Drop the broken frame's first byte and look for the next SOI.
                    self.start = (self.start + 1).min(self.buf.len());
                    self.reset();
                }
            }
        }
        if self.state == State::Seek {
            // Nothing of a frame is held: keep only a possible half SOI.
            let keep = usize::from(self.buf.last() == Some(&0xFF) && self.buf.len() > self.start);
            self.start = self.buf.len() - keep;
        }
        // Positions are relative to the frame's start from here on.
        self.buf.drain(..self.start);
        self.moved += self.buf.len() as u64;
        if self.state != State::Seek {
            self.pos -= self.start;
        }
        self.start = 0;
    }

    /// Bytes held for an incomplete frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    fn reset(&mut self) {
        self.state = State::Seek;
        self.pos = self.start;
    }

    fn step(&mut self) -> Step {
        loop {
            match self.state {
                State::Seek => {
                    let Some(at) = self.buf[self.start..]
                        .windows(2)
                        .position(|w| w == [0xFF, 0xD8])
                    else {
                        return Step::NeedMore;
                    };
                    if at > 0 {
                        self.errors += 1;
                        self.start += at;
                    }
                    self.pos = self.start + 2;
                    self.state = State::Marker;
                }
                State::Marker => {
                    let b = &self.buf;
                    let p = self.pos;
                    // Fill bytes: any number of FF before the marker code. A frame reaching
                    // byte `start + max_frame` is oversized wherever the reads were cut (the
                    // checks below are by position, so chunking never changes the frames).
                    let limit = self.start + self.max_frame;
                    let mut q = p;
                    while q < b.len() && b[q] == 0xFF {
                        q += 1;
                    }
                    if q >= limit {
                        return Step::Resync;
                    }
                    if q >= b.len() {
                        return Step::NeedMore;
                    }
                    if q == p {
                        return Step::Resync; // no marker where one must be
                    }
                    let code = b[q];
                    match code {
                        0xD9 => return Step::Frame(q + 1),
                        0xD8 | 0x00 => return Step::Resync,
                        0x01 | 0xD0..=0xD7 => self.pos = q + 1,
                        _ => {
                            if q + 2 >= limit {
                                return Step::Resync;
                            }
                            if q + 2 >= b.len() {
                                return Step::NeedMore;
                            }
                            let len = usize::from(u16::from_be_bytes([b[q + 1], b[q + 2]]));
                            if len < 2 {
                                return Step::Resync;
                            }
                            let end = q + 1 + len;
                            if end > limit {
                                return Step::Resync;
                            }
                            if end > b.len() {
                                return Step::NeedMore;
                            }
                            self.pos = end;
                            if code == 0xDA {
                                self.state = State::Entropy;
                            }
                        }
                    }
                }
                State::Entropy => {
                    let b = &self.buf;
                    let limit = self.start + self.max_frame;
                    let mut p = self.pos;
                    loop {
                        if p + 1 >= limit {
                            return Step::Resync;
                        }
                        if p + 1 >= b.len() {
                            self.pos = p;
                            return Step::NeedMore;
                        }
                        if b[p] == 0xFF && b[p + 1] != 0x00 && !(0xD0..=0xD7).contains(&b[p + 1]) {
                            if b[p + 1] == 0xFF {
                                p += 1; // fill byte before a marker
                                continue;
                            }
                            self.pos = p;
                            self.state = State::Marker;
                            break;
                        }
                        p += 1;
                    }
                }
            }
        }
    }
}

enum Step {
    NeedMore,
    Frame(usize),
    Resync,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal marker-structured "JPEG": SOI, an APP1 holding a fake thumbnail (with its own
    /// SOI/EOI), SOS, entropy bytes with a stuffed FF00 and a restart marker, EOI.
    fn fake_jpeg(tag: u8) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        let thumb = [0xFF, 0xD8, 0x01, 0xFF, 0xD9];
        v.extend_from_slice(&[0xFF, 0xE1, 0x00, (2 + thumb.len()) as u8]);
        v.extend_from_slice(&thumb);
        v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x03, tag]);
        v.extend_from_slice(&[1, 2, 0xFF, 0x00, 3, 0xFF, 0xD3, 4, tag]);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    #[test]
    fn frames_split_at_their_own_end_in_any_chunking() {
        let stream: Vec<u8> = [fake_jpeg(7), fake_jpeg(8), fake_jpeg(9)].concat();
        for chunk in [1, 2, 3, 5, 7, stream.len()] {
            let mut s = MjpegSplitter::default();
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                s.push(c, |f| got.push(f));
            }
            assert_eq!(
                got,
                vec![fake_jpeg(7), fake_jpeg(8), fake_jpeg(9)],
                "chunk {chunk}"
            );
            assert_eq!(s.errors, 0);
        }
    }

    #[test]
    fn an_oversized_frame_is_dropped_however_the_reads_were_cut() {
        // Found by the mjpeg_split fuzz target: a frame longer than the limit was dropped when
        // it spanned reads but handed on when one read held all of it.
        let mut big = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
        big.extend(std::iter::repeat_n(0x11, 300));
        big.extend_from_slice(&[0xFF, 0xD9]);
        let stream: Vec<u8> = [fake_jpeg(1), big, fake_jpeg(2)].concat();
        for chunk in [1, 7, 100, 255, stream.len()] {
            let mut s = MjpegSplitter::new(200);
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                s.push(c, |f| got.push(f));
                assert!(s.pending() <= 200, "chunk {chunk}: {} held", s.pending());
            }
            assert_eq!(got, vec![fake_jpeg(1), fake_jpeg(2)], "chunk {chunk}");
        }
    }

    #[test]
    fn garbage_and_broken_frames_are_skipped_and_counted() {
        let mut stream = vec![0x12, 0x34, 0xFF];
        stream.extend(fake_jpeg(1));
        // a frame whose segment structure breaks (no marker after the APP1 segment)
        stream.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0, 0, 0x55, 0x55]);
        stream.extend(fake_jpeg(2));
        let mut s = MjpegSplitter::default();
        let mut got = Vec::new();
        s.push(&stream, |f| got.push(f));
        assert_eq!(got, vec![fake_jpeg(1), fake_jpeg(2)]);
        assert!(s.errors >= 2, "{}", s.errors);
    }

    #[test]
    fn a_flood_of_false_starts_is_linear() {
        // 4 MB of `FF D8` took 13.6 s when every false start shifted the whole buffer (4 MB
        // moved per byte). Now each push moves at most what it keeps, a few bytes here.
        let mut s = MjpegSplitter::default();
        let flood: Vec<u8> = [0xFF, 0xD8].repeat(2 << 20);
        let mut got = 0;
        for c in flood.chunks(64 * 1024) {
            s.push(c, |_| got += 1);
        }
        s.push(&fake_jpeg(5), |_| got += 1);
        assert_eq!(got, 1);
        assert!(s.pending() < 16);
        assert!(
            s.errors >= 1 << 20,
            "every false start is counted: {}",
            s.errors
        );
        assert!(s.moved <= 64 * 4 + 64, "{} bytes moved", s.moved);
    }

    #[test]
    fn an_endless_frame_is_discarded_without_growing() {
        let mut s = MjpegSplitter::new(1000);
        let mut got = 0;
        s.push(&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02], |_| got += 1);
        for _ in 0..100 {
            s.push(&[0x11; 100], |_| got += 1);
            assert!(s.pending() <= 1000);
        }
        s.push(&fake_jpeg(3), |_| got += 1);
        assert_eq!(got, 1);
        assert!(s.errors >= 1);
    }
}
