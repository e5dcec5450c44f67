#!/usr/bin/env bash
# The Debian package test (installer/test.sh runs it after the Rust tests). Builds both packages
# from the debug binaries the test run built, installs them with dpkg, checks that files, users
# and enabled units are where promised and that `systemd-analyze verify` is clean on every unit,
# runs both services' command lines the way their units do (inside a private network namespace)
# until the agent has enrolled, upgrades both packages to a new revision and checks that the
# data, the enrolment and the edited config survived, then removes and purges them and checks
# that nothing is left: no file, folder, user or group.
#
# It never starts a unit. It runs only as root, where systemd is not running (the CI machine),
# and refuses to run where either package or its users already exist; paths of the packages that
# exist without them are renamed for the test and put back. So its clean-up (which runs on every
# exit, also after a failed check) only removes what it made.
# Prints one line per check and, last, `packages: N checks passed` or the failed check.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
    echo "packages: skipped ($1)"
    exit 0
}
[ "$(id -u)" -eq 0 ] || skip "needs root for dpkg -i"
[ ! -d /run/systemd/system ] || skip "systemd runs here, and installing would start the services"
command -v dpkg >/dev/null 2>&1 || skip "not a Debian system"

PACKAGES=(idlefarm idlefarm-agent)
USERS=(idlefarm idlefarm-agent idlefarm-render)
# Everything the packages or their services may create outside dpkg's own database.
PATHS=(/usr/bin/idlefarm /usr/bin/idlefarm-agent /usr/bin/idlefarm-notify /etc/idlefarm
    /var/lib/idlefarm /var/log/idlefarm /var/lib/idlefarm-agent /run/idlefarm-agent
    /usr/lib/systemd/system/idlefarm-coordinator.service /usr/lib/systemd/system/idlefarm-agent.service
    /usr/lib/systemd/user/idlefarm-notify.service /etc/xdg/autostart/idlefarm-notify.desktop
    /usr/share/doc/idlefarm /usr/share/doc/idlefarm-agent)
# Where a stray file of the packages would be; each path with `idlefarm` in its name is compared
# before and after (the repository and the build live elsewhere).
SCAN_ROOTS=(/etc /usr /var/lib /var/log /var/cache /run /srv /opt)

checks=0
ok() {
    checks=$((checks + 1))
    echo "ok - $1"
}
fail() {
    echo "packages: FAILED: $1" >&2
    exit 1
}
package_state() {
    dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true
}
scan() {
    find "${SCAN_ROOTS[@]}" -xdev -name '*idlefarm*' 2>/dev/null | sort
}

for p in "${PACKAGES[@]}"; do
    case "$(package_state "$p")" in
        "" | not-installed) ;;
        *) fail "refusing to run: the package $p is on this machine (the test would purge it)" ;;
    esac
done
for u in "${USERS[@]}"; do
    if getent passwd "$u" >/dev/null || getent group "$u" >/dev/null; then
        fail "refusing to run: the user or group $u exists (the test would remove it)"
    fi
done

tmp=$(mktemp -d)
pids=()
# Paths of the packages that exist without them (an agent run by hand as root keeps its work
# directory in /var/lib/idlefarm-agent) are renamed for the test and put back afterwards.
moved=()
aside() {
    echo "${1%/*}/.${1##*/}.before-package-test"
}
cleanup() {
    local status=$?
    trap - EXIT
    set +e
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for p in "${PACKAGES[@]}"; do
        case "$(package_state "$p")" in
            "" | not-installed) ;;
            *) dpkg --purge "$p" >/dev/null 2>&1 || echo "cleanup: dpkg --purge $p failed" >&2 ;;
        esac
    done
    for u in "${USERS[@]}"; do
        if getent passwd "$u" >/dev/null; then userdel "$u" || true; fi
        if getent group "$u" >/dev/null; then groupdel "$u" || true; fi
    done
    for path in "${PATHS[@]}"; do
        rm -rf "$path"
    done
    for path in "${moved[@]}"; do
        mv "$(aside "$path")" "$path" || echo "cleanup: could not move $(aside "$path") back to $path" >&2
    done
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for path in "${PATHS[@]}"; do
    [ -e "$path" ] || [ -L "$path" ] || continue
    [ ! -e "$(aside "$path")" ] ||
        fail "refusing to run: $(aside "$path") exists (left by an interrupted run? move it back to $path)"
    mv "$path" "$(aside "$path")"
    moved+=("$path")
    echo "$path exists without the packages: renamed to $(aside "$path") until the test ends" >&2
