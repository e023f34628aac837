// One app, mounted by the loader. Navigating away unmounts it; a failure shows the
// error card in its place, with a way to try again, and leaves the shell working.

import { h } from "../lib/dom.js";
import { errorCard } from "../loader/loader.js";
import { appIcon } from "./launcher.js";

export async function renderApp(view, shell, route) {
  const app = shell.apps.find((a) => a.app_id === route.app);
  if (!app || !app.frontend) {
    view.append(
      h("h1", null, "App not installed"),
      h("p", null, `${route.app} is not installed in ${shell.org.name}, or has no screen.`),
      h("a", { class: "button", href: shell.href("market", route.app) }, "See it in the marketplace"),
    );
    return null;
  }
  if (!shell.inPageMap(app)) {
    // Installed after this page was loaded: its modules need the new import map.
    shell.reloadTo(location.hash);
    return null;
  }
  const status = h("p", { class: "app-status muted", role: "status" }, `Loading ${app.name}…`);
  const container = h("div", { class: "app-container", dataset: { app: app.app_id } });
  view.append(
    h(
      "div",
      { class: "app-bar" },
      appIcon(app),
      h("h1", { class: "app-title" }, app.name),
      h("span", { class: "muted" }, app.version),
      shell.isOrgAdmin ? h("a", { class: "app-bar-link", href: shell.href("admin", app.app_id) }, "Manage") : null,
    ),
    status,
    container,
  );
  view.setAttribute("aria-busy", "true");
  let handle = null;
  let alive = true;

  async function mount(startedAt) {
    try {
      handle = await shell.loader.mount(app, container, { route: route.sub, startedAt });
      status.textContent = "";
      status.hidden = true;
      if (!alive) await handle.unmount();
    } catch (failure) {
      status.hidden = true;
      container.replaceChildren(
        errorCard(app, failure, {
          onRetry: () => {
            status.hidden = false;
            status.textContent = `Loading ${app.name}…`;
            mount(performance.now());
          },
        }),
      );
    } finally {
      view.removeAttribute("aria-busy");
    }
  }
  await mount(shell.navStartedAt);
  return {
    setRoute: (sub) => handle?.setRoute(sub),
    cleanup: async () => {
      alive = false;
      if (handle) await handle.unmount();
      handle = null;
    },
  };
}
