#!/usr/bin/env bash
# README command 2: installs what is missing, then runs every check and test: formatting, clippy,
# unit tests, the end-to-end tests with real Blender, POV-Ray and ffmpeg, and the Debian packages.
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
# The Debian packages, built from the binaries above, installed and purged (as root on a machine
# without a running systemd; it says why when it skips). Not when the run is narrowed to some tests.
if [ $# -eq 0 ]; then
    echo "== Debian packages (installer/test-packages.sh)" >&2
    set +e
    installer/test-packages.sh | tee "$log"
    package_status=${PIPESTATUS[0]}
    set -e
    if [ "$package_status" -ne 0 ]; then
        failed=$((failed + 1))
        [ "$status" -ne 0 ] || status=$package_status
    elif ! grep -q '^packages: skipped' "$log"; then
        passed=$((passed + 1))
    fi
fi
echo
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
