//! Every fuzz target's body (fuzz/bodies) on its committed corpus (fuzz/corpus: the seeds of
//! `cargo run --example fuzz_seeds` and the inputs that once crashed a reader), then on
//! mutants of it: bits flipped, bytes set to edge values, ranges cut, repeated or spliced from
//! another seed, the input truncated. The same code as the libFuzzer targets, built with the
//! test suite instead of a nightly build of its own: this is the readers' mutation test that
//! every test run does, and coverage-guided campaigns are `scripts/ci/fuzz.sh SECONDS`.
//!
//! The mutants are the same on every run (a fixed seed), so a failure reproduces; the one
//! that failed is written to a file the message names.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::util::Rng;

#[path = "../fuzz/bodies/bundle_open.rs"]
mod bundle_open;
#[path = "../fuzz/bodies/camera_frame.rs"]
mod camera_frame;
#[path = "../fuzz/bodies/commands.rs"]
mod commands;
#[path = "../fuzz/bodies/config_text.rs"]
mod config_text;
#[path = "../fuzz/bodies/image_decode.rs"]
mod image_decode;
#[path = "../fuzz/bodies/mjpeg_split.rs"]
mod mjpeg_split;
#[path = "../fuzz/bodies/store_open.rs"]
mod store_open;
#[path = "../fuzz/bodies/wire_stream.rs"]
mod wire_stream;

/// Mutants per corpus file; GLANCE_MUTANTS overrides it (a longer local run).
const MUTANTS: usize = 3000;

/// One to four edits of `input`; `other` is another file of the same corpus, for splicing.
fn mutate(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    const EDGES: [u8; 8] = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 0xD8, 0xD9];
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = EDGES[rng.below(EDGES.len())];
            }
            2 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                v.drain(at..at + n);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                let piece = v[at..at + n].to_vec();
                let to = rng.below(len + 1);
                v.splice(to..to, piece);
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let n = 1 + rng.below((other.len() - from).min(256));
                let to = rng.below(len + 1);
                v.splice(to..to, other[from..from + n].iter().copied());
            }
            5 => v.truncate(rng.below(len + 1)),
            _ => {
                let to = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let fresh: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(to..to, fresh);
            }
        }
    }
    v
}

/// The target's corpus files, sorted by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no corpus", dir.display());
    files
}

/// Runs `body` on `target`'s corpus and its mutants; panics naming the first input that
/// broke an invariant, after writing it where the message says.
fn replay(target: &str, body: fn(&[u8])) {
    let mutants = std::env::var("GLANCE_MUTANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(MUTANTS);
    let files = corpus(target);
    let mut rng = Rng(0x676C_616E_6365 ^ target.len() as u64);
    let mut runs = 0usize;
    for (k, (name, seed)) in files.iter().enumerate() {
        let other = &files[(k + 1) % files.len()].1;
        for i in 0..=mutants {
            // Index 0 is the corpus file as committed.
            let input = if i == 0 {
                seed.clone()
            } else {
                mutate(seed, other, &mut rng)
            };
            runs += 1;
            if catch_unwind(AssertUnwindSafe(|| body(&input))).is_err() {
                let kept: PathBuf =
                    std::env::temp_dir().join(format!("glance-fuzz-{target}-{name}-{i}"));
                let _ = std::fs::write(&kept, &input);
                panic!(
                    "{target}: mutant {i} of fuzz/corpus/{target}/{name} broke an invariant \
                     (above); the input is {} (replay: target/fuzz/x86_64-unknown-linux-gnu/release/{target} FILE after \
                     scripts/ci/fuzz.sh)",
                    kept.display()
                );
            }
        }
    }
    eprintln!("{target}: {runs} inputs ({} corpus files)", files.len());
}

#[test]
fn bundle_open_corpus_and_mutants() {
    replay("bundle_open", bundle_open::run);
}

#[test]
fn camera_frame_corpus_and_mutants() {
    replay("camera_frame", camera_frame::run);
}

#[test]
fn commands_corpus_and_mutants() {
    replay("commands", commands::run);
}

#[test]
fn config_text_corpus_and_mutants() {
    replay("config_text", config_text::run);
}

#[test]
fn image_decode_corpus_and_mutants() {
    replay("image_decode", image_decode::run);
}

#[test]
fn mjpeg_split_corpus_and_mutants() {
    replay("mjpeg_split", mjpeg_split::run);
}

#[test]
fn store_open_corpus_and_mutants() {
    replay("store_open", store_open::run);
}

#[test]
fn wire_stream_corpus_and_mutants() {
    replay("wire_stream", wire_stream::run);
}

/// The mutator reaches what the bodies need it to: inputs shorter, longer and different from
/// the seed, and the same sequence on every run.
#[test]
fn the_mutator_changes_inputs_and_repeats_itself() {
    let seed: Vec<u8> = (0..64).collect();
    let run = |s| {
        let mut rng = Rng(s);
        (0..200)
            .map(|_| mutate(&seed, b"other", &mut rng))
            .collect::<Vec<_>>()
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert!(a.iter().any(|m| m.len() < seed.len()));
    assert!(a.iter().any(|m| m.len() > seed.len()));
    assert!(a.iter().filter(|m| **m != seed).count() > 190);
}
