// The auditor records a bad rating's follow-up step (回访核实 / 整改) on the case page.
import { post } from "./api.js";

const form = document.getElementById("followup-form");
if (form) {
  const alert = document.getElementById("followup-alert");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { stage: form.dataset.stage, note: data.get("note") };
    if (form.dataset.stage === "verify") body.upheld = data.get("upheld") === "true";
    form.querySelector("button").disabled = true;
    try {
      await post(`/api/v1/sessions/${form.dataset.sessionId}/followup`, body);
      location.reload();
    } catch (error) {
      alert.textContent = error.message;
      alert.hidden = false;
      form.querySelector("button").disabled = false;
    }
  });
}
