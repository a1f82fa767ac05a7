#!/usr/bin/env bash
# `make run`: the sandbox ticketing server and the daemon on config/demo.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=.venv/bin/ticketbridge
sandbox_port=8765
# The daemon never creates its spool folder; an installer would.
mkdir -p var/demo/spool

export TICKETBRIDGE_DESTINATIONS__JIRA_NEW__TOKEN=demo-jira-token
export TICKETBRIDGE_DESTINATIONS__SNOW_OLD__PASSWORD=demo-snow-password

"$bin" sandbox --port "$sandbox_port" > var/demo/sandbox.log 2>&1 &
sandbox_pid=$!
trap 'kill "$sandbox_pid" 2>/dev/null || true' EXIT

for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$sandbox_port/_sandbox/tickets" > /dev/null 2>&1 && break
  sleep 0.1
done

"$bin" check-config config/demo.yaml

cat <<INFO

ticketbridge demo
  tickets (sandbox):  http://127.0.0.1:$sandbox_port/   (JSON: /_sandbox/tickets)
  metrics and health: http://127.0.0.1:9464/metrics  /healthz  /readyz
  spool folder:       var/demo/spool   (processed/ and rejected/ beside it)
  ledger:             var/demo/ledger.sqlite3

Raise a problem, then its recovery, from another terminal:
  $bin notify --spool var/demo/spool --kind problem --host web01 \\
      --check HTTP --severity CRITICAL --summary "HTTP 503"
  $bin notify --spool var/demo/spool --kind recovery --host web01 \\
      --check HTTP --severity OK --summary "HTTP 200"

Ctrl-C stops the daemon and the sandbox.

INFO

"$bin" --config config/demo.yaml run
