#!/usr/bin/env bash
# Install the Debian packages that the real-server tests need (tests/realservers.py):
#   postfix          -> /usr/sbin/postfix, /usr/libexec/postfix/smtpd, /usr/sbin/smtp-sink
#   sasl2-bin        -> /usr/sbin/saslpasswd2 (Cyrus sasldb for SMTP AUTH)
#   libsasl2-modules -> the PLAIN/LOGIN mechanisms
#   swaks            -> handy for poking at the servers by hand (not used by the tests)
#
# Idempotent and non-interactive. Skips apt entirely when everything is installed.
# Never leaves the system Postfix service running: the tests start throwaway instances.
# When not run as root it prints why and exits 0 (the real-server tests then skip,
# or fail when CI=true / SMTPX_REQUIRE_REAL_SERVERS=1).
set -euo pipefail

PACKAGES=(postfix sasl2-bin libsasl2-modules swaks redis-server)

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! is_installed "$pkg"; then
        missing+=("$pkg")
    fi
done

stop_system_postfix() {
    # Belt and braces: should the maintainer scripts have started the system instance
    # despite policy-rc.d, stop it: it would hold port 25 and is never used. (With the
    # "No configuration" preseed there is no /etc/postfix/main.cf and nothing starts.)
    if command -v postfix >/dev/null 2>&1 && postfix status >/dev/null 2>&1; then
        echo "install-test-deps: stopping the system postfix instance"
        postfix stop >/dev/null 2>&1 || true
    fi
}

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-test-deps: all present (${PACKAGES[*]})"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: not root; cannot install: ${missing[*]}" >&2
    echo "install-test-deps: the real-server tests will be skipped" >&2
    echo "install-test-deps: (run as root, or: sudo $0)" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: installing ${missing[*]}"

# Keep maintainer scripts from starting services during the install. Only add a
# policy-rc.d when none exists, and remove only the one we added.
POLICY=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# added by smtpx scripts/install-test-deps.sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    added_policy=1
fi
cleanup() {
    if [ "$added_policy" -eq 1 ]; then
        rm -f "$POLICY"
    fi
}
trap cleanup EXIT

echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Try without refreshing the lists first (fast when they are recent); update once on failure.
if ! apt_install "${missing[@]}"; then
    apt-get update -q
    apt_install "${missing[@]}"
fi

stop_system_postfix

for pkg in "${PACKAGES[@]}"; do
    if ! is_installed "$pkg"; then
        echo "install-test-deps: $pkg still not installed" >&2
        exit 1
    fi
done
echo "install-test-deps: done"
