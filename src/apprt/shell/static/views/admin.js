// Administration of installed apps: state and version (from the runtime), health (the
// backend's health route, and what browsers report about the frontend), logs, shared
// dependencies as negotiated, and uninstall.

import { ApiError, api, apiText, describeError } from "../lib/api.js";
import { append, formatMs, h } from "../lib/dom.js";
import { uninstall } from "../lib/install.js";
import { followJob } from "../lib/jobs.js";
import { appIcon } from "./launcher.js";

async function runtimeStates(org) {
  try {
    const instances = await api(`/api/v1/runtime/apps/${org}`);
    return new Map(instances.map((i) => [i.app_id, i]));
  } catch (error) {
    if (error instanceof ApiError && error.status === 503) return new Map();
    throw error;
  }
}

function frontendHealth(health) {
  if (!health) return "no report yet";
  const errors = Object.values(health.errors).reduce((a, b) => a + b, 0);
  const parts = [`${health.loads} loads`, `load ${formatMs(health.last_load_ms)}`, `mount ${formatMs(health.last_mount_ms)}`];
  if (errors) parts.push(`${errors} errors`);
  if (health.long_tasks) parts.push(`${health.long_tasks} long tasks`);
  if (health.leak_suspected) parts.push("leak suspected");
  return parts.join(" · ");
}

export async function renderAdmin(view, shell, route) {
  await shell.monitor.flush(); // this page's own measurements count too
  const [states, telemetry] = await Promise.all([
    runtimeStates(shell.org.slug),
    api(`/api/v1/telemetry/frontend/${shell.org.slug}`),
  ]);
  return route.app
    ? renderApp(view, shell, route.app, states.get(route.app), telemetry[route.app])
    : renderList(view, shell, states, telemetry);
}

function renderList(view, shell, states, telemetry) {
  append(view, h("div", { class: "view-head" }, h("h1", null, "Administration"), h("p", { class: "muted" }, `Apps installed in ${shell.org.name}`)));
  if (!shell.apps.length) {
    append(view, h("p", { class: "card empty" }, "Nothing is installed yet."));
    return null;
  }
  append(view, 
    h(
      "table",
      { class: "table" },
      h("caption", { class: "sr-only" }, "Installed apps"),
      h("thead", null, h("tr", null, ["App", "Version", "State", "Frontend", ""].map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        null,
        shell.apps.map((app) => {
          const instance = states.get(app.app_id);
          const health = telemetry[app.app_id];
          return h(
            "tr",
            { dataset: { app: app.app_id } },
            h("td", null, h("span", { class: "cell-app" }, appIcon(app), app.name)),
            h("td", null, app.version),
            h("td", null, h("span", { class: `state state-${instance?.state ?? "none"}` }, instance?.state ?? (app.gateway ? "unknown" : "frontend only"))),
            h(
              "td",
              null,
              app.error ? h("span", { class: "badge badge-error" }, "cannot load") : null,
              health?.leak_suspected ? h("span", { class: "badge badge-warn" }, "leak suspected") : null,
              " ",
              app.frontend ? frontendHealth(health) : "no screen",
            ),
            h("td", null, h("a", { href: shell.href("admin", app.app_id) }, "Manage")),
          );
        }),
      ),
    ),
  );
  return null;
}

function definitionList(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]),
  );
}

