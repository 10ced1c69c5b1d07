// The case page's "导出证据包" button: start an export job, show its progress, then
// download the package (docs/api.md, evidence packages).
import { get, post } from "./api.js";

const POLL_MS = 500;

function show(panel, text, percent) {
  panel.querySelector(".export-status").textContent = text;
  const bar = panel.querySelector("progress");
  bar.hidden = percent === null;
  if (percent !== null) bar.value = percent;
}

async function follow(panel, caseNo, job) {
  const path = `/api/v1/cases/${encodeURIComponent(caseNo)}/exports/${job.id}`;
  while (job.state === "running") {
    show(panel, `正在生成证据包…… ${job.percent}%`, job.percent);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    job = (await get(path)).export;
  }
  if (job.state !== "done") {
    show(panel, `导出失败：${job.message ?? job.error}`, null);
    return;
  }
  show(panel, `证据包已生成：${job.files} 个文件，${job.bytes} 字节，SHA-256 ${job.package_sha256}`, 100);
  const link = panel.querySelector(".export-download");
  link.href = job.download;
  link.hidden = false;
  link.click();
}

function init() {
  const panel = document.getElementById("export");
  if (!panel) return;
  const button = panel.querySelector("button");
  button.addEventListener("click", async () => {
    button.disabled = true;
    panel.querySelector(".export-download").hidden = true;
    try {
      const started = await post(`/api/v1/cases/${encodeURIComponent(panel.dataset.case)}/exports`);
      await follow(panel, panel.dataset.case, started.export);
    } catch (error) {
      show(panel, `导出失败：${error.message}`, null);
    } finally {
      button.disabled = false;
    }
  });
}

init();
