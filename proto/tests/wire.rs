//! Pins the wire format byte for byte and checks the decoder against hostile bytes.
//!
//! The golden frames were computed independently with Python (zlib.crc32, a textbook COBS
//! encoder and postcard's documented varint/f32 encoding): see the comments on each.

use glance_proto::frame::{self, FrameDecoder, FrameError, MAX_ENCODED};
use glance_proto::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn label(s: &str) -> Label {
    Label::try_from(s).unwrap()
}

fn encode(msg: &Message) -> Vec<u8> {
    let mut buf = [0u8; MAX_ENCODED];
    let n = frame::encode(msg, &mut buf).unwrap();
    buf[..n].to_vec()
}

fn sample_prediction() -> Message {
    let mut top_k = heapless::Vec::new();
    top_k
        .push(Scored {
            label_id: 2,
            score: 0.75,
        })
        .unwrap();
    Message::Prediction(Prediction {
        seq: 300,
        time_ms: 1,
        label_id: 2,
        label: label("cat"),
        score: 0.75,
        top_k,
        knn: Some(KnnHit {
            label_id: 2,
            distance: 0.125,
        }),
        flags: 0,
        timing: StageTiming {
            decode_us: 10,
            preprocess_us: 20,
            backbone_us: 30_000,
            head_us: 4,
        },
    })
}

#[test]
fn golden_command_frame() {
    // version 01, body [02 (Message::Command), 07 (id), 03 (Command::Save)], crc32 LE, COBS, 00.
    let msg = Message::Command {
        id: 7,
        command: Command::Save,
    };
    assert_eq!(encode(&msg), hex("09010207036aab344c00"));
}

#[test]
fn golden_prediction_frame() {
    // seq 300 = varint ac 02, "cat" = 03 63 61 74, 0.75f32 = 00 00 40 3f, 30000 = b0 ea 01.
    assert_eq!(
        encode(&sample_prediction()),
        hex("020109ac020102036361740105403f01020105403f01020101023e0b0a14b0ea0104a92cb7ce00")
    );
}

#[test]
fn every_message_round_trips_through_the_stream_decoder() {
    let mut list = heapless::Vec::new();
    list.push((label("cat"), 12)).unwrap();
    list.push((label("dog"), 3)).unwrap();
    let msgs = vec![
        sample_prediction(),
        Message::Status(Status {
            uptime_s: 86_400,
            frames: 1_000_000,
            dropped: 17,
            store_len: 40,
            store_capacity: 512,
            backbone: [0xe5, 0x42, 0x01, 0x27, 0x2a, 0x00, 0xd4, 0x37],
        }),
        Message::Command {
            id: 1,
            command: Command::Enroll {
                label: label("mug"),
                frames: 10,
            },
        },
        Message::Command {
            id: 2,
            command: Command::Forget {
                label: label("mug"),
            },
        },
        Message::Command {
            id: 3,
            command: Command::SetThreshold {
                label: label("cat"),
                value: 0.4,
            },
        },
        Message::Command {
            id: 4,
            command: Command::List,
        },
        Message::Command {
            id: 5,
            command: Command::Status,
        },
        Message::Command {
            id: 6,
            command: Command::SetDistance {
                label: label("*"),
                value: 0.25,
            },
        },
        Message::Reply {
            id: 4,
            reply: Reply::List(list),
        },
        Message::Reply {
            id: 9,
            reply: Reply::Error(heapless::String::try_from("store full").unwrap()),
        },
        Message::Reply {
            id: 1,
            reply: Reply::Ok,
        },
    ];
    let mut stream = Vec::new();
    for m in &msgs {
        stream.extend(encode(m));
        stream.push(0); // idle delimiters between frames are allowed
    }
    let mut dec = FrameDecoder::new();
    let mut got = Vec::new();
    dec.feed(&stream, |r| got.push(r.unwrap()));
    assert_eq!(got, msgs);
    assert_eq!((dec.frames, dec.errors), (msgs.len() as u32, 0));
}

#[test]
fn corrupted_frames_are_counted_and_the_next_frame_still_decodes() {
    let good = encode(&sample_prediction());
    let mut flipped = good.clone();
    flipped[10] ^= 0x01; // payload bit flip → CRC mismatch
    let truncated = good[..good.len() / 2].to_vec(); // cut mid-frame, then the next delimiter
                                                     // The command frame with version 2 and a valid CRC: refused by version, not by CRC.
    let wrong_version = {
        let mut raw = vec![2u8, 2, 7, 3];
        let crc = glance_proto::crc::crc32(&raw);
        raw.extend_from_slice(&crc.to_le_bytes());
        let mut enc = [0u8; 32];
        let n = glance_proto::cobs::encode(&raw, &mut enc).unwrap();
        let mut frame = enc[..n].to_vec();
        frame.push(0);
        frame
    };
    let oversized = vec![0x55u8; MAX_ENCODED + 10];

    let mut stream = Vec::new();
    stream.extend(&flipped);
    stream.extend(&truncated);
    stream.push(0);
    stream.extend(&wrong_version);
    stream.extend(&oversized);
    stream.push(0);
    stream.extend(&[0x01, 0x01, 0x00]); // too short
    stream.extend(&good);

    let mut dec = FrameDecoder::new();
    let mut results = Vec::new();
    dec.feed(&stream, |r| results.push(r));
    assert_eq!(results.len(), 6);
    assert_eq!(results[0], Err(FrameError::Crc));
    assert!(results[1].is_err());
    assert_eq!(results[2], Err(FrameError::Version(2)));
    assert_eq!(results[3], Err(FrameError::Oversized));
    assert_eq!(results[4], Err(FrameError::TooShort));
    assert_eq!(results[5], Ok(sample_prediction()));
    assert_eq!((dec.frames, dec.errors), (1, 5));
}

#[test]
fn random_bytes_never_panic() {
    // A deterministic xorshift stream: millions of hostile bytes, many short "frames".
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut dec = FrameDecoder::new();
    let mut seen = 0u32;
    for _ in 0..2_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = if x.is_multiple_of(61) {
            0
        } else {
            (x >> 24) as u8
        };
        if dec.push(b).is_some() {
            seen += 1;
        }
    }
    assert!(seen > 1000);
    assert_eq!(dec.frames + dec.errors, seen);
}

#[test]
fn a_label_longer_than_its_capacity_is_refused_at_construction() {
    assert!(Label::try_from("a".repeat(MAX_LABEL + 1).as_str()).is_err());
}
