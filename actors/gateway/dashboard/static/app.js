// troupe dashboard: times in the viewer's time zone, live updates pushed over SSE.
// Pages are rendered on the server; this module only re-fetches a page's fragment
// when an event says something changed (debounced), never on a timer.

import { followOutput } from "./output.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out", "rejected"]);
const long = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const short = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const shortSeconds = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

/** Show every element with data-ts (Unix seconds) in the viewer's time zone. */
export function localTimes(root = document) {
  for (const el of root.querySelectorAll("[data-ts]")) {
    const when = new Date(Number(el.dataset.ts) * 1000);
    const format = { s: shortSeconds, m: short }[el.dataset.short] || long;
    el.textContent = format.format(when);
    if (el.tagName === "TIME") el.title = when.toISOString();
  }
}

function liveStatus(text, on) {
  const el = document.getElementById("live-status");
  if (!el) return;
  el.textContent = text;
  el.parentElement.classList.toggle("on", on);
}

/** Run fn at most once per `wait` ms, and once more if asked while it runs. */
export function debounced(fn, wait) {
  let timer = null;
  let running = false;
  let again = false;
  const schedule = () => {
    if (!timer) timer = setTimeout(run, wait);
  };
  const run = async () => {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  return schedule;
}

async function swap(url, target) {
  const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (answer.redirected && new URL(answer.url).pathname === "/login") {
    location.assign("/login");
    return;
  }
  if (!answer.ok) return;
  // The live output's lines live only in the page: keep its element across swaps.
  const output = target.querySelector("#live-output");
  const open = [...target.querySelectorAll("details[open] summary")].map((s) => s.textContent);
  target.innerHTML = await answer.text(); // server-rendered, escaped HTML
  for (const summary of target.querySelectorAll("details summary")) {
    if (open.includes(summary.textContent)) summary.parentElement.open = true;
  }
  if (output) {
    const slot = target.querySelector("#live-output");
    if (slot) slot.replaceWith(output);
    else target.querySelector("#out-h")?.after(output);
  }
  localTimes(target);
}

function follow(url, onEvent) {
  const source = new EventSource(url);
  source.onopen = () => liveStatus("live: updates appear as they happen", true);
  source.onerror = () => liveStatus("reconnecting…", false);
  source.onmessage = (message) => onEvent(JSON.parse(message.data), source);
  return source;
}

function listPage() {
  const tbody = document.getElementById("rows");
  const first = document.body.dataset.first === "1";
  const refresh = debounced(() => swap("/ui/rows" + location.search, tbody), 300);
  follow("/ui/events", (event) => {
    if (first) {
      refresh();
      return;
    }
    // Older pages keep their rows; only a listed workflow's state changes in place.
    const row = tbody.querySelector(`tr[data-id="${CSS.escape(event.id)}"]`);
    if (row && event.kind === "transition") {
      row.dataset.state = event.state;
      const badge = row.querySelector(".state .badge");
      badge.className = `badge st-${event.state}`;
      badge.textContent = event.state.replace("_", " ");
    }
  });
}

function detailPage() {
  const id = document.body.dataset.id;
  const live = document.getElementById("live");
  let ended = false;
  let retries = 0;
  const refresh = debounced(async () => {
    await swap(`/ui/workflows/${encodeURIComponent(id)}/live`, live);
    // The tracker may store the final view a moment after the stream announced the end:
    // fetch again (bounded) until the page shows it.
    const shown = live.querySelector("#state")?.dataset.state;
    if (ended && !TERMINAL.has(shown) && retries++ < 40) refresh();
  }, 250);
  if (TERMINAL.has(document.body.dataset.state)) {
    liveStatus("finished", false);
    return;
  }
  const slot = document.getElementById("live-output");
  if (slot) followOutput(id, slot);
  follow(`/ui/workflows/${encodeURIComponent(id)}/events`, (event, source) => {
    refresh();
    if (event.kind === "transition" && TERMINAL.has(event.state)) {
      ended = true;
      source.close();
      document.body.dataset.state = event.state;
      liveStatus("finished", false);
    }
  });
}

localTimes();
const kind = document.body.dataset.page;
if (kind === "list") listPage();
if (kind === "detail") detailPage();