function renderApp(view, shell, appId, instance, health) {
  const app = shell.apps.find((a) => a.app_id === appId);
  if (!app) {
    append(view, h("h1", null, "Not installed"), h("p", null, `${appId} is not installed in ${shell.org.name}.`));
    return null;
  }
  const controller = new AbortController();
  const logs = h("pre", { class: "logs", tabindex: "0", "aria-label": "Logs" }, "");
  const healthOut = h("span", { class: "health-result", role: "status" });
  const progress = h("div", { class: "progress" });

  async function loadLogs() {
    try {
      logs.textContent = (await apiText(`/api/v1/runtime/apps/${shell.org.slug}/${encodeURIComponent(appId)}/logs?tail=200`, { signal: controller.signal })) || "(no output yet)";
      logs.scrollTop = logs.scrollHeight;
    } catch (error) {
      if (error.name !== "AbortError") logs.textContent = describeError(error);
    }
  }

  async function checkHealth() {
    healthOut.textContent = "checking…";
    try {
      const response = await fetch(`${app.gateway}${app.health.replace(/^\//, "")}`, { credentials: "same-origin", signal: controller.signal });
      healthOut.textContent = response.ok ? `healthy (${response.status})` : `unhealthy (${response.status})`;
      healthOut.dataset.ok = String(response.ok);
    } catch (error) {
      healthOut.textContent = `unreachable: ${error.message}`;
      healthOut.dataset.ok = "false";
    }
  }

  async function confirmUninstall() {
    const dialog = h(
      "dialog",
      { "aria-labelledby": "uninstall-title" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "uninstall-title" }, `Uninstall ${app.name} from ${shell.org.name}?`),
        h("p", null, "Its instance stops and it disappears from everyone's launcher."),
        h("p", { class: "actions" }, h("button", { value: "cancel" }, "Cancel"), " ", h("button", { value: "uninstall", class: "danger" }, "Uninstall")),
      ),
    );
    dialog.addEventListener("close", async () => {
      dialog.remove();
      if (dialog.returnValue !== "uninstall") return;
      try {
        const jobId = await uninstall(shell.org.slug, appId);
        const outcome = await followJob(jobId, progress);
        if (outcome.state === "succeeded") {
          append(progress, h("p", null, h("a", { href: shell.href("admin"), onclick: (e) => { e.preventDefault(); shell.reloadTo(shell.href("admin")); } }, "Back to the installed apps")));
        }
      } catch (error) {
        progress.replaceChildren(h("p", { class: "form-error", role: "alert" }, describeError(error)));
      }
    });
    append(view, dialog);
    dialog.showModal();
  }

  const shared = app.shared.length
    ? h(
        "table",
        { class: "table" },
        h("caption", null, "Shared libraries"),
        h("thead", null, h("tr", null, ["Package", "Range", "Resolved", "How"].map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          null,
          app.shared.map((r) =>
            h(
              "tr",
              null,
              h("td", null, r.package),
              h("td", null, h("code", null, r.range)),
              h("td", null, r.version ?? "–"),
              h("td", null, { shared: `shared (${r.provider}'s copy)`, own: "its own copy", forced: "shared singleton, out of range", refused: "refused" }[r.mode], r.reason ? h("p", { class: "muted small" }, r.reason) : null),
            ),
          ),
        ),
      )
    : null;

  append(view, 
    h("p", { class: "crumbs" }, h("a", { href: shell.href("admin") }, "Administration"), " / ", app.name),
    h("div", { class: "view-head detail-head" }, appIcon(app), h("div", null, h("h1", null, app.name), h("p", { class: "muted" }, app.app_id))),
    app.error ? h("section", { class: "error-card", role: "alert" }, h("h2", null, app.error.title), h("ul", null, app.error.problems.map((p) => h("li", null, p.reason)))) : null,
    h("section", { class: "card" },
      h("h2", null, "State"),
      definitionList([
        ["Version", app.version],
        ["Runtime state", instance?.state ?? (app.gateway ? "not deployed" : "frontend only")],
        ["Restarts", instance ? String(instance.restart_count) : null],
        ["Started", instance?.started_at ? new Date(instance.started_at).toLocaleString() : null],
        ["Last exit", instance?.last_exit ? JSON.stringify(instance.last_exit) : null],
        ["Screen", app.frontend ? (app.isolation === "iframe" ? "sandboxed iframe" : "Shadow DOM in the page") : "none"],
        ["Package", app.digest ? `sha256:${app.digest.slice(0, 16)}…` : null],
      ]),
    ),
    h("section", { class: "card" },
      h("h2", null, "Health"),
      app.gateway ? h("p", null, h("button", { type: "button", onclick: checkHealth }, "Check the backend"), " ", healthOut) : null,
      app.frontend ? h("p", null, `Frontend: ${frontendHealth(health)}`) : null,
      health?.last_error ? h("p", { class: "muted" }, `Last error: ${health.last_error}`) : null,
      health?.leak_suspected ? h("p", { class: "badge badge-warn" }, `Leak suspected: ${health.leak?.message ?? ""}`) : null,
      shared,
    ),
    app.gateway && shell.isOrgAdmin
      ? h("section", { class: "card" }, h("h2", null, "Logs"), h("p", null, h("button", { type: "button", onclick: loadLogs }, "Refresh")), logs)
      : null,
    shell.isOrgAdmin
      ? h("section", { class: "card" }, h("h2", null, "Uninstall"), h("p", null, h("button", { type: "button", class: "danger", onclick: confirmUninstall }, `Uninstall ${app.name}`)), progress)
      : null,
  );
  if (app.gateway && shell.isOrgAdmin) loadLogs();
  return { cleanup: () => controller.abort() };
}
