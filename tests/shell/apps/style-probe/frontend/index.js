// Tries to style everything: these rules must stay inside its shadow root. Also shows
// its sub-route, which ctx.navigate changes without remounting it.
let mounts = 0;

export function mount(el, ctx) {
  mounts += 1;
  ctx.styles(`
    h1 { color: rgb(255, 0, 0); }
    * { letter-spacing: 7px; }
    p { font-family: monospace; }
  `);
  const title = document.createElement("h1");
  title.textContent = "Style probe";
  const plain = document.createElement("p");
  plain.className = "plain";
  plain.textContent = "Unstyled by the page";
  const bare = document.createElement("span");
  bare.className = "bare";
  bare.textContent = "inherits only from the app";
  const route = document.createElement("output");
  route.className = "route";
  const show = (r) => {
    route.textContent = `route ${r}, mounted ${mounts} time(s)`;
  };
  show(ctx.route);
  ctx.onRoute(show);
  const go = document.createElement("button");
  go.type = "button";
  go.textContent = "Details";
  go.addEventListener("click", () => ctx.navigate("/details/7"));
  el.replaceChildren(title, plain, bare, route, go);
}

export function unmount(el) {
  el.replaceChildren();
}
