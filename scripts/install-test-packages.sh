#!/usr/bin/env bash
# Installs the real systems that the realsystem tests start on loopback:
# Nagios 4, Prometheus (and its promtool), Redmine 5 and Request Tracker 5.
# Quick and silent when everything is already there; needs root otherwise.
# Each system has its own section that adds to `packages` when it is missing.
set -euo pipefail

packages=()
after_install=()
debconf_selections=""

# Packages that need a mailer get dma: without any MTA apt would choose exim4,
# a listening daemon; dma only delivers locally.
mailer_missing() {
  [ ! -e /usr/sbin/sendmail ] && ! dpkg-query -W -f '${Status}' dma 2> /dev/null \
    | grep -q 'ok installed' && [[ " ${packages[*]} " != *" dma "* ]]
}

# --- Nagios 4 -----------------------------------------------------------------
if ! { command -v nagios4 > /dev/null 2>&1 && getent passwd nagios > /dev/null; }; then
  packages+=(nagios4-core monitoring-plugins-basic)
  # nagios4-common needs a mailer.
  if mailer_missing; then
    packages+=(dma)
  fi
fi

# --- Prometheus (promtool checks the alert rules; a real server runs a test) --
disable_packaged_prometheus() {
  # The tests run their own Prometheus on loopback; the packaged service would
  # listen on every address at the next boot. Keep it off unless wanted.
  systemctl disable prometheus.service > /dev/null 2>&1 || true
}
if ! dpkg-query -W -f '${Status}' prometheus 2> /dev/null | grep -q 'ok installed'; then
  packages+=(prometheus)
  after_install+=(disable_packaged_prometheus)
fi

# --- Redmine 5 (SQLite) -------------------------------------------------------
# The tests run Redmine as a plain process from /usr/share/redmine with their
# own database; the package's own SQLite instance is only what its postinst
# needs to finish. WEBrick is the server the tests start.
redmine_installed() {
  dpkg-query -W -f '${Status}\n' redmine redmine-sqlite ruby-webrick 2> /dev/null \
    | grep -c 'ok installed' | grep -qx 3
}
redmine_webrick_in_bundle() {
  grep -qs '^gem "webrick"' /usr/share/redmine/Gemfile.local
}
install_redmine_extras() {
  # Rails only serves with WEBrick when the bundle names it.
  if ! redmine_webrick_in_bundle; then
    echo 'gem "webrick"' >> /usr/share/redmine/Gemfile.local
    (cd /usr/share/redmine && bundle install --local --quiet)
  fi
}
if ! redmine_installed; then
  packages+=(redmine redmine-sqlite ruby-webrick)
  # dbconfig-common must not ask; SQLite needs no database server.
  debconf_selections+=$'redmine redmine/instances/default/dbconfig-install boolean true\n'
  debconf_selections+=$'redmine redmine/instances/default/database-type select sqlite3\n'
  after_install+=(install_redmine_extras)
elif ! redmine_webrick_in_bundle; then
  after_install+=(install_redmine_extras)
fi

# --- Request Tracker 5 (SQLite) -----------------------------------------------
# The tests run RT's own rt-server (Starlet) with a private configuration and
# database; naming rt5-standalone keeps rt5-apache2 (and Apache) out. The
# package's postinst makes a SQLite database of its own, which the tests
# never read. About 250 packages, 48 MB to download, 205 MB on disk.
disable_packaged_rt_unit() {
  # The package enables a placeholder unit (ExecStart=/bin/true) that only
  # orders Apache after a database server; its bare `After=mysql postgresql`
  # makes `systemd-analyze verify` of our own unit print warnings.
  systemctl disable request-tracker5.service > /dev/null 2>&1 || true
}
rt_installed() {
  dpkg-query -W -f '${Status}\n' request-tracker5 rt5-db-sqlite rt5-standalone \
    2> /dev/null | grep -c 'ok installed' | grep -qx 3
}
if ! rt_installed; then
  packages+=(request-tracker5 rt5-db-sqlite rt5-standalone)
  # request-tracker5 needs a mailer.
  if mailer_missing; then
    packages+=(dma)
  fi
  # dbconfig-common must not ask; SQLite needs no database server.
  debconf_selections+=$'request-tracker5 request-tracker5/dbconfig-install boolean true\n'
  debconf_selections+=$'request-tracker5 request-tracker5/database-type select sqlite3\n'
  after_install+=(disable_packaged_rt_unit)
elif systemctl is-enabled --quiet request-tracker5.service 2> /dev/null; then
  after_install+=(disable_packaged_rt_unit)
fi

# --- install what is missing --------------------------------------------------
if [ "${#packages[@]}" -eq 0 ] && [ "${#after_install[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-packages: ${packages[*]} ${after_install[*]} missing;" \
    "installing needs root" >&2
  exit 1
fi

if [ "${#packages[@]}" -gt 0 ]; then
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
  if [ -n "$debconf_selections" ]; then
    printf '%s' "$debconf_selections" | debconf-set-selections
  fi

  # A fresh machine has no package lists yet; refresh only when apt cannot see
  # the packages, so a second run does not touch the network.
  if ! apt-cache show "${packages[@]}" > /dev/null 2>&1; then
    apt-get update -q
  fi

  # Stale lists can name versions the mirror no longer has: refresh once, retry.
  # Another install may hold the dpkg lock: wait for it rather than fail.
  echo "install-test-packages: installing ${packages[*]}"
  install() {
    apt-get install -y -q --no-install-recommends \
      -o DPkg::Lock::Timeout=600 "${packages[@]}"
  }
  install || { apt-get update -q && install; }
fi

for step in "${after_install[@]}"; do
  "$step"
done
