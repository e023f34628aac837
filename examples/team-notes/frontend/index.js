// Team Notes' frontend. It runs in a sandboxed iframe (isolation = "iframe"): it cannot
// touch the shell's DOM or cookies, has no network of its own, and its ctx is bridged
// over postMessage. It is written against Preact 11, a range the other example apps
// (on Preact 10) cannot share, so it brings its own copy (vendor/preact/).

import { Component, h, render } from "preact";

const STYLE = `
  h1 { font-size: 1.35rem; margin: 0 0 1rem; }
  form { display: flex; gap: 0.5rem; margin-bottom: 1rem; }
  input { font: inherit; flex: 1; padding: 0.45rem 0.6rem; border: 1px solid #c5cbd3; border-radius: 8px; }
  button { font: inherit; padding: 0.45rem 1rem; border-radius: 8px; border: 1px solid #e67700;
           background: #fff4e6; color: #d9480f; cursor: pointer; }
  ul { list-style: none; padding: 0; margin: 0; }
  li { padding: 0.5rem 0; border-bottom: 1px solid #eceff3; }
  .author { font-weight: 600; margin-right: 0.5rem; }
  .muted { color: #5a6472; }
  .error { color: #c92a2a; }
`;

class Notes extends Component {
  state = { notes: null, text: "", error: null, saving: false };

  componentDidMount() {
    this.refresh();
  }

  async refresh() {
    try {
      const response = await this.props.ctx.fetch("/api/notes");
      if (!response.ok) throw new Error(`the backend answered ${response.status}`);
      const { notes } = await response.json();
      this.setState({ notes, error: null });
    } catch (error) {
      this.setState({ error: error.message });
    }
  }

  add = async (event) => {
    event.preventDefault();
    const text = this.state.text.trim();
    if (!text) return;
    this.setState({ saving: true });
    try {
      const response = await this.props.ctx.fetch("/api/notes", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ text }),
      });
      if (!response.ok) throw new Error(`the backend answered ${response.status}`);
      this.setState({ text: "" });
      this.props.ctx.notify({ title: "Note added", level: "success" });
      await this.refresh();
    } catch (error) {
      this.setState({ error: error.message });
    } finally {
      this.setState({ saving: false });
    }
  };

  render(_, { notes, text, error, saving }) {
    return h(
      "section",
      null,
      h("h1", null, "Team Notes"),
      h(
        "form",
        { onSubmit: this.add },
        h("input", {
          name: "text",
          value: text,
          placeholder: "Write a note",
          "aria-label": "New note",
          required: true,
          onInput: (e) => this.setState({ text: e.currentTarget.value }),
        }),
        h("button", { type: "submit", disabled: saving }, "Add"),
      ),
      error ? h("p", { class: "error", role: "alert" }, error) : null,
      notes === null
        ? h("p", { class: "muted" }, "Loading…")
        : notes.length
          ? h(
              "ul",
              { "aria-label": "Notes" },
              notes.map((n) => h("li", { key: n.id }, h("span", { class: "author" }, n.author), n.text)),
            )
          : h("p", { class: "muted" }, "No notes yet."),
    );
  }
}

export function mount(el, ctx) {
  ctx.styles(STYLE);
  render(h(Notes, { ctx }), el);
}

export function unmount(el) {
  render(null, el);
}