done

if ! command -v ip >/dev/null 2>&1; then
    echo "installing iproute2 (apt-get) for the test's network namespace…" >&2
    apt-get install -y -qq --no-install-recommends iproute2 >&2
fi

for bad in "--deb-revision one" "--out" "--release"; do
    # shellcheck disable=SC2086 # one string per malformed command line
    if installer/package.sh $bad >"$tmp/out" 2>&1; then fail "package.sh $bad was accepted"; fi
    grep -q -- "${bad%% *}" "$tmp/out" || fail "package.sh $bad does not name the argument: $(cat "$tmp/out")"
done
ok "package.sh refuses malformed arguments and names them"

scan >"$tmp/before"

echo "== building the packages from the debug binaries" >&2
installer/package.sh --from-debug-build --out "$tmp/debs" >/dev/null
installer/package.sh --from-debug-build --deb-revision 2 --out "$tmp/debs" >/dev/null
for p in "${PACKAGES[@]}"; do
    for rev in 1 2; do
        ls "$tmp/debs/${p}_"*"-${rev}_"*.deb >/dev/null 2>&1 || fail "package.sh made no ${p} revision $rev"
    done
done
ok "package.sh builds idlefarm and idlefarm-agent"
debs() { # the .deb files of revision $1
    ls "$tmp/debs/idlefarm_"*"-$1_"*.deb "$tmp/debs/idlefarm-agent_"*"-$1_"*.deb
}

echo "== installing revision 1" >&2
mapfile -t first < <(debs 1)
dpkg -i "${first[@]}" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -i revision 1"; }
for p in "${PACKAGES[@]}"; do
    [ "$(package_state "$p")" = installed ] || fail "$p is $(package_state "$p") after dpkg -i"
done
ok "dpkg -i installs both packages"

for bin in idlefarm idlefarm-agent idlefarm-notify; do
    [ -x "/usr/bin/$bin" ] || fail "/usr/bin/$bin is missing"
    "/usr/bin/$bin" --version >/dev/null || fail "/usr/bin/$bin --version fails"
done
ok "the binaries are in /usr/bin and run"
for file in /usr/lib/systemd/system/idlefarm-coordinator.service /usr/lib/systemd/system/idlefarm-agent.service \
    /usr/lib/systemd/user/idlefarm-notify.service /etc/xdg/autostart/idlefarm-notify.desktop \
    /etc/idlefarm/idlefarm.env /etc/idlefarm/agent.toml; do
    [ -f "$file" ] || fail "$file is missing"
done
[ "$(stat -c %a:%U:%G /etc/idlefarm/agent.toml)" = 640:root:idlefarm-agent ] ||
    fail "agent.toml (it holds the token) is not 0640 root:idlefarm-agent: $(stat -c %a:%U:%G /etc/idlefarm/agent.toml)"
dpkg-query -W -f='${Conffiles}' idlefarm | grep -q '^ /etc/idlefarm/idlefarm.env ' ||
    fail "/etc/idlefarm/idlefarm.env is not a conffile"
for conffile in /etc/idlefarm/agent.toml /etc/xdg/autostart/idlefarm-notify.desktop; do
    dpkg-query -W -f='${Conffiles}' idlefarm-agent | grep -q "^ $conffile " || fail "$conffile is not a conffile"
