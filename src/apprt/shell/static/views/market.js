// The marketplace: search the registry, read an app's details (versions, permissions),
// consent and install it, following the install job step by step.

import { api, describeError } from "../lib/api.js";
import { append, clear, h } from "../lib/dom.js";
import { consent, explainPermission, install } from "../lib/install.js";
import { followJob } from "../lib/jobs.js";
import { appIcon } from "./launcher.js";

export async function renderMarket(view, shell, route) {
  return route.app ? renderDetails(view, shell, route.app) : renderSearch(view, shell);
}

function renderSearch(view, shell) {
  const results = h("ul", { class: "results", "aria-label": "Apps found", "aria-live": "polite" });
  const input = h("input", { type: "search", name: "q", placeholder: "Search apps", "aria-label": "Search apps" });
  async function search() {
    results.setAttribute("aria-busy", "true");
    try {
      const found = await api(`/api/v1/registry/search?q=${encodeURIComponent(input.value.trim())}`);
      results.replaceChildren(
        ...(found.results.length
          ? found.results.map((app) => {
              const installed = shell.apps.find((a) => a.app_id === app.app_id);
              return h(
                "li",
                { class: "result card", dataset: { app: app.app_id } },
                appIcon(app),
                h(
                  "div",
                  null,
                  h("h2", null, h("a", { href: shell.href("market", app.app_id) }, app.name)),
                  h("p", null, app.description),
                  h(
                    "p",
                    { class: "muted small" },
                    `${app.publisher} · ${app.latest_version ?? "no version"}`,
                    app.tags.length ? ` · ${app.tags.join(", ")}` : "",
                  ),
                ),
                installed ? h("span", { class: "badge" }, `installed ${installed.version}`) : null,
              );
            })
          : [h("li", { class: "muted" }, "No app matches.")]),
      );
    } catch (error) {
      results.replaceChildren(h("li", { class: "form-error", role: "alert" }, describeError(error)));
    } finally {
      results.removeAttribute("aria-busy");
    }
  }
  append(view, 
    h("div", { class: "view-head" }, h("h1", null, "Marketplace"), h("p", { class: "muted" }, "Apps published in the registry")),
    h(
      "form",
      {
        role: "search",
        class: "search",
        onsubmit: (e) => {
          e.preventDefault();
          search();
        },
      },
      input,
      h("button", { type: "submit" }, "Search"),
    ),
    results,
  );
  return search().then(() => null);
}

function permissionList(permissions) {
  if (!permissions.length) return h("p", { class: "muted" }, "This version asks for no permission.");
  return h(
    "ul",
    { class: "permissions" },
    permissions.map((p) => {
      const x = explainPermission(p);
      return h(
        "li",
        { dataset: { permission: x.permission } },
        h("code", null, x.permission),
        x.sensitive ? h("span", { class: "badge badge-warn" }, "sensitive") : null,
        x.description ? h("span", { class: "muted" }, ` — ${x.description}`) : null,
        x.reason ? h("p", { class: "reason" }, `Why: ${x.reason}`) : null,
      );
    }),
  );
}

