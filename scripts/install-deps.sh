#!/bin/sh
# Installs the Debian packages named as arguments that are not installed yet.
# Runs apt-get as root, or through sudo when not root. Says what it does and why it fails.
set -eu

missing=""
for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done

if ! command -v swift >/dev/null 2>&1; then
    echo "install-deps: no 'swift' on PATH. zpub needs a Swift 6.1 (or later) toolchain (https://www.swift.org/install/linux/)." >&2
    exit 1
fi

[ -z "$missing" ] && exit 0

echo "install-deps: installing$missing"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: need root to install$missing; run as root or install them with apt-get." >&2
    exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
