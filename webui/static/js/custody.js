// The case page's evidence custody card (auditors and admins): the integrity check
// (完整性校验) and its verdict, and placing or lifting a legal hold with a reason.

import { post } from "./api.js";
import { $, el, say } from "./ui.js";

const card = $("#custody");
const caseUrl = `/api/v1/cases/${encodeURIComponent(card.dataset.case)}`;
const errorBox = $("#custody-error");

const chinaTime = (iso) =>
  new Date(iso).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false });

function problemItem(problem) {
  return el(
    "li",
    { "data-code": problem.code },
    `${problem.subject}：${problem.message}`,
    problem.detail ? el("span", { class: "detail" }, `（${problem.detail}）`) : null,
  );
}

function purgedItem(file) {
  const pending = file.still_present ? "，删除尚未完成" : "";
  return el(
    "li",
    { "data-code": "evidence_purged" },
    `${file.role_name} ${file.sha256.slice(0, 16)}…：${file.message}`,
    el("span", { class: "detail" }, `（保存至 ${file.retention_until}${pending}）`),
  );
}

function showResult(result) {
  const box = $("#integrity-result");
  const verdict = el("p", { class: `integrity-verdict ${result.ok ? "ok" : "bad"}` }, result.summary);
  const cp = result.checkpoint;
  const scope = el(
    "p",
    { class: "hint" },
    `已校验 ${result.files} 个证据文件、${result.events} 条案件事件` +
      (cp ? `，对照签名检查点（日志前 ${cp.tree_size} 条，${chinaTime(cp.time)} 签署）。` : "。"),
  );
  const parts = [verdict, scope];
  if (result.problems.length) {
    parts.push(el("ol", { class: "integrity-problems", id: "integrity-problems" }, ...result.problems.map(problemItem)));
  }
  if (result.purged.length) {
    parts.push(el("h3", {}, `已按保存期限删除的文件（${result.purged.length} 个，不属于问题）`));
    parts.push(el("ul", { class: "integrity-problems", id: "integrity-purged" }, ...result.purged.map(purgedItem)));
  }
  box.replaceChildren(...parts);
  box.hidden = false;
}

const runButton = $("#integrity-run");
runButton.addEventListener("click", async () => {
  runButton.disabled = true;
  runButton.textContent = "正在校验…";
  say(errorBox, "");
  try {
    const data = await post(`${caseUrl}/integrity`);
    showResult(data.integrity);
  } catch (error) {
    say(errorBox, error.message);
  } finally {
    runButton.disabled = false;
    runButton.textContent = "完整性校验";
  }
});

const dialog = $("#hold-dialog");
const openButton = $("#hold-open");
const holdError = $("#hold-error");
openButton.addEventListener("click", () => {
  say(holdError, "");
  dialog.showModal();
  $("#hold-reason").focus();
});
$("#hold-cancel").addEventListener("click", () => dialog.close());
$("#hold-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = $("#hold-reason").value.trim();
  if (!reason) {
    say(holdError, "请填写理由。");
    return;
  }
  const path = openButton.dataset.action === "lift" ? "legal-hold/lift" : "legal-hold";
  const confirm = $("#hold-confirm");
  confirm.disabled = true;
  try {
    await post(`${caseUrl}/${path}`, { reason });
    location.reload();
  } catch (error) {
    say(holdError, error.message);
    confirm.disabled = false;
  }
});
