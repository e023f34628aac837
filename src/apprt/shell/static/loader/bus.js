// The event bus between the apps of one page (iframe apps reach it through the bridge).
//
// Topics:
//   "app:<name>"  app-scoped: only the publishing app's own subscribers receive it; no
//                 permission needed.
//   "<topic>"     shared (e.g. "sales.updated"): publishing needs the granted permission
//                 events:publish:<topic>, subscribing events:subscribe:<pattern> covering
//                 the subscription; "*" matches any run of characters.
// Data is structured-cloned per subscriber: apps never share mutable objects.

const TOPIC = /^[a-z0-9*][a-z0-9._*-]{0,127}$/;

export class BusError extends Error {
  constructor(message) {
    super(message);
    this.name = "NotAllowedError";
  }
}

function globToRegExp(glob) {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${escaped}$`);
}

/** True when one of the app's granted `events:<action>:<pattern>` covers `topic`. */
export function allowed(grants, action, topic) {
  const prefix = `events:${action}:`;
  return grants.some((g) => g.startsWith(prefix) && globToRegExp(g.slice(prefix.length)).test(topic));
}

function parse(topic) {
  if (typeof topic !== "string") throw new TypeError("a topic is a string");
  const scoped = topic.startsWith("app:");
  const name = scoped ? topic.slice(4) : topic;
  if (!TOPIC.test(name)) {
    throw new TypeError(`${JSON.stringify(topic)} is not a topic: lowercase letters, digits, '.', '_', '-', '*'`);
  }
  return { scoped, name };
}

export class EventBus {
  constructor({ onError } = {}) {
    this.subscriptions = new Set();
    this.onError = onError || (() => {});
  }

  /** Publish `data` on `topic` as `app` ({ app_id, events }); returns subscribers reached. */
  publish(app, topic, data) {
    const { scoped, name } = parse(topic);
    if (name.includes("*")) throw new TypeError("publish on a concrete topic, not a pattern");
    if (!scoped && !allowed(app.events, "publish", name)) {
      throw new BusError(`${app.app_id} may not publish on ${name}: it needs events:publish:${name}`);
    }
    let reached = 0;
    for (const sub of this.subscriptions) {
      const match = scoped
        ? sub.scoped && sub.appId === app.app_id && sub.pattern.test(name)
        : !sub.scoped && sub.pattern.test(name);
      if (!match) continue;
      reached += 1;
      const message = { topic, from: app.app_id, data: structuredClone(data) };
      queueMicrotask(() => {
        try {
          sub.fn(message);
        } catch (error) {
          this.onError(sub.appId, error);
        }
      });
    }
    return reached;
  }

  /** Call `fn(message)` for each event on `topic` (a pattern); returns unsubscribe. */
  subscribe(app, topic, fn, signal) {
    const { scoped, name } = parse(topic);
    if (typeof fn !== "function") throw new TypeError("subscribe(topic, fn): fn must be a function");
    if (!scoped && !allowed(app.events, "subscribe", name)) {
      throw new BusError(`${app.app_id} may not subscribe to ${name}: it needs events:subscribe:${name}`);
    }
    const sub = { appId: app.app_id, scoped, pattern: globToRegExp(name), fn };
    this.subscriptions.add(sub);
    const unsubscribe = () => this.subscriptions.delete(sub);
    signal?.addEventListener("abort", unsubscribe, { once: true });
    return unsubscribe;
  }
}
