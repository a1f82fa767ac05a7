#!/usr/bin/env bash
# Prints the systemd unit's exposure score (lower is better; we keep it <= 2.0).
set -euo pipefail
cd "$(dirname "$0")/../systemd"
analyze=$(command -v systemd-analyze || true)
if [ -z "$analyze" ]; then
  echo "unit exposure: systemd-analyze not found" >&2
  exit 1
fi
"$analyze" security --offline=yes --no-pager ticketbridge.service | grep Overall
