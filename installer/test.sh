#!/usr/bin/env bash
# README command 2: installs what is missing, then runs every check and test: formatting, clippy,
# unit tests, and the end-to-end tests with real Blender, POV-Ray and ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."

installer/deps.sh test
if ! command -v cargo >/dev/null 2>&1; then
    echo "idlefarm is built with Rust ≥ 1.95: install it from https://rustup.rs and run this again." >&2
    exit 1
fi
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== building binaries (the end-to-end tests start idlefarm-agent as a process)" >&2
cargo build --workspace --bins --quiet
echo "== cargo test" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace -- "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
echo
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
