// Tries to style everything: these rules must stay inside its shadow root.
export function mount(el, ctx) {
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
  el.replaceChildren(title, plain, bare);
}

export function unmount(el) {
  el.replaceChildren();
}
