// Runs in a sandboxed iframe and tries to escape; records what happened.
async function attempt(name, fn) {
  try {
    const value = await fn();
    return [name, `allowed: ${String(value).slice(0, 80)}`];
  } catch (error) {
    return [name, `blocked: ${error.name}`];
  }
}

export async function mount(el, ctx) {
  const results = await Promise.all([
    attempt("parent-dom", () => window.parent.document.title),
    attempt("top-dom", () => window.top.document.body.innerHTML.length),
    attempt("cookie", () => document.cookie),
    attempt("storage", () => localStorage.length),
    attempt("direct-fetch", () => fetch("/api/v1/me").then((r) => r.status)),
    attempt("absolute-fetch", () => {
      const platform = document.querySelector('meta[name="apprt-entry"]').content;
      return fetch(new URL("/api/v1/me", platform)).then((r) => r.status);
    }),
    attempt("bridge-escape", () => ctx.fetch("/../../api/v1/me").then((r) => r.status)),
    attempt("bridge-no-backend", () => ctx.fetch("/anything").then((r) => r.status)),
    attempt("publish-denied", () => ctx.events.publish("sales.updated", {})),
  ]);
  const list = document.createElement("ul");
  list.id = "results";
  for (const [name, outcome] of results) {
    const item = document.createElement("li");
    item.dataset.probe = name;
    item.textContent = outcome;
    list.append(item);
  }
  const who = document.createElement("p");
  who.id = "identity";
  who.textContent = `${ctx.user.name} in ${ctx.org.slug}`;
  el.replaceChildren(who, list);
}

export function unmount(el) {
  el.replaceChildren();
}
