// The apprt shell: signs the user in, lays out the page, routes between views, and
// owns the loader that mounts apps. Plain ES modules, no framework, no build step.
//
// Routes (in the URL's fragment, so the server only ever serves "/"):
//   #/login                              sign in
//   #/o/<org>                            launcher of the organization's apps
//   #/o/<org>/apps/<app id>[/<path>][?beside=<app id>]
//                                        an app (its own sub-path after the id), and
//                                        optionally a second one beside it
//   #/o/<org>/market[/<app id>]          marketplace: search, details, install
//   #/o/<org>/admin[/<app id>]           installed apps: state, health, logs, uninstall
//   #/reviews                            the registry's review queue (platform admins)

import { api, describeError, onUnauthenticated } from "./lib/api.js";
import { clear, h } from "./lib/dom.js";
import { EventBus } from "./loader/bus.js";
import { Loader } from "./loader/loader.js";
import { Monitor } from "./loader/monitor.js";
import { renderAdmin } from "./views/admin.js";
import { renderApp } from "./views/appview.js";
import { renderLauncher } from "./views/launcher.js";
import { renderLogin } from "./views/login.js";
import { renderMarket } from "./views/market.js";
import { renderReviews } from "./views/reviews.js";

const boot = window.apprtBoot || { org: null, map: { imports: {}, scopes: {}, integrity: {} }, nonce: "" };