done
ok "units, autostart entry and config files are in place (configs as conffiles, agent.toml 0640 for the agent's group)"

for u in "${USERS[@]}"; do
    IFS=: read -r _ _ uid gid _ home shell < <(getent passwd "$u") || fail "no user $u"
    [ "$uid" -lt 1000 ] || fail "$u is not a system user (uid $uid)"
    [ "$shell" = /usr/sbin/nologin ] || fail "$u has the shell $shell"
    [ "$(getent group "$u" | cut -d: -f3)" = "$gid" ] || fail "$u is not in its own group"
    echo "$u $uid $gid $home" >>"$tmp/users"
done
grep -qx 'idlefarm [0-9]* [0-9]* /var/lib/idlefarm' "$tmp/users" || fail "idlefarm's home is not /var/lib/idlefarm"
ok "system users idlefarm, idlefarm-agent and idlefarm-render exist, each with its own group and no shell"

for unit in idlefarm-coordinator idlefarm-agent; do
    link=/etc/systemd/system/multi-user.target.wants/$unit.service
    [ -L "$link" ] || fail "$unit.service is not enabled ($link is missing)"
done
[ ! -e /etc/systemd/user/graphical-session.target.wants/idlefarm-notify.service ] ||
    fail "the user unit is enabled for everyone; the autostart entry already starts the companion"
ok "both services are enabled, the companion's user unit is not"

for unit in /usr/lib/systemd/system/idlefarm-coordinator.service /usr/lib/systemd/system/idlefarm-agent.service; do
    if ! out=$(systemd-analyze verify --man=no "$unit" 2>&1) || [ -n "$out" ]; then
        fail "systemd-analyze verify $unit: $out"
    fi
done
# The user manager wants a runtime directory, as in a person's session.
install -d -m 0700 "$tmp/xdg"
if ! out=$(XDG_RUNTIME_DIR="$tmp/xdg" systemd-analyze --user verify --man=no \
    /usr/lib/systemd/user/idlefarm-notify.service 2>&1) ||
    [ -n "$out" ]; then
    fail "systemd-analyze --user verify idlefarm-notify.service: $out"
fi
ok "systemd-analyze verify is clean on all three units"
if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate /etc/xdg/autostart/idlefarm-notify.desktop || fail "the autostart entry is invalid"
    ok "desktop-file-validate accepts the autostart entry"
fi

# The command line of a unit's ExecStart= with the unit's EnvironmentFile= applied, the way
# systemd runs it (an unbraced $VAR becomes one argument per word).
exec_start() {
    sed -n 's/^ExecStart=//p' "/usr/lib/systemd/system/$1.service"
}
# The environment systemd gives a service (plus HOME, USER and LOGNAME of its user).
service_env=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
wait_for() { # wait_for DESCRIPTION PID COMMAND...: until COMMAND succeeds, while PID lives
    local what=$1 pid=$2
    shift 2
    for _ in $(seq 600); do
        "$@" && return 0
        kill -0 "$pid" 2>/dev/null || fail "$what: the process ended first"
        sleep 0.1
    done
    fail "$what: not within a minute"
}

echo "== running the coordinator and the agent as their units do" >&2
# What StateDirectory=, LogsDirectory= and RuntimeDirectory= would make before the start.
install -d -o idlefarm -g idlefarm -m 0750 /var/lib/idlefarm /var/log/idlefarm
install -d -o idlefarm-agent -g idlefarm-agent -m 0755 /var/lib/idlefarm-agent /run/idlefarm-agent
# A network namespace of its own: `--listen 0.0.0.0:7870` from idlefarm.env binds nothing on
# this machine's interfaces, and the agent reaches it on that namespace's loopback.
coordinator_cmd="set -a; . /etc/idlefarm/idlefarm.env; set +a; exec $(exec_start idlefarm-coordinator)"
unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
    setpriv --reuid=idlefarm --regid=idlefarm --init-groups \
    "${service_env[@]}" HOME=/var/lib/idlefarm USER=idlefarm LOGNAME=idlefarm \
    bash -c "umask 0027; $coordinator_cmd" >"$tmp/coordinator.log" 2>&1 &
