// On Preact 11 while the page shares Preact 10: runs on its own copy, in the same page.
import { h, render } from "preact";

export function mount(el) {
  render(h("p", { class: "own" }, "rendered by my own Preact"), el);
}

export function unmount(el) {
  render(null, el);
}