export function parseRoute(hash) {
  const [path, query = ""] = hash.replace(/^#\/?/, "").split("?");
  const params = new URLSearchParams(query);
  const parts = path
    .split("/")
    .filter(Boolean)
    .map((p) => decodeURIComponent(p));
  if (parts[0] === "login") return { name: "login" };
  if (parts[0] === "reviews") return { name: "reviews" };
  if (parts[0] === "o" && parts[1]) {
    const [, org, section, id, ...rest] = parts;
    if (!section) return { name: "launcher", org };
    if (section === "apps" && id) {
      return { name: "app", org, app: id, sub: `/${rest.join("/")}`, beside: params.get("beside") };
    }
    if (section === "market") return { name: "market", org, app: id || null };
    if (section === "admin") return { name: "admin", org, app: id || null };
  }
  return { name: "home" };
}

class Shell {
  constructor(root) {
    this.root = root;
    this.me = null;
    this.orgs = [];
    this.org = null;
    this.orgRole = null;
    this.apps = [];
    this.current = null; // { route, cleanup, setRoute }
    this.navStartedAt = performance.now();
    this.rendering = Promise.resolve();
  }

  get isPlatformAdmin() {
    return this.me?.role === "platform_admin";
  }

  get isOrgAdmin() {
    return this.isPlatformAdmin || this.orgRole === "org_admin";
  }

  href(...parts) {
    return `#/o/${this.org.slug}${parts.length ? "/" + parts.map(encodeURIComponent).join("/") : ""}`;
  }

  go(hash) {
    if (location.hash === hash) this.route();
    else location.hash = hash;
  }

  /** Reload the page on another route: needed when the import map must change. */
  reloadTo(hash) {
    location.hash = hash;
    location.reload();
  }

  /** True when `app` can load with the import map this page was started with. */
  inPageMap(app) {
    if (app.isolation !== "shadow" || !app.entry) return true;
    return Boolean(boot.map.integrity?.[app.entry]);
  }

  async refreshApps() {
    const data = await api(`/api/v1/orgs/${this.org.slug}/frontends`);
    this.apps = data.apps;
    this.monitor?.register(this.apps);
    return this.apps;
  }

  toast({ title, body = "", level = "info", app = "" }) {
    const item = h(
      "div",
      { class: `toast toast-${level}`, role: level === "error" ? "alert" : "status" },
      h("strong", null, app ? `${app}: ${title}` : title),
      body ? h("p", null, body) : null,
      h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", onclick: () => item.remove() }, "×"),
    );
    this.toasts.append(item);
    setTimeout(() => item.remove(), level === "error" ? 12000 : 6000);
  }

  async start() {
    try {
      this.me = await api("/api/v1/me");
    } catch (error) {
      if (error.status === 401) {
        // Not signed in: show the login here, no reload (a reload would race whatever
        // the user or a script does with the page meanwhile).
        if (parseRoute(location.hash).name !== "login") history.replaceState(null, "", "#/login");
        this.layout(false);
        renderLogin(this.view);
        return;
      }
      clear(this.root, h("p", { class: "error-card", role: "alert" }, describeError(error)));
      return;
    }
    // A session that ends while the page is open: start again from the login page.
    onUnauthenticated(() => {
      if (parseRoute(location.hash).name !== "login") this.reloadTo("#/login");
    });
    this.orgs = await api("/api/v1/orgs");
    this.org = this.orgs.find((o) => o.slug === boot.org) || null;
    if (this.org) {
      try {
        localStorage.setItem("apprt.org", this.org.slug);
      } catch {
        // storage disabled: the URL still carries the organization
      }
      const [members] = await Promise.all([
        api(`/api/v1/orgs/${this.org.slug}/members`).catch(() => []),
        this.refreshApps(),
      ]);
      this.orgRole = members.find((m) => m.user === this.me.name)?.role ?? null;
    }
    this.bus = new EventBus({ onError: (app, error) => this.monitor.error(app, "runtime", error?.message) });
    this.monitor = new Monitor(this.org?.slug);
    this.monitor.register(this.apps);
    this.monitor.attach();
    this.loader = new Loader({
      org: this.org,
      user: this.me,
      bus: this.bus,
      monitor: this.monitor,
      nonce: boot.nonce,
      navigate: (app, to) => this.appNavigate(app, to),
      notify: (n) => this.toast(n),
    });
    this.layout(true);
    if (this.org) {
      // Installs, updates and uninstalls elsewhere: keep the descriptors fresh, so an
      // app whose URLs changed is opened with a new import map (see inPageMap).
      const refresh = () => this.refreshApps().catch(() => {});
      setInterval(refresh, 60_000);
      addEventListener("visibilitychange", () => {
        if (document.visibilityState === "visible") refresh();
      });
    }
    addEventListener("hashchange", () => {
      this.navStartedAt = performance.now();
      this.route();
    });
    this.route();
  }

  appNavigate(app, to) {
    const subPath = (path) => {
      if (typeof path !== "string" || !/^\/[^?#]*$/.test(path)) {
        throw new TypeError("ctx.navigate: a path starts with '/' and has no '?' or '#'");
      }
      return path === "/" ? "" : path;
    };
    if (typeof to === "string") {
      this.go(`${this.href("apps", app.app_id)}${subPath(to)}`);
    } else if (to && typeof to.app === "string") {
      this.go(`${this.href("apps", to.app)}${to.path === undefined ? "" : subPath(to.path)}`);
    } else {
      throw new TypeError("ctx.navigate(to): a path, or { app, path }");
    }
  }

  layout(signedIn) {
    this.view = h("main", { id: "view", tabindex: "-1" });
    this.toasts = h("div", { class: "toasts", "aria-live": "polite" });
    if (!signedIn) {
      clear(this.root, this.view, this.toasts);
      return;
    }
    const nav = h("nav", { "aria-label": "Main", class: "nav" });
    if (this.org) {
      nav.append(
        h("a", { href: this.href(), dataset: { section: "launcher" } }, "Apps"),
        h("a", { href: this.href("market"), dataset: { section: "market" } }, "Marketplace"),
        h("a", { href: this.href("admin"), dataset: { section: "admin" } }, "Administration"),
      );
    }
    if (this.isPlatformAdmin) nav.append(h("a", { href: "#/reviews", dataset: { section: "reviews" } }, "Reviews"));
    const switcher = h(
      "select",
      {
        id: "org-switcher",
        onchange: (e) => this.reloadTo(`#/o/${e.target.value}`),
      },
      this.orgs.map((o) => h("option", { value: o.slug, selected: o.slug === this.org?.slug }, o.name)),
    );
    const header = h(
      "header",
      { class: "topbar" },
      h("a", { class: "brand", href: this.org ? this.href() : "#/" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "◆"), " apprt"),
      nav,
      h(
        "div",
        { class: "topbar-end" },
        this.orgs.length ? h("label", { class: "org-switcher" }, h("span", null, "Organization"), switcher) : null,
        h("span", { class: "user", title: this.me.role }, this.me.name),
        h("button", { type: "button", class: "quiet", onclick: () => this.signOut() }, "Sign out"),
      ),
    );
    this.nav = nav;
    clear(this.root, h("a", { class: "skip", href: "#view", onclick: (e) => { e.preventDefault(); this.view.focus(); } }, "Skip to content"), header, this.view, this.toasts);
  }

  async signOut() {
    try {
      await api("/api/v1/logout", { method: "POST" });
    } finally {
      this.reloadTo("#/login");
    }
  }

  route() {
    this.rendering = this.rendering.then(() => this.render(parseRoute(location.hash))).catch((error) => {
      clear(this.view, h("section", { class: "error-card", role: "alert" }, h("h1", null, "Something went wrong"), h("p", null, describeError(error))));
    });
    return this.rendering;
  }

  async render(route) {
    if (route.org && route.org !== this.org?.slug) {
      if (this.orgs.some((o) => o.slug === route.org)) {
        this.reloadTo(location.hash);
        return;
      }
      route = { name: "missing-org", org: route.org };
    }
    if (route.name === "home" || route.name === "login") {
      if (this.org) location.replace(this.href());
      else if (this.isPlatformAdmin) location.replace("#/reviews");
      else clear(this.view, h("h1", { tabindex: "-1" }, "No organization"), h("p", null, "You do not belong to an organization yet. Ask an administrator to add you."));
      return;
    }
    // Same app, another sub-path: tell the app, keep it mounted.
    const previousRoute = this.current?.route;
    if (
      route.name === "app" &&
      previousRoute?.name === "app" &&
      previousRoute.app === route.app &&
      previousRoute.beside === route.beside &&
      this.current.setRoute
    ) {
      this.current.route = route;
      this.current.setRoute(route.sub);
      return;
    }
    const previous = this.current;
    this.current = null;
    if (previous?.cleanup) await previous.cleanup();
    for (const link of this.nav?.querySelectorAll("a") ?? []) {
      const section = route.name === "app" ? "launcher" : route.name;
      if (link.dataset.section === section) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    clear(this.view);
    let outcome = null;
    switch (route.name) {
      case "launcher":
        outcome = renderLauncher(this.view, this);
        break;
      case "app":
        outcome = await renderApp(this.view, this, route);
        break;
      case "market":
        outcome = await renderMarket(this.view, this, route);
        break;
      case "admin":
        outcome = await renderAdmin(this.view, this, route);
        break;
      case "reviews":
        outcome = await renderReviews(this.view, this);
        break;
      default:
        clear(this.view, h("h1", { tabindex: "-1" }, "Not found"), h("p", null, `No organization ${route.org} that you belong to.`));
    }
    this.current = { route, cleanup: outcome?.cleanup, setRoute: outcome?.setRoute };
    const heading = this.view.querySelector("h1");
    if (heading && route.name !== "app") {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  }
}

const shell = new Shell(document.getElementById("shell"));
window.apprtShell = shell; // for debugging and the browser tests
shell.start();
