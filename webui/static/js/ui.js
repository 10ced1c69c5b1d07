// Small DOM helpers shared by the pages.

export const $ = (selector, root = document) => root.querySelector(selector);

/** An element with attributes and text or child nodes (text is never parsed as HTML). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.dataset[toCamel(name.slice(5))] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function toCamel(name) {
  return name.replace(/-([a-z])/g, (_m, c) => c.toUpperCase());
}

/** 75 → "01:15"; 3700 → "1:01:40". */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const two = (n) => String(n).padStart(2, "0");
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${two(m)}:${two(s % 60)}` : `${two(m)}:${two(s % 60)}`;
}

/** Show text in an alert paragraph, or hide it with an empty text. */
export function say(node, text) {
  if (!node) return;
  node.textContent = text ?? "";
  node.hidden = !text;
}

export const SOURCE_NAMES = { face: "人像", document: "高拍仪", audio: "声音" };
export const ROLE_NAMES = { clerk: "窗口人员", approver: "审批人员", auditor: "监察人员" };
