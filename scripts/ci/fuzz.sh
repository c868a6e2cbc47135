#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time and fails on any crash, panic, timeout
# or runaway allocation. Prints a table of executions per target.
#
#   scripts/ci/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default 20 s, every target
#
# Each run starts from the committed seeds (fuzz/corpus/T, made by `cargo run --example
# fuzz_seeds`) plus what earlier runs on this machine found (target/fuzz-corpus/T). A crash
# leaves its input in target/fuzz-artifacts/T/ with the command that replays it.
#
# Built without a sanitizer (`-s none`): the readers under test are safe Rust (the one
# `unsafe` they reach, knn::dot_i8's AVX2 entry, only enables a target feature), so a
# sanitizer would find nothing a bounds check does not, at twice the build time. Debug
# assertions and overflow checks are on.
#
# Needs the nightly toolchain and cargo-fuzz; they are installed if missing, and when that is
# impossible the script says SKIPPED in capitals and exits 3 (never 0).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-20}"; shift || true
say() { printf '\033[1mfuzz:\033[0m %s\n' "$*" >&2; }
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
CARGO_FUZZ_VERSION=0.13.2

skip() { say "SKIPPED: $*"; echo "SKIPPED: the fuzz targets were NOT run: $*"; exit 3; }
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  say "installing the nightly toolchain (cargo fuzz needs -Z flags)"
  rustup toolchain install nightly --profile minimal >&2 || skip "cannot install nightly Rust"
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "=$CARGO_FUZZ_VERSION" >&2 || skip "cannot install cargo-fuzz"
fi

mapfile -t all < <(cargo fuzz list)
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
t0=$(date +%s)
cargo +nightly fuzz build -s none --debug-assertions --target-dir "$TARGET_DIR/fuzz" >&2
say "built ${#all[@]} targets in $(( $(date +%s) - t0 )) s"
bin_dir="$TARGET_DIR/fuzz/x86_64-unknown-linux-gnu/release"

# The image decoder's budget in the target is 64 MiB (a 1 GB board's); one allocation past
# 256 MiB means a decode escaped it. Elsewhere nothing legitimate comes near 512 MiB.
declare -A malloc_mb=([image_decode]=256)
failed=()
rows=()
for t in "${targets[@]}"; do
  corpus="$TARGET_DIR/fuzz-corpus/$t"; artifacts="$TARGET_DIR/fuzz-artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  log="$TARGET_DIR/fuzz-artifacts/$t.log"
  set +e
  "$bin_dir/$t" "$corpus" "fuzz/corpus/$t" -max_total_time="$SECS" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb="${malloc_mb[$t]:-512}" -max_len=65536 \
    -artifact_prefix="$artifacts" -print_final_stats=1 > "$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  speed=$(grep -oE '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  files=$(find "$corpus" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then result=ok; else
    result="CRASH (exit $rc)"; failed+=("$t")
    tail -n 40 "$log" >&2
    crash=$(ls -t "$artifacts" | head -n 1)
    say "$t crashed; replay: $bin_dir/$t $artifacts$crash"
  fi
  rows+=("$(printf '| %-13s | %5s | %10s | %8s | %6s | %s |' "$t" "$SECS" "$runs" "$speed" "$files" "$result")")
done
printf '| %-13s | %5s | %10s | %8s | %6s | %s |\n' target s runs 'exec/s' corpus result
printf '|%s|\n' "---------------|-------|------------|----------|--------|--------"
printf '%s\n' "${rows[@]}"
if [ ${#failed[@]} -gt 0 ]; then say "crashed: ${failed[*]}"; exit 1; fi
say "no crash in ${#targets[@]} targets × $SECS s"
