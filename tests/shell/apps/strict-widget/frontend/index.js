// Wants Preact 11 as a strict singleton: refused where the page runs Preact 10.
import { h, render } from "preact";

export function mount(el) {
  render(h("p", null, "should not run beside Preact 10"), el);
}

export function unmount(el) {
  render(null, el);
}
