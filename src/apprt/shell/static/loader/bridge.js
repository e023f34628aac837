// The host side of the iframe bridge.
//
// An iframe app runs in <iframe sandbox="allow-scripts allow-forms"> (no
// allow-same-origin: an opaque origin, no cookies, no access to the shell's DOM) whose
// document the platform serves with a sandbox CSP and `connect-src 'none'`. The frame
// announces itself with {apprt: "ready"}; the host answers with {apprt: "init"} and a
// MessagePort. From then on everything goes through the port:
//
//   frame -> host   {id, op: "fetch", path, method, headers, body}   -> {id, ok, response}
//                   {id, op: "publish", topic, data}                  -> {id, ok, result}
//                   {id, op: "subscribe", topic, sid} / {op: "unsubscribe", sid}
//                   {op: "navigate", to} / {op: "notify", notification}
//                   {op: "loaded", ms} / {op: "mounted", ms} / {op: "failed", phase, kind, message}
//                   {op: "error", message} / {op: "longtask", ms} / {op: "unmounted"}
//   host -> frame   {op: "event", sid, message} / {op: "route", route} / {op: "unmount"}
//
// The host performs each request with the app's own services (same checks as a shadow
// app: its gateway prefix only, its granted topics only); the frame never holds a
// credential.

const MAX_IN_FLIGHT = 32;

export class FrameFailure extends Error {
  constructor(phase, kind, message) {
    super(message);
    this.name = "FrameFailure";
    this.phase = phase;
    this.kind = kind;
  }
}

function serializeHeaders(headers) {
  return [...headers.entries()];
}

export class FrameHost {
  constructor({ app, iframe, services, route, monitor, timeouts }) {
    this.app = app;
    this.iframe = iframe;
    this.services = services;
    this.route = route;
    this.monitor = monitor;
    this.timeouts = timeouts;
    this.port = null;
    this.inFlight = 0;
    this.subscriptions = new Map();
    this.waiters = new Map();
    this.onMessage = this.onMessage.bind(this);
  }

  /** Resolves with {loadMs, mountMs} once the app is mounted; rejects with FrameFailure. */
  start(signal) {
    return new Promise((resolve, reject) => {
      let loadMs = null;
      const started = performance.now();
      const timer = setTimeout(
        () => reject(new FrameFailure("load", "timeout", `the app did not start within ${this.timeouts.load / 1000} s`)),
        this.timeouts.load,
      );
      const onWindowMessage = (event) => {
        if (event.source !== this.iframe.contentWindow || event.data?.apprt !== "ready") return;
        removeEventListener("message", onWindowMessage);
        const channel = new MessageChannel();
        this.port = channel.port1;
        this.port.onmessage = (e) => this.onMessage(e.data);
        this.waiters.set("loaded", (msg) => {
          loadMs = msg.ms ?? performance.now() - started;
        });
        this.waiters.set("mounted", (msg) => {
          clearTimeout(timer);
          resolve({ loadMs: loadMs ?? performance.now() - started, mountMs: msg.ms ?? 0 });
        });
        this.waiters.set("failed", (msg) => {
          clearTimeout(timer);
          reject(new FrameFailure(msg.phase, msg.kind || msg.phase, msg.message));
        });
        // The frame's origin is opaque, so "*" is the only target origin that reaches
        // it; what travels is the port, whose use the host checks message by message.
        this.iframe.contentWindow.postMessage(
          { apprt: "init", ...this.services.identity(), route: this.route, timeouts: this.timeouts },
          "*",
          [channel.port2],
        );
      };
      addEventListener("message", onWindowMessage);
      signal.addEventListener("abort", () => {
        removeEventListener("message", onWindowMessage);
        clearTimeout(timer);
      });
    });
  }

  post(message, transfer = []) {
    this.port?.postMessage(message, transfer);
  }

  async onMessage(msg) {
    if (!msg || typeof msg.op !== "string") return;
    const waiter = this.waiters.get(msg.op);
    if (waiter) {
      this.waiters.delete(msg.op);
      waiter(msg);
      return;
    }
    switch (msg.op) {
      case "fetch":
        return this.fetch(msg);
      case "publish":
        return this.answer(msg.id, () => this.services.publish(msg.topic, msg.data));
      case "subscribe":
        return this.answer(msg.id, () => {
          const unsubscribe = this.services.subscribe(msg.topic, (message) =>
            this.post({ op: "event", sid: msg.sid, message }),
          );
          this.subscriptions.set(msg.sid, unsubscribe);
          return true;
        });
      case "unsubscribe":
        this.subscriptions.get(msg.sid)?.();
        this.subscriptions.delete(msg.sid);
        return;
      case "navigate":
      case "notify":
        try {
          if (msg.op === "navigate") this.services.navigate(msg.to);
          else this.services.notify(msg.notification);
        } catch (error) {
          this.monitor.error(this.app.app_id, "runtime", `${msg.op}: ${error.message}`);
        }
        return;
      case "error":
        return this.monitor.error(this.app.app_id, "runtime", msg.message);
      case "longtask":
        return this.monitor.record(this.app.app_id, "longtask", { ms: Number(msg.ms) || 0 });
      default:
        return;
    }
  }

  async answer(id, fn) {
    try {
      this.post({ id, ok: true, result: await fn() });
    } catch (error) {
      this.post({ id, ok: false, error: { name: error.name, message: error.message } });
    }
  }

  async fetch(msg) {
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.post({ id: msg.id, ok: false, error: { name: "QuotaExceededError", message: "too many requests in flight" } });
      return;
    }
    this.inFlight += 1;
    try {
      const init = { method: msg.method || "GET", headers: new Headers(msg.headers || []) };
      if (msg.body !== undefined && msg.body !== null) init.body = msg.body;
      const response = await this.services.fetch(msg.path, init);
      const body = await response.arrayBuffer();
      this.post(
        {
          id: msg.id,
          ok: true,
          response: {
            status: response.status,
            statusText: response.statusText,
            headers: serializeHeaders(response.headers),
            body,
          },
        },
        [body],
      );
    } catch (error) {
      this.post({ id: msg.id, ok: false, error: { name: error.name, message: error.message } });
    } finally {
      this.inFlight -= 1;
    }
  }

  setRoute(route) {
    this.route = route;
    this.post({ op: "route", route });
  }

  /** Ask the frame to unmount; resolves when it did or the timeout passed. */
  unmount() {
    for (const unsubscribe of this.subscriptions.values()) unsubscribe();
    this.subscriptions.clear();
    if (!this.port) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), this.timeouts.unmount);
      this.waiters.set("unmounted", () => {
        clearTimeout(timer);
        resolve(true);
      });
      this.post({ op: "unmount" });
    }).finally(() => {
      this.port.close();
      this.port = null;
    });
  }
}
