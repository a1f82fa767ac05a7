#!/usr/bin/env bash
# Installs the real systems that the realsystem tests start on loopback:
# Nagios 4 (with the basic plugins) and Prometheus (its promtool checks the
# alert rules). Quick and silent when everything is already there, without
# touching the network; needs root otherwise.
set -euo pipefail

wanted=(nagios4-core monitoring-plugins-basic prometheus)

installed() {
  dpkg-query -W -f '${Status}' "$1" 2> /dev/null | grep -q 'install ok installed'
}

packages=()
for package in "${wanted[@]}"; do
  installed "$package" || packages+=("$package")
done
if [ "${#packages[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-packages: ${packages[*]} missing and installing needs root" >&2
  exit 1
fi

# nagios4-common needs a mailer. Without any MTA apt would choose exim4, a
# listening daemon; dma is a small one that only delivers locally.
if [[ " ${packages[*]} " == *" nagios4-core "* ]] && [ ! -e /usr/sbin/sendmail ] \
  && ! installed dma; then
  packages+=(dma)
fi

# Package scripts must not start daemons (Nagios and Prometheus would listen
# on every address): policy-rc.d exiting 101 forbids it. Put one in place only
# for this install.
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
# a package we need, so a run with everything listed does not touch the network.
for package in "${packages[@]}"; do
  if ! apt-cache show "$package" > /dev/null 2>&1; then
    apt-get update -q
    break
  fi
done

# Stale lists can name versions the mirror no longer has: refresh once, retry.
echo "install-test-packages: installing ${packages[*]}"
install() { apt-get install -y -q --no-install-recommends "${packages[@]}"; }
install || { apt-get update -q && install; }

# The tests run their own Prometheus on loopback; the packaged service would
# listen on every address at the next boot. Keep it off unless wanted.
if [[ " ${packages[*]} " == *" prometheus "* ]]; then
  systemctl disable prometheus.service > /dev/null 2>&1 || true
fi
