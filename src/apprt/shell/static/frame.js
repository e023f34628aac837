// The frame side of the iframe bridge: runs inside an iframe app's sandboxed document
// (opaque origin, no network of its own), loads the app's entry (its URL and SRI are in
// this document's import map), and gives mount(el, ctx) a ctx whose every operation is
// a message to the shell over a MessagePort. See loader/bridge.js for the protocol.

const appId = document.querySelector('meta[name="apprt-app"]').content;
const entry = document.querySelector('meta[name="apprt-entry"]').content;
const root = document.getElementById("app");

let port = null;
let mod = null;
let nextId = 1;
const pending = new Map();
const handlers = new Map();
const routeListeners = new Set();
const controller = new AbortController();
let route = "/";

function post(message, transfer = []) {
  port?.postMessage(message, transfer);
}

function request(message, transfer = []) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    post({ ...message, id }, transfer);
  });
}

function asError(error) {
  const e = new Error(error?.message || "the shell refused the request");
  e.name = error?.name || "Error";
  return e;
}

async function serializeBody(body, headers) {
  if (body === undefined || body === null) return null;
  if (typeof body === "string") return body;
  if (body instanceof ArrayBuffer) return body;
  if (ArrayBuffer.isView(body)) return body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength);
  const response = new Response(body);
  const type = response.headers.get("content-type");
  if (type && !headers.has("content-type")) headers.set("content-type", type);
  return response.arrayBuffer();
}

async function bridgedFetch(path, init = {}) {
  const headers = new Headers(init.headers || {});
  const body = await serializeBody(init.body, headers);
  const transfer = body instanceof ArrayBuffer ? [body] : [];
  const answer = await request(
    { op: "fetch", path, method: init.method || "GET", headers: [...headers.entries()], body },
    transfer,
  );
  const r = answer.response;
  return new Response(r.status === 204 || r.status === 304 ? null : r.body, {
    status: r.status,
    statusText: r.statusText,
    headers: r.headers,
  });
}

function makeCtx(init) {
  return Object.freeze({
    app: init.app,
    user: init.user,
    org: init.org,
    signal: controller.signal,
    get route() {
      return route;
    },
    onRoute(fn) {
      routeListeners.add(fn);
      return () => routeListeners.delete(fn);
    },
    fetch: bridgedFetch,
    events: Object.freeze({
      publish: (topic, data) => request({ op: "publish", topic, data }).then((a) => a.result),
      subscribe(topic, fn) {
        const sid = nextId++;
        handlers.set(sid, fn);
        const ready = request({ op: "subscribe", topic, sid }).catch((error) => {
          handlers.delete(sid);
          throw error;
        });
        const unsubscribe = () => {
          handlers.delete(sid);
          post({ op: "unsubscribe", sid });
        };
        unsubscribe.ready = ready;
        return unsubscribe;
      },
    }),
    navigate: (to) => post({ op: "navigate", to }),
    notify: (notification) => post({ op: "notify", notification }),
    styles(css) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(String(css));
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    },
  });
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`${what} took longer than ${ms / 1000} s`), { timeout: true })), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function start(init) {
  const timeouts = init.timeouts || { load: 15000, mount: 10000, unmount: 3000 };
  const started = performance.now();
  try {
    mod = await withTimeout(import(entry), timeouts.load, "loading");
  } catch (error) {
    post({ op: "failed", phase: "load", kind: error.timeout ? "timeout" : "load", message: String(error.message || error) });
    return;
  }
  if (typeof mod.mount !== "function") {
    post({ op: "failed", phase: "load", kind: "load", message: "the entry module exports no mount(el, ctx)" });
    return;
  }
  post({ op: "loaded", ms: performance.now() - started });
  route = init.route || "/";
  const mountStarted = performance.now();
  try {
    await withTimeout(Promise.resolve().then(() => mod.mount(root, makeCtx(init))), timeouts.mount, "mount");
  } catch (error) {
    post({ op: "failed", phase: "mount", kind: error.timeout ? "timeout" : "mount", message: String(error.message || error) });
    return;
  }
  post({ op: "mounted", ms: performance.now() - mountStarted });
}

async function onPort(event) {
  const msg = event.data;
  if (!msg) return;
  if (msg.id !== undefined && pending.has(msg.id)) {
    const { resolve, reject } = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.ok) resolve(msg);
    else reject(asError(msg.error));
    return;
  }
  if (msg.op === "event") {
    const fn = handlers.get(msg.sid);
    if (fn) fn(msg.message);
  } else if (msg.op === "route") {
    route = msg.route;
    for (const fn of routeListeners) fn(route);
  } else if (msg.op === "unmount") {
    controller.abort();
    try {
      if (typeof mod?.unmount === "function") await mod.unmount(root);
    } catch (error) {
      post({ op: "error", message: `unmount: ${error.message || error}` });
    }
    root.replaceChildren();
    post({ op: "unmounted" });
  }
}

addEventListener("error", (event) => post({ op: "error", message: event.message }));
addEventListener("unhandledrejection", (event) =>
  post({ op: "error", message: String(event.reason?.message ?? event.reason) }),
);
if ((PerformanceObserver.supportedEntryTypes || []).includes("longtask")) {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) post({ op: "longtask", ms: entry.duration });
  }).observe({ type: "longtask", buffered: true });
}

function onInit(event) {
  if (event.source !== parent || event.data?.apprt !== "init" || !event.ports[0]) return;
  removeEventListener("message", onInit);
  port = event.ports[0];
  port.onmessage = onPort;
  start(event.data);
}

addEventListener("message", onInit);
parent.postMessage({ apprt: "ready", app: appId }, "*");
