// Leaks on purpose: every mount's root element (and a large array) stays reachable
// from this module after unmount.
const kept = [];

export function mount(el) {
  kept.push({ el, ballast: new Array(200000).fill(kept.length) });
  el.textContent = `mounted ${kept.length} times`;
}

export function unmount(el) {
  el.textContent = "";
}
