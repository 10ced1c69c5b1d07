// The signalling socket (protocol v1, docs/protocol.md): one WebSocket per session.
// Every server message is dispatched as an event named by its type; "close" carries
// the close code.

export const CLOSE_REPLACED = 4000;
export const CLOSE_ENDED = 4001;
export const CLOSE_LOGIN_ENDED = 4002;
export const CLOSE_POLICY = 1008;

export class SignalClient extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.socket = null;
  }

  /** Open the socket and join with a token; resolves with the "joined" message. */
  join(token) {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.socket = socket;
      let joined = false;
      let refusal = null;
      socket.addEventListener("open", () => this.send("join", { token }));
      socket.addEventListener("message", (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        if (message.type === "joined") {
          joined = true;
          resolve(message);
        } else if (message.type === "error" && !joined) {
          refusal = message;
        }
        this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
      });
      socket.addEventListener("close", (event) => {
        if (!joined) {
          const error = new Error(refusal?.message ?? `连接已关闭（${event.code}）。`);
          error.code = refusal?.code ?? "closed";
          error.closeCode = event.code;
          reject(error);
        }
        this.dispatchEvent(new CustomEvent("close", { detail: { code: event.code, joined } }));
      });
    });
  }

  on(type, handler) {
    this.addEventListener(type, (event) => handler(event.detail));
  }

  send(type, fields = {}) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify({ v: 1, type, ...fields }));
    return true;
  }

  close() {
    this.socket?.close(1000);
  }
}
