#!/usr/bin/env bash
# The Podium tour, over HTTP: start `podium serve` on a fresh SQLite file, push the example
# definitions, launch runs with live progress, recover a failed run by swapping an agent,
# and show the URLs and commands to try. Works without a terminal (CI): progress is then
# printed one line per event. The server is stopped at the end (or on Ctrl-C/errors);
# with PODIUM_DEMO_KEEP=1 it keeps serving until Ctrl-C so that the URLs can be opened.
set -euo pipefail
cd "$(dirname "$0")/.."

PODIUM="$PWD/.venv/bin/podium"
PYTHON="$PWD/.venv/bin/python"
DEADLINE_SECONDS=30

mkdir -p .podium
DB=.podium/demo.db
LOG=.podium/demo-server.log
rm -f "$DB" "$DB-wal" "$DB-shm" "$LOG" # start fresh every time
export DATABASE_URL="sqlite:///$DB"
unset PODIUM_URL PODIUM_API_KEY
# the demo A2A agents listen on loopback, which agent URLs may not name unless allowed
export PODIUM_AGENT_URL_ALLOWLIST=loopback
AGENTS_LOG=.podium/demo-agents.log
rm -f "$AGENTS_LOG"

heading() { printf '\n==> %s\n' "$*"; }
podium() { "$PODIUM" "$@"; }
# show CMD ARGS...: print the command as one would type it, then run it
show() {
  local line="$" arg
  for arg in "$@"; do
    if [[ "$arg" =~ [[:space:]\;\&\?\*] ]]; then line+=" \"$arg\""; else line+=" $arg"; fi
  done
  printf '%s\n' "$line"
  "$@"
}

