//! `glance-proto`: the wire types glance speaks over a serial link, shared by the board runtime,
//! the host tools and any microcontroller that listens.
//!
//! `#![no_std]`, no allocation: strings and lists have their capacity in the type (heapless), and
//! the frame decoder works in a fixed buffer, so hostile bytes can neither panic it nor make it
//! grow.
//!
//! A frame on the wire is `COBS(version ‖ postcard(Message) ‖ crc32_le) ‖ 0x00`; see [`frame`].

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cobs;
pub mod crc;
pub mod frame;

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

/// Protocol version carried in every frame. Bump it when a message's layout changes.
pub const PROTOCOL_VERSION: u8 = 1;

/// Longest class label, in bytes (UTF-8).
pub const MAX_LABEL: usize = 32;

/// Most classes a prediction carries.
pub const MAX_TOP_K: usize = 5;

/// Most labels a `List` reply carries.
pub const MAX_LIST: usize = 32;

/// A class label with its capacity in the type.
pub type Label = String<MAX_LABEL>;

/// Label id meaning "rejected as unknown".
pub const UNKNOWN_LABEL_ID: u16 = u16::MAX;

/// One class with its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// Index into the bundle's label list.
    pub label_id: u16,
    /// Probability, 0..=1.
    pub score: f32,
}

/// The nearest stored example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnHit {
    /// Its class.
    pub label_id: u16,
    /// Its distance (cosine distance on L2-normalised features).
    pub distance: f32,
}

/// Per-stage time of one frame, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    /// Decoding the frame.
    pub decode_us: u32,
    /// Resize and normalise.
    pub preprocess_us: u32,
    /// The backbone.
    pub backbone_us: u32,
    /// Head, kNN and decision.
    pub head_us: u32,
}

/// Bit flags on a prediction.
pub mod flags {
    /// The decision was rejected as unknown (below threshold).
    pub const UNKNOWN: u8 = 1 << 0;
    /// The head and the nearest stored example disagree.
    pub const HEAD_KNN_DISAGREE: u8 = 1 << 1;
    /// Frames were dropped since the previous prediction.
    pub const FRAMES_DROPPED: u8 = 1 << 2;
}

/// One decision about one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Frame sequence number since start.
    pub seq: u32,
    /// Milliseconds since the Unix epoch when the frame was captured.
    pub time_ms: u64,
    /// The decided class, or [`UNKNOWN_LABEL_ID`].
    pub label_id: u16,
    /// The decided class's name (`unknown` when rejected).
    pub label: Label,
    /// The decided class's probability.
    pub score: f32,
    /// The best classes, best first.
    pub top_k: Vec<Scored, MAX_TOP_K>,
    /// The nearest stored example, if there is a store.
    pub knn: Option<KnnHit>,
    /// See [`flags`].
    pub flags: u8,
    /// Per-stage timing.
    pub timing: StageTiming,
}

/// Periodic health report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Seconds since start.
    pub uptime_s: u32,
    /// Frames classified.
    pub frames: u32,
    /// Frames dropped because a newer one arrived first.
    pub dropped: u32,
    /// Examples in the kNN store.
    pub store_len: u32,
    /// The store's capacity.
    pub store_capacity: u32,
    /// First 8 bytes of the backbone's sha256.
    pub backbone: [u8; 8],
}

/// Requests a peer can send to the board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Enroll the next `frames` frames (0 = the current one) under `label`.
    Enroll {
        /// Class name.
        label: Label,
        /// How many frames.
        frames: u16,
    },
    /// Remove every stored example of `label`.
    Forget {
        /// Class name.
        label: Label,
    },
    /// List the stored labels with their counts.
    List,
    /// Persist the store now.
    Save,
    /// Change a class's unknown threshold (the least calibrated probability accepted).
    SetThreshold {
        /// Class name (`*` for every class).
        label: Label,
        /// New threshold.
        value: f32,
    },
    /// Send a [`Status`] now.
    Status,
    /// Change a class's largest accepted kNN distance (for an enrolled class: how near a frame
    /// must be to one of its examples to be recognised).
    SetDistance {
        /// Class name (`*` for every class).
        label: Label,
        /// New distance, 0..=2.
        value: f32,
    },
}

/// The board's answer to a [`Command`].
// no_std without an allocator cannot box the large variant; the size is fixed and bounded.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Done.
    Ok,
    /// Refused, with a short reason.
    Error(String<64>),
    /// Stored labels and how many examples each has.
    List(Vec<(Label, u16), MAX_LIST>),
}

/// Everything that travels in one frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Board → peer: a decision.
    Prediction(Prediction),
    /// Board → peer: health.
    Status(Status),
    /// Peer → board: a request, with an id echoed in the reply.
    Command {
        /// Request id.
        id: u16,
        /// The request.
        command: Command,
    },
    /// Board → peer: the answer to request `id`.
    Reply {
        /// Request id.
        id: u16,
        /// The answer.
        reply: Reply,
    },
}
