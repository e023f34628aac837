// The registry's review queue, for platform admins: why each version waits, what it
// asks for, approve or reject (a reason is required to reject).

import { api, describeError } from "../lib/api.js";
import { append, h } from "../lib/dom.js";

function permissionSummary(details) {
  const rows = [];
  for (const [label, key] of [["new", "new"], ["sensitive", "sensitive"], ["removed", "removed"]]) {
    const list = details?.[key];
    if (Array.isArray(list) && list.length) rows.push(h("li", null, h("strong", null, `${label}: `), list.join(", ")));
  }
  return rows.length ? h("ul", { class: "plain" }, rows) : null;
}

export async function renderReviews(view, shell) {
  append(view, h("div", { class: "view-head" }, h("h1", null, "Reviews"), h("p", { class: "muted" }, "Versions waiting for a platform admin")));
  if (!shell.isPlatformAdmin) {
    append(view, h("p", { class: "card" }, "Only platform admins review versions."));
    return null;
  }
  const list = h("ul", { class: "reviews", "aria-live": "polite" });
  append(view, list);

  async function refresh() {
    let queue;
    try {
      queue = await api("/api/v1/registry/reviews");
    } catch (error) {
      list.replaceChildren(h("li", { class: "form-error", role: "alert" }, describeError(error)));
      return;
    }
    if (!queue.length) {
      list.replaceChildren(h("li", { class: "card muted" }, "Nothing waits for review."));
      return;
    }
    list.replaceChildren(...queue.map(item));
  }

  function item(review) {
    const reason = h("input", { name: "reason", "aria-label": `Reason for ${review.app_id} ${review.version}`, placeholder: "Reason (required to reject)" });
    const out = h("p", { class: "form-error", role: "alert", hidden: true });
    async function decide(action) {
      if (action === "reject" && !reason.value.trim()) {
        out.textContent = "Give a reason to reject.";
        out.hidden = false;
        reason.focus();
        return;
      }
      try {
        await api(`/api/v1/registry/apps/${encodeURIComponent(review.app_id)}/versions/${encodeURIComponent(review.version)}/${action}`, {
          method: "POST",
          body: { reason: reason.value.trim() },
        });
        shell.toast({ title: `${review.app_id} ${review.version} ${action === "approve" ? "published" : "rejected"}`, level: "success" });
        await refresh();
      } catch (error) {
        out.textContent = describeError(error);
        out.hidden = false;
      }
    }
    return h(
      "li",
      { class: "card review", dataset: { app: review.app_id, version: review.version } },
      h("h2", null, `${review.app_id} ${review.version}`),
      h("p", { class: "muted" }, `by ${review.publisher} · uploaded ${new Date(review.created_at).toLocaleString()}`),
      h("ul", null, review.reasons.map((r) => h("li", null, r))),
      permissionSummary(review.permissions),
      h(
        "p",
        { class: "actions" },
        reason,
        " ",
        h("button", { type: "button", class: "primary", onclick: () => decide("approve") }, "Approve"),
        " ",
        h("button", { type: "button", class: "danger", onclick: () => decide("reject") }, "Reject"),
      ),
      out,
    );
  }

  await refresh();
  return null;
}
