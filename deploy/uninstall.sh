#!/usr/bin/env bash
# Remove modbot's service, program and modbotctl. The audit log (/var/lib/modbot), the
# settings, rules and credentials (/etc/modbot) and the user are kept, unless --purge.
#
#   sudo deploy/uninstall.sh            keep the audit log and configuration
#   sudo deploy/uninstall.sh --purge    also delete them (and the modbot user)
#
# Environment: the same PREFIX, CONFIG_DIR, STATE_DIR, UNIT_DIR, BIN_DIR, SERVICE_USER,
# SKIP_SYSTEMCTL and SKIP_USER as install.sh.
set -euo pipefail

PREFIX=${PREFIX:-/opt/modbot}
CONFIG_DIR=${CONFIG_DIR:-/etc/modbot}
STATE_DIR=${STATE_DIR:-/var/lib/modbot}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
BIN_DIR=${BIN_DIR:-/usr/local/sbin}
SERVICE_USER=${SERVICE_USER:-modbot}
PURGE=0

for arg in "$@"; do
    case "$arg" in
        --purge) PURGE=1 ;;
        -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "uninstall.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done

say() { echo "==> $*"; }

if [ "${SKIP_SYSTEMCTL:-0}" != 1 ] && command -v systemctl >/dev/null; then
    say "stopping the service"
    systemctl disable --now modbot.service 'modbot@*.service' 2>/dev/null || true
fi
say "removing the units, $PREFIX and modbotctl"
rm -f "$UNIT_DIR/modbot.service" "$UNIT_DIR/modbot@.service" "$BIN_DIR/modbotctl"
rm -rf "$PREFIX"
if [ "${SKIP_SYSTEMCTL:-0}" != 1 ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload || true
fi

if [ "$PURGE" = 1 ]; then
    say "purging $CONFIG_DIR and $STATE_DIR (the audit log and tokens)"
    rm -rf "$CONFIG_DIR" "$STATE_DIR"
    if [ "${SKIP_USER:-0}" != 1 ] && id "$SERVICE_USER" >/dev/null 2>&1; then
        userdel "$SERVICE_USER" || true
    fi
else
    [ -d "$STATE_DIR" ] && say "kept the audit log and tokens in $STATE_DIR"
    [ -d "$CONFIG_DIR" ] && say "kept the settings, rules and credentials in $CONFIG_DIR"
    echo "(uninstall.sh --purge deletes them)"
fi
