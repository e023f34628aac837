// The browser test alters this file on disk after installation: the shell must refuse it.
export function mount(el) {
  el.textContent = "original code";
}

export function unmount(el) {
  el.replaceChildren();
}
