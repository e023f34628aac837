// Sales Dashboard's frontend, on Preact (from the npm registry, vendored in
// vendor/preact/). The shell mounts it into a Shadow DOM root: the styles below apply
// to this app only, and the page's do not reach it. "preact" is a shared dependency
// (see [frontend.shared.preact] in app.toml): when other apps of the organization
// accept the same range, the page loads one copy for all of them.

import { Component, h, render } from "preact";

const STYLE = `
  .dashboard { padding: 1.25rem 1.5rem; }
  header { display: flex; align-items: center; justify-content: space-between; gap: 1rem; }
  h1 { font-size: 1.35rem; margin: 0; color: #1b1f24; }
  button { font: inherit; padding: 0.4rem 0.9rem; border-radius: 8px; border: 1px solid #2f9e44;
           background: #ebfbee; color: #2b8a3e; cursor: pointer; }
  button:disabled { opacity: 0.6; cursor: progress; }
  .label { color: #5a6472; margin: 1rem 0 0; }
  .total { font-size: 2.2rem; font-weight: 700; color: #2f9e44; margin: 0.2rem 0 1rem; }
  .deals { list-style: none; padding: 0; margin: 0; border-top: 1px solid #e3e6ea; }
  .deals li { display: flex; justify-content: space-between; padding: 0.55rem 0; border-bottom: 1px solid #e3e6ea; }
  .error { color: #c92a2a; }
`;

function money(amount, currency) {
  return new Intl.NumberFormat(undefined, { style: "currency", currency, maximumFractionDigits: 0 }).format(amount);
}

class Dashboard extends Component {
  state = { data: null, error: null, loading: true };

  componentDidMount() {
    this.load();
  }

  async load() {
    const { ctx } = this.props;
    this.setState({ loading: true });
    try {
      const response = await ctx.fetch("/api/summary");
      if (!response.ok) throw new Error(`the backend answered ${response.status}`);
      const data = await response.json();
      this.setState({ data, error: null, loading: false });
      // Declared in app.toml (events:publish:sales.updated); other apps may subscribe.
      ctx.events.publish("sales.updated", { pipeline_total: data.pipeline_total, currency: data.currency });
    } catch (error) {
      if (error.name !== "AbortError") this.setState({ error: error.message, loading: false });
    }
  }

  render(_, { data, error, loading }) {
    return h(
      "section",
      { class: "dashboard" },
      h(
        "header",
        null,
        h("h1", null, "Sales Dashboard"),
        h("button", { type: "button", onClick: () => this.load(), disabled: loading }, loading ? "Refreshing…" : "Refresh"),
      ),
      error ? h("p", { class: "error", role: "alert" }, `Could not load the pipeline: ${error}`) : null,
      data
        ? [
            h("p", { class: "label" }, `Open pipeline, next ${data.pipeline_days} days`),
            h("p", { class: "total" }, money(data.pipeline_total, data.currency)),
            h(
              "ol",
              { class: "deals", "aria-label": "Top deals" },
              data.top_deals.map((deal) =>
                h("li", { key: deal.id }, h("span", null, deal.title), h("strong", null, money(deal.amount, data.currency))),
              ),
            ),
          ]
        : error
          ? null
          : h("p", { class: "label" }, "Loading…"),
    );
  }
}

export function mount(el, ctx) {
  ctx.styles(STYLE);
  render(h(Dashboard, { ctx }), el);
}

export function unmount(el) {
  render(null, el);
}
