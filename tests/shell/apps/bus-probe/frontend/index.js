// Subscribes to sales.* (granted: events:subscribe:sales.*), shows what it receives,
// and checks the bus refuses what it was not granted. Also blocks the main thread once
// (a long task the shell attributes to it).
export function mount(el, ctx) {
  const list = document.createElement("ul");
  list.className = "received";
  const checks = document.createElement("ul");
  checks.className = "checks";
  el.replaceChildren(list, checks);
  ctx.events.subscribe("sales.*", (message) => {
    const item = document.createElement("li");
    item.textContent = `${message.topic} from ${message.from}: ${JSON.stringify(message.data)}`;
    list.append(item);
  });
  ctx.events.subscribe("app:ping", (message) => {
    const item = document.createElement("li");
    item.dataset.check = "app-scoped";
    item.textContent = `app:ping ${message.data}`;
    checks.append(item);
  });
  ctx.events.publish("app:ping", "pong");
  for (const [name, attempt] of [
    ["publish-denied", () => ctx.events.publish("sales.updated", {})],
    ["subscribe-denied", () => ctx.events.subscribe("hr.salaries", () => {})],
  ]) {
    const item = document.createElement("li");
    item.dataset.check = name;
    try {
      attempt();
      item.textContent = "allowed";
    } catch (error) {
      item.textContent = `refused: ${error.name}`;
    }
    checks.append(item);
  }
  setTimeout(() => {
    const start = performance.now();
    while (performance.now() - start < 120) {
      // busy on purpose
    }
  }, 0);
}

export function unmount(el) {
  el.replaceChildren();
}
