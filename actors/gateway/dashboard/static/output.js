// Live step output on the detail page: lines the running steps print, as they print them.
// Follows /ui/workflows/{id}/logs over SSE; keeps at most MAX_LINES lines in the page
// (older ones are dropped and counted) and stops when the server says the workflow ended.

export const MAX_LINES = 500;

/** Follow a workflow's live output into `slot` (the #live-output element); return a stop function. */
export function followOutput(workflowId, slot) {
  const pre = slot.querySelector("pre");
  const note = slot.querySelector("p");
  let hidden = 0;
  const source = new EventSource(`/ui/workflows/${encodeURIComponent(workflowId)}/logs`);
  const stop = () => {
    source.close();
    slot.dataset.following = "0";
  };
  const tell = (text) => {
    if (note) note.textContent = text;
  };
  source.addEventListener("ready", () => {
    slot.dataset.following = "1";
    tell("Following the running steps' output (newest last).");
  });
  source.addEventListener("end", () => {
    stop();
    tell("The workflow ended; the stored output of each step is kept with the result.");
  });
  source.onerror = () => {
    slot.dataset.following = "0";
  };
  source.onmessage = (message) => {
    const out = JSON.parse(message.data);
    const row = document.createElement("span");
    row.className = out.stream === "stderr" ? "line stderr" : "line";
    const skipped = out.dropped ? `[${out.dropped} lines dropped]\n` : "";
    row.textContent = `${skipped}${out.step} | ${out.line}\n`; // text, never HTML
    const pinned = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(row);
    while (pre.childElementCount > MAX_LINES) {
      pre.firstElementChild.remove();
      hidden += 1;
    }
    if (hidden) slot.dataset.hidden = String(hidden);
    if (pinned) pre.scrollTop = pre.scrollHeight;
  };
  return stop;
}
