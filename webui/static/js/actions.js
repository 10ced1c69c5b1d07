// Review actions on the live screen: the material checklist (an approver of the
// session marks each material 齐全 / 缺失 / 不清晰 with a comment; everyone sees marks as
// they are made), the decision form with its confirmation and the decision banner,
// and the clerk's 好差评 rating once the call is over.

import { get, post } from "./api.js";
import { $, el, say } from "./ui.js";

const MARKS = { complete: "齐全", missing: "缺失", unclear: "不清晰" };
const OUTCOMES = { approve: "通过", reject: "不予受理", supplement: "补正" };
const NEEDS_REASON = new Set(["reject", "supplement"]);
const BAD_SCORES = new Set(["dissatisfied", "very_dissatisfied"]);

const actionsUrl = (sessionId) => `/api/v1/sessions/${sessionId}/actions`;

export class ReviewPanel {
  constructor(sessionId, alertBox) {
    this.sessionId = sessionId;
    this.alertBox = alertBox;
    this.list = $("#checklist");
    this.editable = this.list.dataset.editable === "1";
    this.banner = $("#decision-banner");
    this.form = $("#decision-form");
    this.dialog = $("#decision-dialog");
    this.materials = [];
    this.current = new Map(); // material id → its latest mark
    this.decided = false;
    this.bindDecision();
  }

  /** Everything so far (on every join: marks made while away are not missed). */
  async load() {
    const data = await get(actionsUrl(this.sessionId));
    this.materials = data.materials;
    this.current = new Map(data.marks.map((m) => [m.material, m])); // later marks win
    this.list.replaceChildren(...this.materials.map((m) => this.item(m)));
    if (data.decision) this.setDecision(data.decision);
  }

  addMark(mark) {
    this.current.set(mark.material, mark);
    const node = this.list.querySelector(`li[data-material="${mark.material}"]`);
    const material = this.materials.find((m) => m.id === mark.material);
    if (node && material) node.replaceWith(this.item(material));
  }

  item(material) {
    const mark = this.current.get(material.id);
    const shown = mark
      ? `${mark.mark_name}${mark.comment ? `：${mark.comment}` : ""}`
      : "未标记";
    const node = el(
      "li",
      { "data-material": material.id, "data-mark": mark?.mark ?? "" },
      el("span", { class: "name" }, material.name, material.required ? null : el("span", { class: "hint" }, "（如有）")),
      " ",
      el("span", { class: `result mark-${mark?.mark ?? "none"}` }, shown),
    );
    if (!this.editable) return node;
    const comment = el("input", {
      maxlength: 500,
      placeholder: "说明（选填）",
      "aria-label": `${material.name} 说明`,
      value: mark?.comment ?? "",
    });
    const buttons = Object.entries(MARKS).map(([code, name]) => {
      const button = el(
        "button",
        { type: "button", class: "secondary small", "aria-pressed": String(mark?.mark === code), "data-mark": code },
        name,
      );
      button.addEventListener("click", () => this.mark(material, code, comment.value, node));
      return button;
    });
    node.append(el("div", { class: "marks", role: "group", "aria-label": material.name }, ...buttons), comment);
    return node;
  }

  async mark(material, code, comment, node) {
    for (const button of node.querySelectorAll("button")) button.disabled = true;
    try {
      const { mark } = await post(`/api/v1/sessions/${this.sessionId}/marks`, {
        material: material.id,
        mark: code,
        comment,
      });
      this.addMark(mark); // the push may come first or after: the same mark either way
    } catch (error) {
      say(this.alertBox, error.message);
      for (const button of node.querySelectorAll("button")) button.disabled = false;
    }
  }

  bindDecision() {
    if (!this.form) return;
    const alertBox = $("#decision-alert");
    let outcome = null;
    let reason = "";
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      outcome = this.form.querySelector('input[name="outcome"]:checked')?.value ?? null;
      reason = $("#decision-reason").value.trim();
      if (!outcome) return say(alertBox, "请选择审批结果。");
      if (NEEDS_REASON.has(outcome) && !reason) return say(alertBox, `${OUTCOMES[outcome]}须填写理由。`);
      say(alertBox, "");
      $("#decision-question").textContent =
        `确认审批决定：${OUTCOMES[outcome]}${reason ? `（理由：${reason}）` : ""}？提交后不能更改。`;
      this.dialog.showModal();
    });
    this.dialog.addEventListener("close", async () => {
      if (this.dialog.returnValue !== "confirm" || !outcome) return;
      try {
        const { decision } = await post(`/api/v1/sessions/${this.sessionId}/decision`, { outcome, reason });
        this.setDecision(decision);
      } catch (error) {
        say(alertBox, error.message);
      }
    });
  }

  setDecision(decision) {
    this.decided = true;
    this.banner.textContent = `已决定：${decision.outcome_name}${decision.reason ? `（${decision.reason}）` : ""}`;
    this.banner.dataset.outcome = decision.outcome;
    this.banner.hidden = false;
    if (this.form) this.form.hidden = true;
  }
}

/** The clerk's rating screen, shown to the applicant at the end of the call. */
export class RatingForm {
  constructor(sessionId) {
    this.sessionId = sessionId;
    this.form = $("#rating-form");
    this.done = $("#rating-done");
    if (!this.form) return;
    const reasonField = $("#rating-reason-field");
    this.form.addEventListener("change", () => {
      reasonField.hidden = !BAD_SCORES.has(this.score());
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  score() {
    return this.form.querySelector('input[name="score"]:checked')?.value ?? null;
  }

  /** Show the form, or what was already submitted. */
  async show() {
    if (!this.form) return;
    try {
      const { rating } = await get(actionsUrl(this.sessionId));
      if (rating) return this.thank(rating);
    } catch (error) {
      return say($("#rating-alert"), error.message);
    }
    this.form.hidden = false;
  }

  async submit() {
    const alertBox = $("#rating-alert");
    const score = this.score();
    const reason = $("#rating-reason").value.trim();
    if (!score) return say(alertBox, "请选择评价。");
    if (BAD_SCORES.has(score) && !reason) return say(alertBox, "请填写不满意的原因。");
    say(alertBox, "");
    try {
      const { rating } = await post(`/api/v1/sessions/${this.sessionId}/rating`, {
        score,
        comment: $("#rating-comment").value.trim(),
        reason: BAD_SCORES.has(score) ? reason : "",
      });
      this.thank(rating);
    } catch (error) {
      say(alertBox, error.message);
    }
  }

  thank(rating) {
    this.form.hidden = true;
    const followup = rating.followup
      ? `我们将于 ${rating.followup.due_date} 前${rating.followup.stage_name}。`
      : "";
    say(this.done, `已评价：${rating.score_name}。感谢您的评价！${followup}`);
    this.done.dataset.score = rating.score;
  }
}
