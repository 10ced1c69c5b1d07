// 联审: the approver who accepted a live session invites another department (or one
// of its approvers by user name); they find the invitation in their queue.

import { post } from "./api.js";
import { $, say } from "./ui.js";

export function bindInvite(sessionId, notice) {
  const button = $("#invite");
  const dialog = $("#invite-dialog");
  if (!button || !dialog) return;
  const form = $("#invite-form");
  const alertBox = $("#invite-alert");
  button.addEventListener("click", () => {
    say(alertBox, "");
    dialog.showModal();
  });
  form.addEventListener("submit", async (event) => {
    if (event.submitter?.value !== "invite") return; // 取消 closes the dialog
    event.preventDefault();
    const select = $("#invite-department");
    const send = $("#invite-send");
    send.disabled = true;
    try {
      await post(`/api/v1/sessions/${sessionId}/invite`, {
        department: select.value,
        approver: $("#invite-approver").value.trim(),
      });
      dialog.close();
      say(notice, `已邀请${select.selectedOptions[0].textContent}联审，对方审批人员可在审办队列中加入。`);
    } catch (error) {
      say(alertBox, error.message);
    } finally {
      send.disabled = false;
    }
  });
}