coordinator=$!
pids+=("$coordinator")
wait_for "the coordinator's banner" "$coordinator" grep -q 'enrolment token:' "$tmp/coordinator.log"
token=$(sed -n 's/^ *enrolment token: *\([^ ]*\).*/\1/p' "$tmp/coordinator.log")
[ -n "$token" ] || fail "no enrolment token in the coordinator's banner"
grep -q 'dashboard: *https\?://127.0.0.1:7870/' "$tmp/coordinator.log" ||
    fail "the coordinator does not listen on idlefarm.env's port: $(cat "$tmp/coordinator.log")"
owners=$(find /var/lib/idlefarm -mindepth 1 -printf '%u\n' | sort -u)
[ -n "$owners" ] || fail "the coordinator wrote nothing into /var/lib/idlefarm"
[ "$owners" = idlefarm ] || fail "the coordinator's data is owned by $owners, not idlefarm"
ok "the coordinator runs as idlefarm with idlefarm.env's flags and keeps its data in /var/lib/idlefarm"
# What the README tells a lab admin to type on the coordinator for the token.
printed=$(runuser -u idlefarm -- idlefarm token --data /var/lib/idlefarm 2>&1) || fail "idlefarm token: $printed"
[[ "$printed" == *"$token"* ]] || fail "idlefarm token --data /var/lib/idlefarm printed $printed, not $token"
ok "\`sudo -u idlefarm idlefarm token --data /var/lib/idlefarm\` prints the enrolment token"

# A malformed setting in either config file stops the service with a message naming it.
printf 'IDLEFARM_SERVE_FLAGS="--listen nowhere"\n' >"$tmp/bad.env"
chmod 0644 "$tmp/bad.env"
chmod 0755 "$tmp"
if runuser -u idlefarm -- bash -c "set -a; . $tmp/bad.env; set +a; exec $(exec_start idlefarm-coordinator)" \
    >"$tmp/out" 2>&1; then
    fail "the coordinator started with --listen nowhere"
fi
grep -q -- "--listen" "$tmp/out" || fail "a malformed idlefarm.env: $(cat "$tmp/out")"
sed 's/^render_user =/render_usr =/' /etc/idlefarm/agent.toml >"$tmp/bad.toml"
if /usr/bin/idlefarm-agent --config "$tmp/bad.toml" status >"$tmp/out" 2>&1; then
    fail "the agent accepted render_usr"
fi
grep -q "render_usr" "$tmp/out" || fail "a malformed agent.toml: $(cat "$tmp/out")"
ok "a malformed idlefarm.env or agent.toml stops the service with the flag or key named"

# The admin's edit of agent.toml (must survive the upgrade below).
sed -i -e "s|^#coordinator = .*|coordinator = \"http://127.0.0.1:7870\"|" \
    -e "s|^#token = .*|token = \"$token\"|" /etc/idlefarm/agent.toml
