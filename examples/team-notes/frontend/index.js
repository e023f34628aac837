// Team Notes' frontend. It runs in a sandboxed iframe (isolation = "iframe"):
// it cannot touch the shell's DOM or cookies; ctx is bridged over postMessage.

export async function mount(el, ctx) {
  el.innerHTML = `
    <h1>Team Notes</h1>
    <form><input name="text" placeholder="Write a note" required><button>Add</button></form>
    <ul></ul>`;
  const list = el.querySelector("ul");
  async function refresh() {
    const response = await ctx.fetch("/api/notes");
    const { notes } = await response.json();
    list.replaceChildren(
      ...notes.map((note) => {
        const item = document.createElement("li");
        item.textContent = `${note.author}: ${note.text}`;
        return item;
      }),
    );
  }
  el.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = event.target.elements.text;
    await ctx.fetch("/api/notes", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: input.value }),
    });
    input.value = "";
    await refresh();
  });
  await refresh();
}

export function unmount(el) {
  el.replaceChildren();
}
