// Following a durable job (install, uninstall...) step by step, live, from its
// Server-Sent Events (GET /api/v1/jobs/{id}/events).

import { api } from "./api.js";
import { h } from "./dom.js";

const TERMINAL = { job_succeeded: "succeeded", job_rolled_back: "rolled_back", job_failed: "failed" };
const MARKS = { pending: "○", running: "◔", done: "✓", failed: "✗", compensating: "↺", compensated: "↺" };
const LABELS = {
  pending: "waiting",
  running: "in progress",
  done: "done",
  failed: "failed",
  compensating: "undoing",
  compensated: "undone",
};

/** Render the job's steps into `container` and keep them live; resolves with the end state. */
export async function followJob(jobId, container) {
  const job = await api(`/api/v1/jobs/${jobId}`);
  const rows = new Map();
  const list = h("ol", { class: "steps", "aria-label": `Steps of job ${jobId}` });
  const log = h("ul", { class: "job-log muted", "aria-live": "polite" });
  const summary = h("p", { class: "job-summary", role: "status" }, "Starting…");
  function setState(name, state) {
    const row = rows.get(name);
    if (!row) return;
    row.li.dataset.state = state;
    row.mark.textContent = MARKS[state] || "○";
    row.label.textContent = LABELS[state] || state;
  }
  for (const step of job.steps) {
    const mark = h("span", { class: "step-mark", "aria-hidden": "true" }, "○");
    const label = h("span", { class: "step-state" }, "waiting");
    const li = h("li", { class: "step", dataset: { step: step.name, state: "pending" } }, mark, h("span", { class: "step-title" }, step.title), label);
    rows.set(step.name, { li, mark, label });
    list.append(li);
    setState(step.name, step.state === "done" ? "done" : step.state);
  }
  container.replaceChildren(summary, list, log);

  return new Promise((resolve) => {
    const source = new EventSource(`/api/v1/jobs/${jobId}/events`);
    const on = (type, fn) =>
      source.addEventListener(type, (event) => {
        const data = JSON.parse(event.data);
        fn(data);
      });
    on("job_started", () => (summary.textContent = "In progress…"));
    on("step_started", (e) => {
      setState(e.step, "running");
      summary.textContent = e.message;
    });
    on("step_done", (e) => setState(e.step, "done"));
    on("step_failed", (e) => {
      setState(e.step, "failed");
      log.append(h("li", null, e.message));
    });
    on("step_compensating", (e) => setState(e.step, "compensating"));
    on("step_compensated", (e) => setState(e.step, "compensated"));
    on("progress", (e) => log.append(h("li", null, e.message)));
    for (const [type, state] of Object.entries(TERMINAL)) {
      on(type, (e) => {
        source.close();
        summary.textContent = e.message;
        summary.dataset.state = state;
        resolve({ state, message: e.message });
      });
    }
    source.onerror = () => {
      // The stream ends when the job ends; reconnects resume from the last event id.
      if (source.readyState === EventSource.CLOSED) resolve({ state: "unknown", message: "lost the job's events" });
    };
  });
}
