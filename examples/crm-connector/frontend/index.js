// The CRM Connector's screen: its deals and a contact search, through the same routes
// its MCP tools use. Preact, vendored in vendor/preact/ and shared with the other apps
// of the page whose ranges agree (see [frontend.shared.preact] in app.toml).

import { Component, h, render } from "preact";

const STYLE = `
  .crm { padding: 1.25rem 1.5rem; display: grid; gap: 1.25rem; }
  h1 { font-size: 1.35rem; margin: 0; }
  h2 { font-size: 1.05rem; margin: 0 0 0.5rem; color: #364fc7; }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: 0.45rem 0.5rem; border-bottom: 1px solid #e3e6ea; }
  td.amount { text-align: right; font-variant-numeric: tabular-nums; }
  form { display: flex; gap: 0.5rem; }
  input { font: inherit; flex: 1; padding: 0.4rem 0.6rem; border: 1px solid #c5cbd3; border-radius: 8px; }
  button { font: inherit; padding: 0.4rem 0.9rem; border-radius: 8px; border: 1px solid #364fc7;
           background: #edf2ff; color: #364fc7; cursor: pointer; }
  ul { padding-left: 1.1rem; }
  .muted { color: #5a6472; }
  .error { color: #c92a2a; }
`;

async function tool(ctx, path, input) {
  const response = await ctx.fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(input),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `the backend answered ${response.status}`);
  return body.result;
}

class Crm extends Component {
  state = { deals: null, contacts: null, query: "", error: null };

  async componentDidMount() {
    try {
      this.setState({ deals: await tool(this.props.ctx, "/tools/list-deals", { limit: 10 }) });
    } catch (error) {
      if (error.name !== "AbortError") this.setState({ error: error.message });
    }
  }

  search = async (event) => {
    event.preventDefault();
    const query = this.state.query.trim();
    if (!query) return;
    try {
      this.setState({ contacts: await tool(this.props.ctx, "/tools/lookup-contact", { query }), error: null });
    } catch (error) {
      if (error.name !== "AbortError") this.setState({ error: error.message });
    }
  };

  render(_, { deals, contacts, query, error }) {
    return h(
      "section",
      { class: "crm" },
      h("h1", null, "CRM"),
      error ? h("p", { class: "error", role: "alert" }, error) : null,
      h(
        "div",
        null,
        h("h2", null, "Open deals"),
        deals
          ? h(
              "table",
              null,
              h("thead", null, h("tr", null, h("th", null, "Deal"), h("th", null, "Amount"))),
              h(
                "tbody",
                null,
                deals.map((d) =>
                  h("tr", { key: d.id }, h("td", null, d.title), h("td", { class: "amount" }, d.amount.toLocaleString())),
                ),
              ),
            )
          : h("p", { class: "muted" }, "Loading…"),
      ),
      h(
        "div",
        null,
        h("h2", null, "Contacts"),
        h(
          "form",
          { onSubmit: this.search, role: "search" },
          h("input", {
            value: query,
            placeholder: "Name or e-mail",
            "aria-label": "Search contacts",
            onInput: (e) => this.setState({ query: e.currentTarget.value }),
          }),
          h("button", { type: "submit" }, "Search"),
        ),
        contacts
          ? contacts.length
            ? h("ul", null, contacts.map((c) => h("li", { key: c.email }, `${c.name} <${c.email}>`)))
            : h("p", { class: "muted" }, "Nobody matches.")
          : null,
      ),
    );
  }
}

export function mount(el, ctx) {
  ctx.styles(STYLE);
  render(h(Crm, { ctx }), el);
}

export function unmount(el) {
  render(null, el);
}
