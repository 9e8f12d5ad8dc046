#!/usr/bin/env bash
# Install (or upgrade) modbot as a systemd service. Idempotent: run it again to upgrade;
# your settings, rules, credentials and audit log are never overwritten.
#
#   sudo deploy/install.sh              from a checkout of the repository
#   sudo deploy/install.sh --dry-run    print what would be done, change nothing
#   sudo deploy/install.sh --pure       do not compile (see COMPILE below)
#
# What it does: a system user `modbot`; a virtual environment in /opt/modbot with the
# package (from this checkout); the units systemd/modbot.service and modbot@.service;
# /etc/modbot/modbot.toml and /etc/modbot/rules/ from the examples (only when missing);
# /etc/modbot/credentials/ (0700). Then it prints the next steps.
#
# Environment: PREFIX (/opt/modbot), CONFIG_DIR (/etc/modbot), STATE_DIR
# (/var/lib/modbot, must match the unit's StateDirectory), UNIT_DIR (/etc/systemd/system),
# BIN_DIR (/usr/local/sbin, for modbotctl), PYTHON (python3, 3.11 or newer), SKIP_SYSTEMCTL=1 (do not call
# systemctl, for containers and tests), SKIP_USER=1 (do not create the user), COMPILE (auto:
# the per-event path is compiled with mypyc when a C compiler and the Python headers are
# there, a third less CPU for decoding and rules, else pure Python; yes: compiled or fail;
# no: pure).
set -euo pipefail

PREFIX=${PREFIX:-/opt/modbot}
CONFIG_DIR=${CONFIG_DIR:-/etc/modbot}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
PYTHON=${PYTHON:-python3}
SERVICE_USER=${SERVICE_USER:-modbot}
STATE_DIR=${STATE_DIR:-/var/lib/modbot}
BIN_DIR=${BIN_DIR:-/usr/local/sbin}
SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY_RUN=0
COMPILE=${COMPILE:-auto}

for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        --pure) COMPILE=no ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

run() {
    if [ "$DRY_RUN" = 1 ]; then echo "would run: $*"; else "$@"; fi
}

say() { echo "==> $*"; }

if [ ! -f "$SOURCE/pyproject.toml" ] || [ ! -d "$SOURCE/modbot" ]; then
    echo "install.sh: run it from a checkout of modbot (no pyproject.toml in $SOURCE)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "install.sh: $PYTHON is missing or older than Python 3.11 (set PYTHON=...)" >&2
    exit 1
fi

if [ "${SKIP_USER:-0}" != 1 ]; then
    if id "$SERVICE_USER" >/dev/null 2>&1; then
        say "user $SERVICE_USER exists"
    else
        say "creating the system user $SERVICE_USER"
        run useradd --system --home-dir /var/lib/modbot --no-create-home \
            --shell /usr/sbin/nologin --user-group "$SERVICE_USER"
    fi
fi

say "virtual environment in $PREFIX"
if [ ! -x "$PREFIX/bin/python" ]; then
    run "$PYTHON" -m venv "$PREFIX"
fi
run "$PREFIX/bin/python" -m pip install --quiet --upgrade pip
can_compile() {
    { command -v cc || command -v gcc; } >/dev/null 2>&1 && "$PYTHON" -c '
import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
}
install_package() {  # $1: MODBOT_COMPILE (1 compiled, 0 pure; see hatch_build.py)
    run env MODBOT_COMPILE="$1" "$PREFIX/bin/python" -m pip install --quiet --upgrade "$SOURCE"
}
case "$COMPILE" in
    yes) say "building the compiled package (mypyc)"; install_package 1 ;;
    no) say "building the pure-Python package"; install_package 0 ;;
    auto)
        if can_compile; then
            say "building the compiled package (mypyc; COMPILE=no or --pure to skip)"
            if ! install_package 1; then
                say "the compiled build failed (above); installing the pure-Python package"
                install_package 0
            fi
        else
            say "no C compiler or Python headers (packages gcc and python3-dev): installing the pure-Python package"
            install_package 0
        fi ;;
    *) echo "install.sh: COMPILE must be auto, yes or no (not '$COMPILE')" >&2; exit 2 ;;
