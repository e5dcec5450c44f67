#!/usr/bin/env bash
# Installs the system packages idlefarm needs when they are missing (Debian/Ubuntu).
# Usage: installer/deps.sh [run|test]   (test adds what the test suite needs)
set -euo pipefail

# povray-includes is only a Recommends of povray, but nearly every scene includes colors.inc.
want=(blender povray povray-includes ffmpeg)
declare -A cmd_of=([blender]=blender [povray]=povray [povray-includes]=povray-includes [ffmpeg]=ffmpeg)
if [ "${1:-run}" = test ]; then
    # Xvfb + xdotool for X11 input, python-dbusmock on a private D-Bus for logind and notifications.
    # Headless Chromium + chromedriver for the web app's browser tests.
    # povray-examples: POV-Ray's own example animations, rendered on the farm and compared.
    want+=(python3 xvfb xauth xdotool dbus-daemon python3-dbusmock chromium chromium-driver povray-examples)
    cmd_of[python3]=python3
    cmd_of[xvfb]=Xvfb
    cmd_of[xauth]=xauth
    cmd_of[xdotool]=xdotool
    cmd_of[dbus-daemon]=dbus-daemon
    cmd_of[python3-dbusmock]="python3-dbusmock"
    cmd_of[chromium]=chromium
    cmd_of[chromium-driver]=chromedriver
    cmd_of[povray-examples]=povray-examples
fi

missing=()
have() {
    case "$1" in
        python3-dbusmock) /usr/bin/python3 -c 'import dbusmock' >/dev/null 2>&1 ;;
        povray-includes) [ -f /usr/share/povray-3.7/include/colors.inc ] ;;
        povray-examples) [ -d /usr/share/doc/povray/examples/animations ] ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}
for pkg in "${want[@]}"; do
    have "${cmd_of[$pkg]}" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "idlefarm needs: ${missing[*]} — install them with your package manager and run this again." >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "installing ${missing[*]} needs root (or sudo)" >&2; exit 1; }
    sudo="sudo"
fi
echo "installing ${missing[*]} (apt-get)…" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
