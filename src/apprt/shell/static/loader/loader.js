// The micro-frontend loader: lazy loading, prefetching, isolation, lifecycle, and
// failure containment. See docs/frontend.md for the host contract.
//
// A frontend is an ES module exporting mount(el, ctx) and unmount(el). It is imported
// only when the user navigates to it (prefetched with <link rel=modulepreload> on hover
// and when the browser is idle), by its content-addressed URL; the page's import map
// gives its SRI (a tampered file is refused by the browser) and resolves its shared
// packages as negotiated. Whatever goes wrong (a 404, an integrity failure, a throw in
// the module or in mount, a timeout) ends in an error card in that app's place, never
// in the shell or another app.

import { h } from "../lib/dom.js";
import { FrameFailure, FrameHost } from "./bridge.js";
import { hostServices, makeCtx } from "./ctx.js";

export const TIMEOUTS = Object.freeze({ load: 15000, mount: 10000, unmount: 3000 });

export class LoadFailure extends Error {
  constructor(kind, message, { phase = "load", url = null, problems = [] } = {}) {
    super(message);
    this.name = "LoadFailure";
    this.kind = kind; // load | integrity | not_found | mount | timeout | dependency
    this.phase = phase;
    this.url = url;
    this.problems = problems;
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new LoadFailure("timeout", `${what} took longer than ${ms / 1000} s`, { phase: what })), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

let baseSheet = null;
/** Styles of every shadow root: nothing inherited from the page crosses the boundary. */
function hostSheet() {
  if (!baseSheet) {
    baseSheet = new CSSStyleSheet();
    baseSheet.replaceSync(
      ":host { all: initial; display: block; contain: content; color: #1b1f24;" +
        " font: 16px/1.5 system-ui, -apple-system, 'Segoe UI', sans-serif; }",
    );
  }
  return baseSheet;
}

async function digestMatches(bytes, sri) {
  const [alg, expected] = [sri.slice(0, sri.indexOf("-")), sri.slice(sri.indexOf("-") + 1)];
  const name = { sha256: "SHA-256", sha384: "SHA-384", sha512: "SHA-512" }[alg];
  if (!name || !crypto.subtle) return true;
  const digest = new Uint8Array(await crypto.subtle.digest(name, bytes));
  let binary = "";
  for (const byte of digest) binary += String.fromCharCode(byte);
  return btoa(binary) === expected;
}

/** After a failed import: which of the app's modules is missing or altered? */
export async function diagnose(app, error) {
  // A module its code imports but its package lacks: the browser saw the 404.
  const base = app.entry ? new URL(app.entry.slice(0, app.entry.indexOf("/", "/assets/sha256/".length) + 1), location.href).href : null;
  for (const entry of performance.getEntriesByType("resource")) {
    if (base && entry.name.startsWith(base) && entry.responseStatus === 404) {
      return new LoadFailure("not_found", `a file of the app is missing: ${new URL(entry.name).pathname} (404)`, { url: entry.name });
    }
  }
  for (const [url, sri] of Object.entries(app.modules || {})) {
    let response;
    try {
      response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
    } catch {
      return new LoadFailure("load", `${url} cannot be fetched (network error)`, { url });
    }
    if (response.status === 404) {
      return new LoadFailure("not_found", `a file of the app is missing: ${new URL(url, location.href).pathname} (404)`, { url });
    }
    if (!response.ok) {
      return new LoadFailure("load", `${url} answered ${response.status}`, { url });
    }
    if (!(await digestMatches(await response.arrayBuffer(), sri))) {
      return new LoadFailure(
        "integrity",
        `${new URL(url, location.href).pathname} does not match the app's signed package (integrity check failed); the browser refused to run it`,
        { url },
      );
    }
  }
  return new LoadFailure("load", `the app's code failed while loading: ${error?.message || error}`);
}

export class Loader {
  constructor({ org, user, bus, monitor, navigate, notify, nonce, timeouts = TIMEOUTS }) {
    this.org = org;
    this.user = user;
    this.bus = bus;
    this.monitor = monitor;
    this.navigate = navigate;
    this.notify = notify;
    this.nonce = nonce;
    this.timeouts = timeouts;
    this.prefetched = new Set();
  }

