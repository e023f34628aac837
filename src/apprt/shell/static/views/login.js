// Sign in with a user name and password. The platform answers with an HttpOnly
// session cookie; the page then reloads so the organization's import map is fetched
// with it.

import { api, describeError } from "../lib/api.js";
import { append, h } from "../lib/dom.js";

export function renderLogin(view) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    {
      class: "card login",
      "aria-labelledby": "login-title",
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(form);
        submit.disabled = true;
        error.hidden = true;
        try {
          await api("/api/v1/login", {
            method: "POST",
            body: { name: String(data.get("name")).trim(), password: String(data.get("password")) },
          });
          location.hash = "#/";
          location.reload();
        } catch (e) {
          error.textContent = e.status === 401 ? "Wrong user name or password." : describeError(e);
          error.hidden = false;
          submit.disabled = false;
          form.elements.password.select();
        }
      },
    },
    h("h1", { id: "login-title" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "◆"), " Sign in to apprt"),
    h("label", null, "User name", h("input", { name: "name", autocomplete: "username", required: true, autofocus: true })),
    h("label", null, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    error,
    submit,
  );
  append(view, form);
  form.elements.name.focus();
}