# As the unit runs it: its own user, with the unit's capabilities as ambient ones.
caps=$(sed -n 's/^AmbientCapabilities=//p' /usr/lib/systemd/system/idlefarm-agent.service |
    tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
[ -n "$caps" ] || fail "the agent's unit names no ambient capabilities"
nsenter --net="/proc/$coordinator/ns/net" -- \
    setpriv --reuid=idlefarm-agent --regid=idlefarm-agent --init-groups \
    --inh-caps="$caps" --ambient-caps="$caps" \
    "${service_env[@]}" HOME=/var/lib/idlefarm-agent USER=idlefarm-agent LOGNAME=idlefarm-agent \
    sh -c "exec $(exec_start idlefarm-agent)" >"$tmp/agent.log" 2>&1 &
agent=$!
pids+=("$agent")
wait_for "the agent's enrolment" "$agent" test -s /var/lib/idlefarm-agent/credentials.json
wait_for "the agent's status socket" "$agent" test -S /run/idlefarm-agent/status.sock
/usr/bin/idlefarm-agent status >"$tmp/status" 2>&1 || fail "idlefarm-agent status: $(cat "$tmp/status")"
grep -q '^presence:' "$tmp/status" || fail "idlefarm-agent status: $(cat "$tmp/status")"
grep -qF "renders run as \`idlefarm-render\`" "$tmp/agent.log" ||
    fail "the agent does not render as idlefarm-render: $(cat "$tmp/agent.log")"
owners=$(find /var/lib/idlefarm-agent -maxdepth 1 -mindepth 1 -printf '%u\n' | sort -u)
[ "$owners" = idlefarm-agent ] || fail "the agent's files are owned by $owners, not idlefarm-agent"
ok "the agent runs as idlefarm-agent with /etc/idlefarm/agent.toml, enrols, renders as idlefarm-render, answers status"
for pid in "$agent" "$coordinator"; do
    kill -TERM "$pid"
    wait "$pid" || true
done
pids=()
rmdir /run/idlefarm-agent # RuntimeDirectory= goes when the service stops.
find /var/lib/idlefarm /var/lib/idlefarm-agent -type f -exec sha256sum {} + >"$tmp/data.sum"
grep -q /var/lib/idlefarm-agent/credentials.json "$tmp/data.sum" || fail "no credentials to compare"

echo "== upgrading to revision 2" >&2
mapfile -t second < <(debs 2)
dpkg -i "${second[@]}" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -i revision 2"; }
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Version}' "$p" | grep -q -- '-2$' || fail "$p was not upgraded"
done
sha256sum --quiet -c "$tmp/data.sum" || fail "the upgrade changed the coordinator's data or the agent's credentials"
grep -q '^coordinator = "http://127.0.0.1:7870"' /etc/idlefarm/agent.toml || fail "the upgrade lost the edited agent.toml"
for u in "${USERS[@]}"; do
    IFS=: read -r _ _ uid gid _ home _ < <(getent passwd "$u") || fail "the upgrade removed $u"
    grep -qx "$u $uid $gid $home" "$tmp/users" || fail "the upgrade changed the user $u"
done
ok "upgrading keeps the data, the enrolment, the edited agent.toml and the users"

echo "== removing, then purging" >&2
dpkg --remove idlefarm-agent idlefarm >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg --remove"; }
[ ! -e /usr/bin/idlefarm ] || fail "dpkg --remove left /usr/bin/idlefarm"
sha256sum --quiet -c "$tmp/data.sum" || fail "dpkg --remove touched the data"
[ -f /etc/idlefarm/agent.toml ] || fail "dpkg --remove removed the config"
getent passwd idlefarm >/dev/null || fail "dpkg --remove removed the user idlefarm"
ok "removing keeps the data, the config and the users"

dpkg --purge idlefarm-agent idlefarm >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg --purge"; }
for p in "${PACKAGES[@]}"; do
    case "$(package_state "$p")" in
        "" | not-installed) ;;
        *) fail "$p is $(package_state "$p") after the purge" ;;
    esac
done
for path in "${PATHS[@]}"; do
    [ ! -e "$path" ] || fail "the purge left $path"
done
for u in "${USERS[@]}"; do
    ! getent passwd "$u" >/dev/null || fail "the purge left the user $u"
    ! getent group "$u" >/dev/null || fail "the purge left the group $u"
done
scan >"$tmp/after"
left=$(comm -13 "$tmp/before" "$tmp/after")
[ -z "$left" ] || fail "the purge left: $left"
ok "purging removes every file, folder, enabled unit link, user and group"

echo "packages: $checks checks passed"
