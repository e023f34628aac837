// The launcher: the organization's apps as tiles. Hovering or focusing a tile
// prefetches the app's entry module; the rest are prefetched when the browser is idle.

import { append, h, hue, initials } from "../lib/dom.js";

export function appIcon(app) {
  const icon = h("span", { class: "app-icon", "aria-hidden": "true" }, initials(app.name));
  icon.style.setProperty("--hue", String(hue(app.app_id)));
  return icon;
}

export function renderLauncher(view, shell) {
  const withUi = shell.apps.filter((a) => a.frontend);
  const services = shell.apps.filter((a) => !a.frontend);
  append(view, 
    h("div", { class: "view-head" }, h("h1", null, "Apps"), h("p", { class: "muted" }, shell.org.name)),
  );
  if (!withUi.length) {
    append(view, 
      h(
        "section",
        { class: "empty card" },
        h("p", null, "No apps with a screen are installed in this organization yet."),
        h("a", { class: "button primary", href: shell.href("market") }, "Browse the marketplace"),
      ),
    );
  } else {
    append(view, 
      h(
        "ul",
        { class: "tiles", "aria-label": "Installed apps" },
        withUi.map((app) =>
          h(
            "li",
            null,
            h(
              "a",
              {
                class: "tile",
                href: shell.href("apps", app.app_id),
                dataset: { app: app.app_id },
                onmouseenter: () => shell.loader.prefetch(app),
                onfocus: () => shell.loader.prefetch(app),
              },
              appIcon(app),
              h("span", { class: "tile-name" }, app.name),
              h("span", { class: "tile-meta" }, `${app.version} · ${app.isolation === "iframe" ? "sandboxed" : "in page"}`),
              app.error ? h("span", { class: "badge badge-error" }, "cannot load") : null,
              app.warnings?.length ? h("span", { class: "badge badge-warn" }, "warning") : null,
            ),
          ),
        ),
      ),
    );
    shell.loader.prefetchWhenIdle(withUi);
  }
  if (services.length) {
    append(view, 
      h(
        "section",
        { class: "services" },
        h("h2", null, "Services without a screen"),
        h("ul", { class: "plain" }, services.map((s) => h("li", null, `${s.name} ${s.version}`))),
      ),
    );
  }
  return null;
}