esac
run install -m 0644 "$SOURCE/README.md" "$PREFIX/README.md"

say "state directory $STATE_DIR (the audit log is kept across upgrades)"
run install -d -m 0700 "$STATE_DIR"
if [ "${SKIP_USER:-0}" != 1 ]; then
    run chown "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
fi

say "configuration in $CONFIG_DIR (existing files are kept)"
run install -d -m 0755 "$CONFIG_DIR"
run install -d -m 0700 "$CONFIG_DIR/credentials"
if [ -e "$CONFIG_DIR/modbot.toml" ]; then
    say "keeping $CONFIG_DIR/modbot.toml"
else
    run install -m 0644 "$SOURCE/deploy/modbot.toml" "$CONFIG_DIR/modbot.toml"
fi
if [ -e "$CONFIG_DIR/rules" ]; then
    say "keeping $CONFIG_DIR/rules"
else
    run cp -R "$SOURCE/rules" "$CONFIG_DIR/rules"
    run chmod -R u=rwX,go=rX "$CONFIG_DIR/rules"
fi

say "systemd units in $UNIT_DIR"
run install -d -m 0755 "$UNIT_DIR"
for unit in modbot.service modbot@.service; do
    sed "s#/opt/modbot/#$PREFIX/#g" "$SOURCE/systemd/$unit" > "$WORK/$unit"
    run install -m 0644 "$WORK/$unit" "$UNIT_DIR/$unit"
done
say "modbotctl in $BIN_DIR (modbot commands as the service: auth, audit, undo)"
run install -d -m 0755 "$BIN_DIR"
# modbotctl takes the user, credentials and sandbox from the installed unit.
sed -e "s#^PREFIX=.*#PREFIX=$PREFIX#" -e "s#^UNIT_DIR=.*#UNIT_DIR=$UNIT_DIR#" \
    "$SOURCE/deploy/modbotctl" > "$WORK/modbotctl"
run install -m 0755 "$WORK/modbotctl" "$BIN_DIR/modbotctl"
if [ "${SKIP_SYSTEMCTL:-0}" != 1 ] && command -v systemctl >/dev/null; then
    run systemctl daemon-reload
fi

missing=""
for credential in api-key client-secret; do
    [ -s "$CONFIG_DIR/credentials/$credential" ] || missing="$missing $credential"
done

version=$("$PREFIX/bin/modbot" --version 2>/dev/null || echo "modbot (dry run: nothing installed)")
cat <<NEXT

$version is in $PREFIX. Next steps:
NEXT
step=1
if [ -n "$missing" ]; then
    cat <<NEXT
  $step. Put the Euler secrets in systemd credentials (never in modbot.toml); paste each,
     then Ctrl-D (nothing lands in your shell history):
       sudo sh -c 'umask 077; cat > $CONFIG_DIR/credentials/api-key'
       sudo sh -c 'umask 077; cat > $CONFIG_DIR/credentials/client-secret'
NEXT
    step=$((step + 1))
fi
cat <<NEXT
  $step. Edit $CONFIG_DIR/modbot.toml (streamers, client_id) and the rules in $CONFIG_DIR/rules;
       check them: $PREFIX/bin/modbot rules check $CONFIG_DIR/rules
  $((step + 1)). Grant access (as the service, with its credentials; prints the authorize URL):
       sudo modbotctl auth login --port 8765
  $((step + 2)). Start it: sudo systemctl enable --now modbot
       Follow it: journalctl -u modbot -f      Reload rules: sudo systemctl reload modbot
       Audit and undo: sudo modbotctl audit --since 1h; sudo modbotctl undo ID
NEXT