  /** Fetch (not run) an app's entry ahead of navigation: hover, focus, idle time. */
  prefetch(app) {
    if (!app.entry || app.isolation !== "shadow" || app.error || this.prefetched.has(app.entry)) return;
    this.prefetched.add(app.entry);
    const link = h("link", { rel: "modulepreload", href: app.entry });
    if (app.integrity) link.integrity = app.integrity;
    link.nonce = this.nonce;
    document.head.append(link);
  }

  prefetchWhenIdle(apps) {
    const run = () => apps.slice(0, 8).forEach((app) => this.prefetch(app));
    if ("requestIdleCallback" in window) requestIdleCallback(run, { timeout: 4000 });
    else setTimeout(run, 1000);
  }

  services(app, signal) {
    return hostServices({
      app,
      org: this.org,
      user: this.user,
      bus: this.bus,
      navigate: this.navigate,
      notify: this.notify,
      signal,
    });
  }

  /**
   * Load and mount `app` into `container`. Resolves with a handle
   * ({ setRoute(route), unmount() }) or rejects with a LoadFailure; either way the
   * failure was recorded and the container holds nothing of the app. The window gets
   * an "apprt:mounted" ({app, ms}) or "apprt:failed" ({app, kind}) event.
   */
  async mount(app, container, { route = "/", startedAt = performance.now() } = {}) {
    try {
      const handle = await this.mountChecked(app, container, route, startedAt);
      dispatchEvent(new CustomEvent("apprt:mounted", { detail: { app: app.app_id, ms: performance.now() - startedAt } }));
      return handle;
    } catch (error) {
      const failure = error instanceof LoadFailure ? error : new LoadFailure("load", String(error?.message || error));
      container.replaceChildren();
      this.monitor.error(app.app_id, failure.kind, failure.message);
      dispatchEvent(new CustomEvent("apprt:failed", { detail: { app: app.app_id, kind: failure.kind } }));
      throw failure;
    }
  }

  mountChecked(app, container, route, startedAt) {
    if (app.error) {
      throw new LoadFailure("dependency", app.error.problems.map((p) => p.reason).join("; ") || app.error.title, {
        problems: app.error.problems,
      });
    }
    if (!app.entry) throw new LoadFailure("load", "the app has no frontend");
    return app.isolation === "iframe"
      ? this.mountFrame(app, container, route, startedAt)
      : this.mountShadow(app, container, route, startedAt);
  }

  async mountShadow(app, container, route, startedAt) {
    const token = this.monitor.leaks.begin(app.app_id);
    const host = h("div", { class: "app-host", dataset: { app: app.app_id } });
    const shadow = host.attachShadow({ mode: "open" });
    shadow.adoptedStyleSheets = [hostSheet()];
    const root = h("div", { class: "app-root" });
    shadow.append(root);
    container.replaceChildren(host);

    let mod;
    try {
      mod = await withTimeout(import(app.entry), this.timeouts.load, "load");
    } catch (error) {
      throw error instanceof LoadFailure ? error : await diagnose(app, error);
    }
    if (typeof mod.mount !== "function") {
      throw new LoadFailure("load", "the entry module exports no mount(el, ctx) function");
    }
    this.monitor.record(app.app_id, "load", { ms: performance.now() - startedAt });

    const controller = new AbortController();
    const { ctx, setRoute } = makeCtx(this.services(app, controller.signal), {
      root: shadow,
      route,
      signal: controller.signal,
    });
    const mountStarted = performance.now();
    this.monitor.current = app.app_id;
    try {
      await withTimeout(Promise.resolve().then(() => mod.mount(root, ctx)), this.timeouts.mount, "mount");
    } catch (error) {
      controller.abort();
      try {
        await withTimeout(Promise.resolve().then(() => mod.unmount?.(root)), this.timeouts.unmount, "unmount");
      } catch {
        // the app is failing already; the card says why
      }
      root.replaceChildren();
      throw error instanceof LoadFailure
        ? error
        : new LoadFailure("mount", `mount(el, ctx) threw: ${error?.message || error}`, { phase: "mount" });
    }
    this.monitor.record(app.app_id, "mount", { ms: performance.now() - mountStarted });
    this.monitor.leaks.mounted(token);

    return {
      app,
      setRoute,
      unmount: async () => {
        controller.abort();
        if (this.monitor.current === app.app_id) this.monitor.current = null;
        try {
          await withTimeout(Promise.resolve().then(() => mod.unmount?.(root)), this.timeouts.unmount, "unmount");
        } catch (error) {
          // Cut loose: the shell goes on to the next view; the failure is reported.
          const kind = error instanceof LoadFailure ? "timeout" : "unmount";
          console.warn(`apprt: ${app.app_id} unmount(el) failed (${error?.message || error}); the app was cut loose`);
          this.monitor.error(app.app_id, kind, `unmount: ${error?.message || error}`);
        }
        root.replaceChildren();
        host.remove();
        this.monitor.leaks.unmounted(token, root);
      },
    };
  }

