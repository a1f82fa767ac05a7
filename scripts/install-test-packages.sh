#!/usr/bin/env bash
# Installs the real systems that the realsystem tests start on loopback.
# Quick and silent when everything is already there; needs root otherwise.
set -euo pipefail

packages=(nagios4-core monitoring-plugins-basic)

if command -v nagios4 > /dev/null 2>&1 && getent passwd nagios > /dev/null; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-packages: nagios4 is missing and installing it needs root" >&2
  exit 1
fi

# nagios4-common needs a mailer. Without any MTA apt would choose exim4, a
# listening daemon; dma is a small one that only delivers locally.
if [ ! -e /usr/sbin/sendmail ] && ! dpkg-query -W -f '${Status}' dma 2> /dev/null \
  | grep -q 'ok installed'; then
  packages+=(dma)
fi

# Package scripts must not start daemons (they would bind to every address):
# policy-rc.d exiting 101 forbids it. Put one in place only for this install.
policy=/usr/sbin/policy-rc.d
saved_policy=""
if [ -e "$policy" ]; then
  saved_policy="$(mktemp)"
  cp -p "$policy" "$saved_policy"
fi
restore_policy() {
  if [ -n "$saved_policy" ]; then
    mv -f "$saved_policy" "$policy"
  else
    rm -f "$policy"
  fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' > "$policy"
chmod 0755 "$policy"

export DEBIAN_FRONTEND=noninteractive

# A fresh machine has no package lists yet; refresh only when apt cannot see
# the package, so a second run does not touch the network.
if ! apt-cache show nagios4-core > /dev/null 2>&1; then
  apt-get update -q
fi

# Stale lists can name versions the mirror no longer has: refresh once, retry.
echo "install-test-packages: installing ${packages[*]}"
install() { apt-get install -y -q --no-install-recommends "${packages[@]}"; }
install || { apt-get update -q && install; }
