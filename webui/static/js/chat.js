// The session's text chat: a log of "chat_posted" messages and a form that sends one.

import { el } from "./ui.js";

function clock(iso) {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : at.toLocaleTimeString("zh-CN", { hour12: false });
}

export class Chat {
  constructor(log, form, me, send) {
    this.log = log;
    this.me = me;
    this.form = form;
    if (!form) return;
    const input = form.querySelector("input");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (text && send(text)) input.value = "";
    });
  }

  add(message) {
    const mine = message.sender === this.me;
    const item = el(
      "li",
      { class: mine ? "mine" : "", "data-sender": message.sender },
      el("span", { class: "meta" }, `${mine ? "我" : message.display_name} ${clock(message.at)}`),
      el("span", { class: "text" }, message.text),
    );
    this.log.append(item);
    this.log.scrollTop = this.log.scrollHeight;
  }

  /** The session's chat so far (sent on every join): replaces what is shown. */
  replace(messages) {
    this.log.replaceChildren();
    for (const message of messages) this.add(message);
  }

  enable(on) {
    if (!this.form) return;
    for (const control of this.form.elements) control.disabled = !on;
  }
}
