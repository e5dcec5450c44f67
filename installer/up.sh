#!/usr/bin/env bash
# README command 1: installs what is missing, builds idlefarm, and starts a coordinator with one
# local agent on this PC. Extra arguments go to `idlefarm up` (e.g. --listen 0.0.0.0:7870).
set -euo pipefail
cd "$(dirname "$0")/.."

installer/deps.sh run
if ! command -v cargo >/dev/null 2>&1; then
    echo "idlefarm is built with Rust ≥ 1.95: install it from https://rustup.rs and run this again." >&2
    exit 1
fi
echo "building idlefarm (release)…" >&2
cargo build --release --quiet --bins
# Cargo puts the binaries under $CARGO_TARGET_DIR when it is set.
exec "${CARGO_TARGET_DIR:-target}/release/idlefarm" up "$@"
