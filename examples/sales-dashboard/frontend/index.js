// Sales Dashboard's frontend: mounted by the web shell into a Shadow DOM root,
// so the styles below apply to this app only.

const STYLE = `
  :host { font-family: system-ui, sans-serif; }
  .total { font-size: 2rem; font-weight: 700; color: #2f9e44; }
  li { margin: 0.25rem 0; }
`;

function money(amount, currency) {
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount);
}

export async function mount(el, ctx) {
  const style = document.createElement("style");
  style.textContent = STYLE;
  const root = document.createElement("section");
  root.innerHTML = "<h1>Sales Dashboard</h1><p class='total'>…</p><ol class='deals'></ol>";
  el.replaceChildren(style, root);
  const response = await ctx.fetch("/api/summary");
  const data = await response.json();
  root.querySelector(".total").textContent = money(data.pipeline_total, data.currency);
  const list = root.querySelector(".deals");
  for (const deal of data.top_deals) {
    const item = document.createElement("li");
    item.textContent = `${deal.title}: ${money(deal.amount, data.currency)}`;
    list.append(item);
  }
}

export function unmount(el) {
  el.replaceChildren();
}