# -- the server ------------------------------------------------------------------------------
# --port 0: the system picks a free loopback port; the banner line names it
"$PODIUM" serve --host 127.0.0.1 --port 0 >"$LOG" 2>&1 &
SERVER=$!
AGENTS=""
stop_server() {
  local pid
  for pid in "$SERVER" $AGENTS; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# Wait (polling, with a deadline) until the banner names the URL and /readyz answers 200.
URL=$("$PYTHON" - "$LOG" "$SERVER" "$DEADLINE_SECONDS" <<'EOF'
import os, re, sys, time, urllib.request

log, pid, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
url = None
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("podium serve exited:\n" + open(log).read())
    if url is None:
        found = re.search(r"Podium API on (http://\S+)", open(log).read())
        url = found.group(1) if found else None
    if url is not None:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:
                if answer.status == 200:
                    print(url)
                    sys.exit(0)
        except OSError:
            pass
    time.sleep(0.05)
sys.exit(f"podium serve was not ready within {limit:.0f} s:\n" + open(log).read())
EOF
)
export PODIUM_URL="$URL"

heading "podium serve  (in the background; its log: $LOG)"
sed -n '1,3p' "$LOG"
echo "\$ export PODIUM_URL=$URL   # every podium command below talks to this server"

heading "push the example definitions"
for file in examples/*.yaml; do
  show podium definitions push "$file"
done
show podium definitions list

heading "launch a run on the server and follow its event stream (one step fails once and is retried)"
show podium run examples/fanout.yaml \
  -p text="Podium keeps agent workflows running through crashes, retries and restarts."

heading "a parent that fans out into child runs (type: orchestration steps), and its tree"
show podium run examples/team-brief.yaml -p topic="durable agent workflows"
TEAM=$(podium runs list --definition team-brief --limit 1 --json |
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["id"])')
show podium runs show "$TEAM"

heading "a run whose step always fails: it fails after its two attempts"
if show podium run examples/recovery.yaml -p topic="durable agent workflows"; then
  echo "unexpected: the run completed" >&2
  exit 1
fi
FAILED=$(podium runs list --status failed --definition needs-a-hand --limit 1 --json |
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["id"])')

heading "recover it: retry the failed step with the echo agent instead, and watch it complete"
show podium retry "$FAILED" --step summarize --agent summarize=echo \
  --note "the summarizer is down; echo the input"
show podium runs watch "$FAILED"

# wait_for_approval [RUN]: the approvalId of the one pending approval (of RUN), polling with
# a deadline
wait_for_approval() {
  "$PYTHON" - "$PODIUM" "$DEADLINE_SECONDS" "${1:-}" <<'EOF'
import json, subprocess, sys, time

podium, limit, run = sys.argv[1], float(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + limit
args = [podium, "approvals", "list", "--json"] + (["--run", run] if run else [])
while time.monotonic() < deadline:
    listed = subprocess.run(args, capture_output=True, text=True)
    items = json.loads(listed.stdout)["items"] if listed.returncode == 0 else []
    if items:
        print(items[0]["approvalId"])
        sys.exit(0)
    time.sleep(0.2)
sys.exit(f"no approval was pending within {limit:.0f} s")
EOF
}

heading "a human checkpoint: the run stops after its draft and waits for a person"
echo "\$ podium run examples/checkpoint.yaml -p topic=\"durable agents\" &"
podium run examples/checkpoint.yaml -p topic="durable agents" &
CHECKED=$!
APPROVAL=$(wait_for_approval)
show podium approvals list
show podium approvals show "$APPROVAL"

heading "approve it from the command line: the run that waited goes on to completion"
show podium approvals approve "$APPROVAL" --note "reads well"
wait "$CHECKED"

heading "agents over A2A: serve the demo agents on loopback and register them"
echo "\$ export PODIUM_AGENT_URL_ALLOWLIST=loopback   # agent URLs on loopback are refused unless allowed"
echo "\$ podium agents demo --port 0 --register &"
"$PODIUM" agents demo --port 0 --register >"$AGENTS_LOG" 2>&1 &
AGENTS=$!
"$PYTHON" - "$AGENTS_LOG" "$AGENTS" "$DEADLINE_SECONDS" <<'EOF'
import os, sys, time

log, pid, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    text = open(log).read()
    if "registered " in text or "error:" in text:
        print(text.rstrip())
        sys.exit(0 if "registered " in text else 1)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("podium agents demo exited:\n" + text)
    time.sleep(0.05)
sys.exit(f"the demo agents were not registered within {limit:.0f} s:\n" + open(log).read())
EOF
show podium agents list
show podium agents show summarizer

heading "launch a run of A2A agents with curl, and follow its event stream with curl -N"
BODY='{"definition": "agent-brief", "parameters": {}}'
printf '$ curl -s -X POST %s/api/orchestrations -H "Content-Type: application/json" -H "Idempotency-Key: demo-brief-1" -d %s\n' \
  "$URL" "'$BODY'"
BRIEF=$(curl -s -X POST "$URL/api/orchestrations" -H "Content-Type: application/json" \
  -H "Idempotency-Key: demo-brief-1" -d "$BODY" |
  "$PYTHON" -c 'import json, sys; run = json.load(sys.stdin); print(json.dumps(run, indent=2), file=sys.stderr); print(run["id"])')
printf '$ curl -sN %s | grep "^event:"\n' "$URL/api/orchestrations/$BRIEF/stream"
curl -sN "$URL/api/orchestrations/$BRIEF/stream" | grep '^event:'
show podium runs show "$BRIEF"

heading "an A2A agent that asks for input: the step waits for an answer (approval of kind input)"
ASKED=$(podium run examples/ask.yaml --no-follow --json |
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["id"])')
QUESTION=$(wait_for_approval "$ASKED")
show podium approvals list --kind input
show podium approvals respond "$QUESTION" --text French --note "the team is in Lyon"
show podium runs watch "$ASKED"

heading "the runs, as the API lists them"
show podium runs list

heading "the same run through curl: compact status, and the SSE stream's end"
if command -v curl >/dev/null 2>&1; then
  printf '$ curl -s %s | python -m json.tool\n' "$URL/api/orchestrations/$FAILED/status"
  curl -s "$URL/api/orchestrations/$FAILED/status" | "$PYTHON" -m json.tool
  printf '$ curl -sN %s | tail -n 7\n' "$URL/api/orchestrations/$FAILED/stream"
  curl -sN "$URL/api/orchestrations/$FAILED/stream" | tail -n 7
else
  echo "(curl is not installed: skipped)"
fi

heading "try it yourself"
cat <<EOF
dashboard:           $URL/
API docs (OpenAPI):  $URL/docs
run status:          $URL/api/orchestrations/$FAILED/status
run event stream:    $URL/api/orchestrations/$FAILED/stream

  export PODIUM_URL=$URL
  podium runs list --lifecycle completed
  podium runs show ${FAILED:0:13} --events
  podium run examples/fanout.yaml -p text="your words here"
  podium run examples/recovery.yaml --no-follow   # then: podium abort RUN --note "why"
  curl -s "$URL/api/orchestrations?limit=5"
  curl -sN $URL/api/orchestrations/$FAILED/stream
EOF

if [[ "${PODIUM_DEMO_KEEP:-}" == "1" ]]; then
  heading "serving on $URL until Ctrl-C"
  wait "$SERVER"
else
  heading "stopping the server (PODIUM_DEMO_KEEP=1 make demo keeps it running)"
fi