async function renderDetails(view, shell, appId) {
  let app;
  try {
    app = await api(`/api/v1/registry/apps/${encodeURIComponent(appId)}`);
  } catch (error) {
    append(view, h("h1", null, "Not in the registry"), h("p", { class: "form-error", role: "alert" }, describeError(error)));
    return null;
  }
  const installed = shell.apps.find((a) => a.app_id === appId);
  const versions = app.versions.filter((v) => ["published", "deprecated"].includes(v.state));
  let selected = versions[0] || app.versions[0];
  const details = h("div", { class: "version-details" });
  const progress = h("div", { class: "progress", "aria-live": "polite" });
  const installButton = h("button", { type: "button", class: "primary", onclick: () => askConsent() }, "Install");

  function showVersion() {
    clear(details, 
      h("h2", null, `Version ${selected.version}`),
      selected.warnings.length ? h("ul", { class: "warnings" }, selected.warnings.map((w) => h("li", null, w))) : null,
      h("h3", null, "Permissions"),
      permissionList(selected.permissions),
      Object.keys(selected.dependencies).length
        ? h("p", { class: "muted" }, `Needs: ${Object.entries(selected.dependencies).map(([k, r]) => `${k} ${r}`).join(", ")}`)
        : null,
    );
    const same = installed && installed.version === selected.version;
    installButton.disabled = Boolean(same) || !shell.isOrgAdmin;
    installButton.textContent = same ? "Installed" : installed ? `Install ${selected.version}` : "Install";
    installButton.title = shell.isOrgAdmin ? "" : "Only an organization admin installs apps";
  }

  async function askConsent() {
    let asked;
    try {
      asked = await consent(shell.org.slug, appId, selected.version);
    } catch (error) {
      progress.replaceChildren(h("p", { class: "form-error", role: "alert" }, describeError(error)));
      return;
    }
    const asks = asked.permissions.filter((item) => item.permissions.length);
    const agree = h("input", { type: "checkbox", name: "agree", required: true });
    const dialog = h(
      "dialog",
      { class: "consent", "aria-labelledby": "consent-title" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "consent-title" }, `Install ${app.name} ${asked.version} in ${shell.org.name}?`),
        asked.plan.length > 1
          ? h("p", null, "This also installs what it depends on: ", asked.plan.filter((p) => !p.requested).map((p) => `${p.app_id} ${p.version}`).join(", "), ".")
          : null,
        asked.notices?.length ? h("ul", { class: "warnings" }, asked.notices.map((n) => h("li", null, n.message))) : null,
        asks.length
          ? asks.map((item) => [
              h("h3", null, item.requested ? `${app.name} asks for` : `${item.app_id} ${item.version} asks for`),
              permissionList(item.permissions),
            ])
          : h("p", null, "No permission is asked for."),
        asks.length ? h("label", { class: "check" }, agree, ` I grant these permissions in ${shell.org.name}`) : null,
        h(
          "p",
          { class: "actions" },
          h("button", { value: "cancel", formnovalidate: true }, "Cancel"),
          " ",
          h("button", { value: "install", class: "primary" }, "Install"),
        ),
      ),
    );
    dialog.addEventListener("close", async () => {
      dialog.remove();
      if (dialog.returnValue !== "install") return;
      const consented = Object.fromEntries(asked.permissions.map((i) => [i.app_id, i.permissions.map((p) => p.permission)]));
      await runInstall(asked.version, consented);
    });
    append(view, dialog);
    dialog.showModal();
  }

  async function runInstall(version, consented) {
    installButton.disabled = true;
    progress.replaceChildren(h("p", { role: "status" }, "Submitting…"));
    let jobId;
    try {
      jobId = await install(shell.org.slug, appId, version, consented);
    } catch (error) {
      progress.replaceChildren(h("p", { class: "form-error", role: "alert" }, describeError(error)));
      installButton.disabled = false;
      return;
    }
    const outcome = await followJob(jobId, progress);
    if (outcome.state === "succeeded") {
      await shell.refreshApps();
      const now = shell.apps.find((a) => a.app_id === appId);
      const target = shell.href("apps", appId);
      append(progress, 
        h(
          "p",
          { class: "actions" },
          now?.frontend
            ? h("a", { class: "button primary", href: target, onclick: (e) => { e.preventDefault(); shell.reloadTo(target); } }, `Open ${app.name}`)
            : h("span", null, `${app.name} is installed.`),
        ),
      );
      installButton.textContent = "Installed";
    } else {
      installButton.disabled = false;
    }
  }

  const versionSelect = h(
    "select",
    {
      id: "version",
      onchange: (e) => {
        selected = app.versions.find((v) => v.version === e.target.value);
        showVersion();
      },
    },
    app.versions.map((v) => h("option", { value: v.version, selected: v === selected }, `${v.version} (${v.state})`)),
  );
  append(view, 
    h("p", { class: "crumbs" }, h("a", { href: shell.href("market") }, "Marketplace"), " / ", app.name),
    h(
      "div",
      { class: "view-head detail-head" },
      appIcon(app),
      h("div", null, h("h1", null, app.name), h("p", { class: "muted" }, `${app.app_id} · by ${app.publisher}`)),
    ),
    h("p", null, app.description),
    app.tags.length ? h("p", { class: "tags" }, app.tags.map((t) => h("span", { class: "tag" }, t))) : null,
    installed ? h("p", { class: "badge" }, `Installed: ${installed.version}`) : null,
    h("div", { class: "install-row" }, h("label", { for: "version" }, "Version "), versionSelect, " ", installButton),
    details,
    progress,
  );
  showVersion();
  return null;
}
