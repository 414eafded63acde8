// The token field: paste a JWT; it is kept in this tab's session storage only.
import { gql, resetLive, token } from "../api.js";
import { clear, errorBox, h } from "../dom.js";

export async function render(view, ctx) {
  const expired = ctx.params.expired === "1";
  const reason = sessionStorage.getItem("tasker.authMessage");
  sessionStorage.removeItem("tasker.authMessage");
  const back = ctx.params.back || "/handlers";
  const field = h("textarea", { id: "token-input", placeholder: "eyJhbGciOi…", spellcheck: "false" }, token.get());
  const status = h("div", { id: "token-status" });

  async function save(event) {
    event.preventDefault();
    token.set(field.value);
    resetLive();
    clear(status, h("p", { class: "muted" }, "Checking…"));
    try {
      await gql("{ namespaces { name } }");
      ctx.navigate(`#${back}`);
    } catch (err) {
      clear(status, errorBox(err, "The server did not accept this token:"));
    }
  }

  clear(view,
    h("h1", {}, "API token"),
    expired ? h("div", { class: "error-box", role: "alert", id: "token-expired" },
      "Your token was refused", reason ? `: ${reason.replace(/\.?$/, ".")}` : ".", " Paste a new one to continue.") : null,
    h("form", { class: "panel token-form", onsubmit: save },
      h("p", {}, "The console calls the Tasker GraphQL API with this token ",
        "(sent as ", h("code", {}, "Authorization: Bearer …"), "). It is kept in this browser tab only ",
        "and forgotten when the tab closes. A server without authentication needs no token."),
      h("label", {}, "Token", field),
      h("div", { class: "actions", style: "margin-top:10px" },
        h("button", { class: "primary", type: "submit", id: "token-save" }, "Use this token"),
        h("button", { type: "button", onclick: () => { token.set(""); resetLive(); field.value = ""; ctx.navigate(`#${back}`); } },
          "Forget token")),
      status));
  field.focus();
}
