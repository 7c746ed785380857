#!/usr/bin/env bash
# The Podium tour: validate a definition, run it with progress until it ends, list the runs.
# Works without a terminal (CI): progress is then printed one line per event.
set -euo pipefail
cd "$(dirname "$0")/.."

PODIUM=.venv/bin/podium
export DATABASE_URL="sqlite:///.podium/demo.db"
rm -f .podium/demo.db .podium/demo.db-wal .podium/demo.db-shm  # start fresh every time

heading() { printf '\n==> %s\n' "$*"; }

heading "podium definitions validate examples/fanout.yaml"
"$PODIUM" definitions validate examples/fanout.yaml

heading "podium run examples/fanout.yaml -p text=\"...\"  (one step fails once and is retried)"
"$PODIUM" run examples/fanout.yaml \
  -p text="Podium keeps agent workflows running through crashes, retries and restarts."

heading "podium runs list"
"$PODIUM" runs list
