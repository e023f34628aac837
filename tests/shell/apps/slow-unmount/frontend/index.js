// mount settles at once; unmount never does: the shell must cut the app loose after
// its unmount timeout and go on to the next view.
export function mount(el) {
  const p = document.createElement("p");
  p.className = "mounted";
  p.textContent = "mounted; unmount will hang";
  el.replaceChildren(p);
}

export function unmount() {
  window.__unmountCalledAt = performance.now();
  return new Promise(() => {});
}
