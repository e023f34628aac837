// Per-app monitoring: load and mount times, errors, long tasks, suspected leaks.
// Batched to POST /api/v1/telemetry/frontend (every few seconds, and when the page is
// hidden), where they become Prometheus metrics.
//
// Leak heuristic (see docs/frontend.md): two independent signals per app.
//  1. Retained roots. Each mount gets a "canary", a detached element created together
//     with the app's root element (same age, so the same GC generation). The shell
//     keeps the canary until the app's *next* mount has completed (so an app keeping a
//     reference to its latest root is not blamed), then drops it. When the canary is
//     collected (FinalizationRegistry) the root, which the shell no longer references,
//     should be gone too: if its WeakRef still resolves, the app kept its old DOM alive.
//     Two such retained roots make a suspected leak.
//  2. Heap growth. After each unmount the heap is sampled (measureUserAgentSpecificMemory
//     when the page is cross-origin isolated, else performance.memory). Over the last
//     eight cycles, a least-squares growth above 1 MiB per cycle, with at least 80% of
//     the steps growing, over at least five cycles, is a suspected leak.

const FLUSH_MS = 3000;
const MAX_QUEUE = 200;
const HEAP_WINDOW = 8;
const HEAP_MIN_CYCLES = 5;
const HEAP_SLOPE_BYTES = 1024 * 1024;
const RETAINED_LIMIT = 2;

export class LeakDetector {
  constructor(report) {
    this.report = report;
    this.apps = new Map();
    this.registry = new FinalizationRegistry((held) => this.collected(held));
  }

  stateOf(appId) {
    let st = this.apps.get(appId);
    if (!st) {
      st = { cycles: 0, records: [], heap: [], retained: 0, reported: false, pending: null };
      this.apps.set(appId, st);
    }
    return st;
  }

  /** Called when a mount starts: the canary, same age as the root about to be made. */
  begin(appId) {
    return { appId, canary: document.createElement("div") };
  }

  /** Called once a mount completed: the previous cycle's canary may now go. */
  mounted(token) {
    const st = this.stateOf(token.appId);
    if (st.pending) {
      this.registry.register(st.pending.canary, st.pending.record);
      st.pending = null;
    }
  }

  /** Called after unmount with the root element the app rendered into. */
  unmounted(token, root) {
    const st = this.stateOf(token.appId);
    st.cycles += 1;
    const record = { appId: token.appId, cycle: st.cycles, root: new WeakRef(root) };
    st.records.push(record);
    if (st.pending) this.registry.register(st.pending.canary, st.pending.record);
    st.pending = { canary: token.canary, record };
    token.canary = null;
    sampleHeap().then((bytes) => {
      if (bytes === null) return;
      st.heap.push(bytes);
      if (st.heap.length > HEAP_WINDOW) st.heap.shift();
      this.evaluate(token.appId);
    });
  }

  collected(record) {
    const st = this.stateOf(record.appId);
    if (record.root.deref() !== undefined) st.retained += 1;
    this.evaluate(record.appId);
  }

  evaluate(appId) {
    const st = this.stateOf(appId);
    if (st.reported) return;
    const growth = heapGrowth(st.heap);
    const growing = growth !== null && growth.slope > HEAP_SLOPE_BYTES && growth.rising >= 0.8;
    if (st.retained >= RETAINED_LIMIT || growing) {
      st.reported = true;
      this.report(appId, {
        retained: st.retained,
        cycles: st.cycles,
        growth_bytes: growth ? Math.round(growth.slope) : null,
        message: st.retained >= RETAINED_LIMIT
          ? `${st.retained} unmounted roots still reachable after garbage collection`
          : `heap grows ${Math.round(growth.slope / 1024)} KiB per mount/unmount cycle`,
      });
    }
  }
}

/** Least-squares slope (bytes per cycle) and the share of rising steps. */
export function heapGrowth(samples) {
  if (samples.length < HEAP_MIN_CYCLES) return null;
  const n = samples.length;
  const meanX = (n - 1) / 2;
  const meanY = samples.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  samples.forEach((y, x) => {
    num += (x - meanX) * (y - meanY);
    den += (x - meanX) ** 2;
  });
  let rising = 0;
  for (let i = 1; i < n; i += 1) if (samples[i] > samples[i - 1]) rising += 1;
  return { slope: num / den, rising: rising / (n - 1) };
}

async function sampleHeap() {
  try {
    if (globalThis.crossOriginIsolated && performance.measureUserAgentSpecificMemory) {
      const result = await performance.measureUserAgentSpecificMemory();
      return result.bytes;
    }
  } catch {
    // not available here: fall through
  }
  return performance.memory ? performance.memory.usedJSHeapSize : null;
}

export class Monitor {
  constructor(org) {
    this.org = org;
    this.queue = [];
    this.prefixes = new Map(); // asset URL prefix -> app id
    this.current = null; // the app in view: long tasks nobody else claims are its
    this.timer = null;
    this.leaks = new LeakDetector((app, detail) => {
      this.record(app, "leak", detail);
      this.flush();
    });
  }

  register(apps) {
    for (const app of apps) {
      if (app.digest) this.prefixes.set(`/assets/sha256/${app.digest}/`, app.app_id);
    }
  }

  appOf(url) {
    if (!url) return null;
    let path;
    try {
      path = new URL(url, location.href).pathname;
    } catch {
      return null;
    }
    for (const [prefix, app] of this.prefixes) if (path.startsWith(prefix)) return app;
    return null;
  }

  record(app, kind, fields = {}) {
    if (!this.org || !app) return;
    if (this.queue.length >= MAX_QUEUE) this.queue.shift();
    this.queue.push({ app, kind, ...fields });
    if (!this.timer) this.timer = setTimeout(() => this.flush(), FLUSH_MS);
  }

  error(app, error, message) {
    this.record(app, "error", { error, message: String(message ?? "").slice(0, 500) });
  }

  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.queue.length || !this.org) return Promise.resolve();
    const events = this.queue.splice(0, this.queue.length);
    return fetch("/api/v1/telemetry/frontend", {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ org: this.org, events }),
    }).catch(() => {});
  }

  /** Global observers: errors and long tasks attributed to apps by script URL. */
  attach() {
    addEventListener("error", (event) => {
      const app = this.appOf(event.filename) || this.appOf(stackUrl(event.error));
      if (app) this.error(app, "runtime", event.message);
    });
    addEventListener("unhandledrejection", (event) => {
      const app = this.appOf(stackUrl(event.reason));
      if (app) this.error(app, "runtime", event.reason?.message ?? event.reason);
    });
    addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") this.flush();
    });
    addEventListener("pagehide", () => this.flush());
    const types = PerformanceObserver.supportedEntryTypes || [];
    if (types.includes("long-animation-frame")) {
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          if (entry.blockingDuration <= 0) continue;
          const apps = new Set(entry.scripts.map((s) => this.appOf(s.sourceURL)).filter(Boolean));
          for (const app of apps) this.record(app, "longtask", { ms: entry.duration });
        }
      }).observe({ type: "long-animation-frame", buffered: false });
    } else if (types.includes("longtask")) {
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          if (this.current) this.record(this.current, "longtask", { ms: entry.duration });
        }
      }).observe({ type: "longtask", buffered: false });
    }
  }
}

function stackUrl(error) {
  const stack = typeof error?.stack === "string" ? error.stack : "";
  const match = /(https?:\/\/[^\s)]+?\/assets\/sha256\/[0-9a-f]{64}\/[^\s):]+)/.exec(stack);
  return match ? match[1] : null;
}
