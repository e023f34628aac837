// `ctx`, what an app's mount(el, ctx) receives. The same services back the ctx of a
// shadow app (called directly) and of an iframe app (called through the bridge).
//
//   ctx.app       { id, name, version }
//   ctx.user      { name, role }            ctx.org { slug, name }
//   ctx.route     the app's sub-path ("/" or "/deals/42"); ctx.onRoute(fn) for changes
//   ctx.fetch(path, init)   the app's own backend through the gateway (/apps/<org>/<app>/),
//                           authenticated with the user's session; nothing else
//   ctx.events.publish(topic, data) / ctx.events.subscribe(topic, fn) -> unsubscribe
//   ctx.navigate(to)        "/sub/path" inside the app, or { app: "<id>", path } to another
//   ctx.notify({ title, body, level })   a notification in the shell ("info", "success",
//                           "warning", "error")
//   ctx.styles(css)         adopt a stylesheet into the app's root (the shell's CSP forbids
//                           inline <style> in the page)
//   ctx.signal              an AbortSignal aborted at unmount (pass it to your own work)

const LEVELS = new Set(["info", "success", "warning", "error"]);

export class NoBackendError extends Error {
  constructor(appId) {
    super(`${appId} has no backend to fetch from`);
    this.name = "NoBackendError";
  }
}

/** The absolute URL of `path` inside the app's gateway prefix, or an error. */
export function resolveInApp(gateway, path) {
  if (typeof path !== "string" || !path.startsWith("/")) {
    throw new TypeError("ctx.fetch(path): path must be a string starting with '/', relative to the app's backend");
  }
  const base = new URL(gateway, location.origin);
  const url = new URL(path.slice(1), base);
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) {
    throw new TypeError(`ctx.fetch(${JSON.stringify(path)}) leaves the app's backend`);
  }
  return url;
}

/** The operations behind a ctx, bound to one app in one mount. */
export function hostServices({ app, org, user, bus, navigate, notify, signal }) {
  return {
    identity() {
      return {
        app: { id: app.app_id, name: app.name, version: app.version },
        user: { name: user.name, role: user.role },
        org: { slug: org.slug, name: org.name },
      };
    },
    fetch(path, init = {}) {
      let url;
      try {
        url = resolveInApp(app.gateway || `/apps/${org.slug}/${app.app_id}/`, path);
      } catch (error) {
        return Promise.reject(error);
      }
      if (!app.gateway) return Promise.reject(new NoBackendError(app.app_id));
      const signals = [signal, init.signal].filter(Boolean);
      return fetch(url, {
        ...init,
        credentials: "same-origin",
        mode: "same-origin",
        redirect: "error",
        signal: signals.length > 1 ? AbortSignal.any(signals) : signals[0],
      });
    },
    publish(topic, data) {
      return bus.publish(app, topic, data);
    },
    subscribe(topic, fn) {
      return bus.subscribe(app, topic, fn, signal);
    },
    navigate(to) {
      navigate(app, to);
    },
    notify(notification) {
      const n = typeof notification === "string" ? { title: notification } : notification || {};
      notify({
        app: app.name,
        title: String(n.title ?? "").slice(0, 200),
        body: n.body ? String(n.body).slice(0, 1000) : "",
        level: LEVELS.has(n.level) ? n.level : "info",
      });
    },
  };
}

/** The ctx of a shadow app: `services` directly, `root` its ShadowRoot. */
export function makeCtx(services, { root, route, signal }) {
  const live = { root, route, listeners: new Set() };
  signal.addEventListener(
    "abort",
    () => {
      // Unmounted: keep nothing of the app's DOM reachable from a ctx it may retain.
      live.root = null;
      live.listeners.clear();
    },
    { once: true },
  );
  const identity = services.identity();
  const ctx = {
    ...identity,
    signal,
    get route() {
      return live.route;
    },
    onRoute(fn) {
      live.listeners.add(fn);
      return () => live.listeners.delete(fn);
    },
    fetch: (path, init) => services.fetch(path, init),
    events: Object.freeze({
      publish: (topic, data) => services.publish(topic, data),
      subscribe: (topic, fn) => services.subscribe(topic, fn),
    }),
    navigate: (to) => services.navigate(to),
    notify: (n) => services.notify(n),
    styles(css) {
      if (!live.root) return;
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(String(css));
      live.root.adoptedStyleSheets = [...live.root.adoptedStyleSheets, sheet];
    },
  };
  const setRoute = (next) => {
    live.route = next;
    for (const fn of live.listeners) {
      try {
        fn(next);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  };
  return { ctx: Object.freeze(ctx), setRoute };
}
