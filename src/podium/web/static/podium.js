// Podium dashboard: live updates for server-rendered pages. No build step, no dependencies.
// The pages work without this script (every action is a plain form); it only keeps them live.
"use strict";

const EVENT_TYPES = [
  "orchestration.run.created", "orchestration.run.updated", "orchestration.run.completed",
  "orchestration.run.failed", "orchestration.run.aborted",
  "orchestration.step.queued", "orchestration.step.running", "orchestration.step.progress",
  "orchestration.step.completed", "orchestration.step.failed",
  "orchestration.step.retry_scheduled", "orchestration.step.skipped",
  "orchestration.step.checkpoint_pending",
  "orchestration.checkpoint.requested", "orchestration.checkpoint.expiring",
  "orchestration.checkpoint.resolved",
  "orchestration.child.started", "orchestration.child.completed", "orchestration.child.failed",
  "orchestration.recovery.action",
];
const TERMINAL = new Set(["completed", "failed", "aborted"]);

function setStatus(el, status) {
  if (!el || !status) return;
  el.dataset.status = status;
  const text = el.matches(".status") ? el : el.querySelector(".status");
  if (text) text.textContent = status;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function stepStatusFrom(event) {
  const kind = event.type.split(".").pop();
  if (event.data && event.data.status) return event.data.status;
  return { retry_scheduled: "pending", progress: null }[kind] || kind;
}

function applyEvent(event, stepNodes) {
  const rows = document.querySelector("#events tbody");
  if (rows && !rows.querySelector(`tr[data-sequence="${event.sequence}"]`)) {
    const tr = document.createElement("tr");
    tr.dataset.sequence = String(event.sequence);
    const time = new Date(event.timestamp).toISOString().slice(11, 23);
    const data = JSON.stringify(event.data);
    [String(event.sequence), time, event.type, event.stepId || "",
      data.length > 160 ? data.slice(0, 157) + "..." : data].forEach((t) => tr.appendChild(cell(t)));
    rows.appendChild(tr);
  }
  if (event.type.startsWith("orchestration.run.") && event.data && event.data.status) {
    const status = event.data.status;
    setStatus(document.getElementById("run-status"), status);
    document.getElementById("run").dataset.status = status;
    // what the page said about an earlier state no longer holds
    const error = document.getElementById("run-error");
    if (error && status !== "failed") error.hidden = true;
    const recovery = document.getElementById("recovery");
    if (recovery && (status === "completed" || status === "aborted")) recovery.hidden = true;
  }
  if (event.stepId && event.type.startsWith("orchestration.step.")) {
    const status = stepStatusFrom(event);
    if (status) {
      setStatus(stepNodes(event.stepId), status);
      setStatus(document.getElementById(`step-${event.stepId}`), status);
    }
  }
  if (event.type === "orchestration.run.aborted" && event.data && event.data.abortedSteps) {
    for (const stepId of event.data.abortedSteps) setStatus(stepNodes(stepId), "aborted");
  }
}

// Completed and aborted runs never change again; a failed run may (an operator retries it),
// so its page watches the status and follows the stream again when the run moves.
const FINAL = new Set(["completed", "aborted"]);

// The position of the runs `query` names (see /runs/moved) once it passes `after`, or after
// a while. Only while the page is visible: a hidden tab holds no connection, since a browser
// opens at most six to one server over HTTP/1.1. Rejects when the tab is hidden meanwhile.
async function moved(query) {
  while (document.hidden) {
    await new Promise((shown) => document.addEventListener("visibilitychange", shown, { once: true }));
  }
  const control = new AbortController();
  const hidden = () => { if (document.hidden) control.abort(); };
  document.addEventListener("visibilitychange", hidden);
  try {
    const response = await fetch(`/runs/moved?${query}`, { credentials: "same-origin", signal: control.signal });
    if (!response.ok) throw new Error(`status ${response.status}`);
    return (await response.json()).position;
  } finally {
    document.removeEventListener("visibilitychange", hidden);
  }
}

function followRun(section) {
  const runId = encodeURIComponent(section.dataset.run);
  if (FINAL.has(section.dataset.status) || !window.EventSource) return;
  const nodes = new Map();
  document.querySelectorAll("svg.dag g.node").forEach((g) => nodes.set(g.dataset.step, g));
  const stepNodes = (id) => nodes.get(id);
  let sequence = Number(section.dataset.sequence || "0");
  const open = () => {
    const source = new EventSource(`/api/orchestrations/${runId}/stream?after=${sequence}`);
    const onEvent = (message) => {
      try {
        const event = JSON.parse(message.data);
        sequence = Math.max(sequence, event.sequence);
        applyEvent(event, stepNodes);
      } catch (err) {
        console.warn("podium: bad event", err);
      }
    };
    EVENT_TYPES.forEach((type) => source.addEventListener(type, onEvent));
    const ended = () => {
      source.close();
      if (!FINAL.has(section.dataset.status)) watch();
    };
    source.addEventListener("complete", ended);
    source.addEventListener("error", (e) => { if (e.data) ended(); });
  };
  // the server answers as soon as the run has events after `sequence`, or after a while
  const watch = async () => {
    let position;
    try {
      position = await moved(`run=${runId}&after=${sequence}`);
    } catch (err) {
      window.setTimeout(watch, 1000);
      return;
    }
    // the run moved (it may already have ended again): replay what happened since
    if (position > sequence) open(); else watch();
  };
  if (TERMINAL.has(section.dataset.status)) watch(); else open();
}

async function refreshRuns(table) {
  const query = new URLSearchParams(window.location.search);
  query.delete("notice"); query.delete("kind");
  let page;
  try {
    const response = await fetch(`/api/orchestrations?${query}`, { credentials: "same-origin" });
    if (!response.ok) return;
    page = await response.json();
  } catch (err) {
    return;
  }
  const byId = new Map(page.items.map((r) => [r.id, r]));
  const active = [];
  table.querySelectorAll("tbody tr[data-run]").forEach((tr) => {
    const run = byId.get(tr.dataset.run);
    if (!run) return;
    tr.dataset.status = run.status;
    setStatus(tr.querySelector(".status"), run.status);
    if (!TERMINAL.has(run.status)) active.push(tr);
    else tr.querySelector("progress").value = run.status === "completed" ? 100 : tr.querySelector("progress").value;
  });
  await Promise.all(active.slice(0, 20).map(async (tr) => {
    try {
      const r = await fetch(`/api/orchestrations/${tr.dataset.run}/status`, { credentials: "same-origin" });
      if (!r.ok) return;
      const s = await r.json();
      tr.querySelector("progress").value = s.progress.percent;
      tr.querySelector(".pct").textContent = `${s.progress.percent}%`;
    } catch (err) { /* the next refresh tries again */ }
  }));
}

// The list refreshes when one of its runs that may still change has new events (the server
// answers /runs/moved as soon as one has), at most every MIN_REFRESH_MS.
const MIN_REFRESH_MS = 250;

function followRuns(table) {
  let position = null; // of the runs in `watching`, as the server last said
  let watching = "";
  let refreshed = 0;
  const follow = async () => {
    const ids = [...table.querySelectorAll("tbody tr[data-run]")]
      .filter((tr) => !FINAL.has(tr.dataset.status)).map((tr) => tr.dataset.run);
    if (!ids.length) return; // every run shown has ended for good
    if (ids.join() !== watching) { watching = ids.join(); position = null; }
    const query = new URLSearchParams(ids.map((id) => ["run", id]));
    if (position !== null) query.set("after", String(position));
    let now;
    try {
      now = await moved(query);
    } catch (err) {
      window.setTimeout(follow, 1000);
      return;
    }
    if (now !== position) {
      position = now;
      const wait = refreshed + MIN_REFRESH_MS - Date.now();
      if (wait > 0) await new Promise((done) => window.setTimeout(done, wait));
      refreshed = Date.now();
      try {
        await refreshRuns(table);
      } catch (err) {
        console.warn("podium: the list could not be refreshed", err);
      }
    }
    follow();
  };
  follow();
}

document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("run");
  if (section) followRun(section);
  const table = document.getElementById("runs");
  if (table) followRuns(table);
});
