// An app, mounted by the loader (and optionally a second one beside it, sharing the
// page and its event bus). Navigating away unmounts them; a failure shows the error
// card in that app's place, with a way to try again, and leaves the rest working.

import { append, h } from "../lib/dom.js";
import { errorCard } from "../loader/loader.js";
import { appIcon } from "./launcher.js";

/** Mount `app` into a panel; resolves with { panel, handle() , unmount() }. */
function panel(shell, app, route, startedAt, extra = null) {
  const status = h("p", { class: "app-status muted", role: "status" }, `Loading ${app.name}…`);
  const container = h("div", { class: "app-container", dataset: { app: app.app_id } });
  const element = h(
    "section",
    { class: "app-panel", "aria-label": app.name, "aria-busy": "true" },
    h(
      "div",
      { class: "app-bar" },
      appIcon(app),
      h("h1", { class: "app-title" }, app.name),
      h("span", { class: "muted" }, app.version),
      extra,
      shell.isOrgAdmin ? h("a", { class: "app-bar-link", href: shell.href("admin", app.app_id) }, "Manage") : null,
    ),
    status,
    container,
  );
  let handle = null;
  let alive = true;
  async function mount(at) {
    try {
      handle = await shell.loader.mount(app, container, { route, startedAt: at });
      status.hidden = true;
      if (!alive) await handle.unmount();
    } catch (failure) {
      status.hidden = true;
      container.replaceChildren(
        errorCard(app, failure, {
          onRetry: () => {
            status.hidden = false;
            mount(performance.now());
          },
        }),
      );
    } finally {
      element.removeAttribute("aria-busy");
    }
  }
  return {
    element,
    mounted: mount(startedAt),
    setRoute: (sub) => handle?.setRoute(sub),
    unmount: async () => {
      alive = false;
      if (handle) await handle.unmount();
      handle = null;
    },
  };
}

export async function renderApp(view, shell, route) {
  const app = shell.apps.find((a) => a.app_id === route.app);
  if (!app || !app.frontend) {
    append(view, 
      h("h1", null, "App not installed"),
      h("p", null, `${route.app} is not installed in ${shell.org.name}, or has no screen.`),
      h("a", { class: "button", href: shell.href("market", route.app) }, "See it in the marketplace"),
    );
    return null;
  }
  const other = route.beside ? shell.apps.find((a) => a.app_id === route.beside && a.frontend) : null;
  if (!shell.inPageMap(app) || (other && !shell.inPageMap(other))) {
    // Installed after this page was loaded: its modules need the new import map.
    shell.reloadTo(location.hash);
    return null;
  }
  const base = shell.href("apps", app.app_id) + (route.sub === "/" ? "" : route.sub);
  const choices = shell.apps.filter((a) => a.frontend && a.app_id !== app.app_id);
  const besideSelect = choices.length
    ? h(
        "label",
        { class: "beside" },
        h("span", null, "Open beside"),
        h(
          "select",
          { onchange: (e) => shell.go(e.target.value ? `${base}?beside=${e.target.value}` : base) },
          h("option", { value: "" }, "—"),
          choices.map((a) => h("option", { value: a.app_id, selected: a.app_id === other?.app_id }, a.name)),
        ),
      )
    : null;
  const panels = [panel(shell, app, route.sub, shell.navStartedAt, besideSelect)];
  if (other) {
    const close = h("button", { type: "button", class: "quiet", "aria-label": `Close ${other.name}`, onclick: () => shell.go(base) }, "×");
    panels.push(panel(shell, other, "/", shell.navStartedAt, close));
  }
  append(view, h("div", { class: other ? "app-split" : "app-single" }, panels.map((p) => p.element)));
  await Promise.all(panels.map((p) => p.mounted));
  return {
    setRoute: (sub) => panels[0].setRoute(sub),
    cleanup: () => Promise.all(panels.map((p) => p.unmount())),
  };
}