  async mountFrame(app, container, route, startedAt) {
    const iframe = h("iframe", {
      class: "app-frame",
      title: app.name,
      sandbox: "allow-scripts allow-forms",
      referrerpolicy: "no-referrer",
      src: app.frame,
      dataset: { app: app.app_id },
    });
    const controller = new AbortController();
    const frameHost = new FrameHost({
      app,
      iframe,
      services: this.services(app, controller.signal),
      route,
      monitor: this.monitor,
      timeouts: this.timeouts,
    });
    const started = frameHost.start(controller.signal);
    container.replaceChildren(iframe);
    let timings;
    try {
      timings = await started;
    } catch (error) {
      controller.abort();
      iframe.remove();
      if (error instanceof FrameFailure) {
        if (error.phase === "load" && error.kind === "load") throw await diagnose(app, error);
        throw new LoadFailure(error.kind, error.phase === "mount" ? `mount(el, ctx) threw: ${error.message}` : error.message, {
          phase: error.phase,
        });
      }
      throw error;
    }
    this.monitor.record(app.app_id, "load", { ms: performance.now() - startedAt - timings.mountMs });
    this.monitor.record(app.app_id, "mount", { ms: timings.mountMs });
    return {
      app,
      setRoute: (next) => frameHost.setRoute(next),
      unmount: async () => {
        const done = await frameHost.unmount();
        if (!done) {
          console.warn(`apprt: ${app.app_id} unmount(el) did not finish in time; the app was cut loose`);
          this.monitor.error(app.app_id, "timeout", "unmount did not finish in time");
        }
        controller.abort();
        iframe.remove();
      },
    };
  }
}

const ADVICE = {
  integrity: "The platform refused to run files that differ from the app's signed package. Reinstall the app; if it happens again, tell the platform administrator.",
  not_found: "A file of the app could not be found. Reinstalling the app usually fixes this.",
  timeout: "The app took too long. Try again; if it keeps happening, tell its publisher.",
  mount: "The app failed while starting. Its publisher can see the error in the administration screen.",
  dependency: "The app cannot share a library with the other apps of this organization.",
  load: "The app's code could not be loaded.",
};

/** The card shown in place of an app that failed; other apps and the shell go on. */
export function errorCard(app, failure, { onRetry } = {}) {
  const titles = {
    integrity: "refused: integrity check failed",
    not_found: "could not be loaded",
    timeout: "did not respond in time",
    mount: "failed to start",
    dependency: "cannot be loaded",
    load: "could not be loaded",
  };
  return h(
    "section",
    { class: "error-card", role: "alert", dataset: { app: app.app_id, kind: failure.kind } },
    h("h2", null, `${app.name} ${titles[failure.kind] || titles.load}`),
    h("p", { class: "error-message" }, failure.message),
    failure.problems?.length
      ? h("ul", null, failure.problems.map((p) => h("li", null, p.reason, p.hint ? ` — ${p.hint}` : "")))
      : null,
    h("p", { class: "muted" }, ADVICE[failure.kind] || ADVICE.load),
    h(
      "p",
      { class: "actions" },
      onRetry ? h("button", { type: "button", onclick: onRetry }, "Try again") : null,
      " ",
      h("a", { href: "#/" }, "Back to apps"),
    ),
    h("p", { class: "muted small" }, `${app.app_id} ${app.version}`),
  );
}
