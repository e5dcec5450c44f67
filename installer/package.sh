#!/usr/bin/env bash
# Builds the Debian packages of idlefarm with cargo-deb (installed first when missing):
#   idlefarm_<version>_<arch>.deb        the coordinator service and the `idlefarm` CLI
#   idlefarm-agent_<version>_<arch>.deb  the agent service and the desktop companion
# from the [package.metadata.deb] tables of coordinator/Cargo.toml and agent/Cargo.toml and the
# files in installer/debian/. Prints the paths of the two packages.
#
# Usage: installer/package.sh [--out DIR] [--deb-revision N] [--from-debug-build]
#   --out DIR           where the .deb files go [default: $CARGO_TARGET_DIR/debian or target/debian]
#   --deb-revision N    Debian revision after the crate version [default: 1]
#   --from-debug-build  package the debug binaries `cargo build` already made instead of building
#                       release binaries (what installer/test-packages.sh does; not for a lab)
set -euo pipefail
cd "$(dirname "$0")/.."

# A known cargo-deb: its `--profile dev` (used by --from-debug-build) is deprecated upstream.
CARGO_DEB_VERSION=3.7.0

out="${CARGO_TARGET_DIR:-target}/debian"
revision=1
debug=false
while [ $# -gt 0 ]; do
    case "$1" in
        --out)
            if [ $# -lt 2 ] || [ -z "$2" ]; then
                echo "package.sh: --out needs a directory" >&2
                exit 2
            fi
            out="$2"
            shift 2
            ;;
        --deb-revision)
            [ $# -ge 2 ] || { echo "package.sh: --deb-revision needs a number" >&2; exit 2; }
            if ! [[ "$2" =~ ^[0-9]+$ ]]; then
                echo "package.sh: --deb-revision must be a number, not \`$2\`" >&2
                exit 2
            fi
            revision="$2"
            shift 2
            ;;
        --from-debug-build)
            debug=true
            shift
            ;;
        *)
            echo "package.sh: unknown argument \`$1\` (see the comment at the top of installer/package.sh)" >&2
            exit 2
            ;;
    esac
done

if ! command -v cargo >/dev/null 2>&1; then
    echo "idlefarm is built with Rust ≥ 1.95: install it from https://rustup.rs and run this again." >&2
    exit 1
fi
if ! cargo deb --version >/dev/null 2>&1; then
    echo "installing cargo-deb $CARGO_DEB_VERSION (cargo install)…" >&2
    # Its own throw-away target dir: not the project's ($CARGO_TARGET_DIR), which it would fill
    # with a release build of cargo-deb.
    build_dir=$(mktemp -d)
    trap 'rm -rf "$build_dir"' EXIT
    cargo install cargo-deb --locked --quiet --version "$CARGO_DEB_VERSION" --target-dir "$build_dir"
    rm -rf "$build_dir"
fi

mkdir -p "$out"
flags=(--deb-revision "$revision" --output "$out/")
if $debug; then
    for bin in idlefarm idlefarm-agent idlefarm-notify; do
        if [ ! -x "${CARGO_TARGET_DIR:-target}/debug/$bin" ]; then
            echo "package.sh: no debug build of $bin: run \`cargo build --workspace --bins\` first" >&2
            exit 1
        fi
    done
    # cargo-deb reads the binaries from target/debug (or $CARGO_TARGET_DIR/debug) and strips a
    # copy; the build is left as it is.
    flags+=(--profile dev --no-build)
fi
for package in idlefarm-coordinator idlefarm-agent; do
    # cargo-deb prints the package's path; the list below says it once for both.
    cargo deb --quiet -p "$package" "${flags[@]}" >/dev/null
done
ls "$out"/idlefarm_*"-${revision}_"*.deb "$out"/idlefarm-agent_*"-${revision}_"*.deb
