// Fails on purpose: mount throws.
export function mount(el) {
  el.textContent = "about to fail";
  throw new Error("boom: the test app failed to start");
}

export function unmount(el) {
  el.replaceChildren();
}
