// Imports a module its package does not contain: the shell gets a 404.
import { missing } from "./missing.js";

export function mount(el) {
  el.textContent = missing;
}

export function unmount(el) {
  el.replaceChildren();
}
