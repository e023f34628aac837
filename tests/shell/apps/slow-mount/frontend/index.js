// mount never settles: the shell's timeout must turn it into an error card.
export function mount(el) {
  el.textContent = "still starting…";
  return new Promise(() => {});
}

export function unmount() {
  return new Promise(() => {});
}
