// The JSON API as the pages call it: same-origin cookie, CSRF header on every POST.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (method === "POST") {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRF-Token"] = csrfToken();
    init.body = JSON.stringify(body ?? {});
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "网络连接失败，请检查网络后重试。");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data?.error ?? {};
    throw new ApiError(
      response.status,
      error.code ?? `http_${response.status}`,
      error.message ?? `请求未能完成（${response.status}）。`,
    );
  }
  return data;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);

/** ws:// or wss:// URL of a path on this site. */
export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}
