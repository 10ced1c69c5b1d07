// What is wrong with this computer's own devices, kept on screen until it is put
// right: a source that could not be opened, a device that went away, a document camera
// (高拍仪) that stopped sending frames. Each line says what the others miss.

import { deviceError, watchFrames } from "./devices.js";
import { el } from "./ui.js";

const DEVICE_NAMES = { face: "摄像头", document: "高拍仪", audio: "麦克风" };
const CONSEQUENCE = {
  face: "对方看不到您的画面。",
  document: "审批人员看不到申请材料。",
  audio: "对方听不到您的声音。",
};

export class DeviceStatus {
  constructor(list) {
    this.list = list;
    this.items = new Map(); // key → text
    this.stops = [];
  }

  set(key, text) {
    if (text) this.items.set(key, text);
    else this.items.delete(key);
    this.list.replaceChildren(...[...this.items].map(([k, t]) => el("li", { "data-key": k }, t)));
    this.list.hidden = this.items.size === 0;
  }

  /** The whole page cannot use devices (insecure context, no permission to list). */
  unavailable(error) {
    this.set("devices", deviceError(error));
  }

  /** ``source`` could not be opened. */
  failed(source, error) {
    this.set(source, `${DEVICE_NAMES[source]}未能打开：${deviceError(error)}${CONSEQUENCE[source]}`);
  }

  /** Watch opened tracks: a device that ends, a document camera whose frames stop. */
  watch(tracks) {
    for (const [source, track] of tracks) {
      track.addEventListener("ended", () =>
        this.set(
          source,
          `${DEVICE_NAMES[source]}已断开（设备被拔出或出错），${CONSEQUENCE[source]}请检查连接后刷新页面重新加入。`,
        ),
      );
      if (source !== "document") continue;
      const stop = watchFrames(track, (seconds) =>
        this.set(
          "document-stalled",
          seconds
            ? `高拍仪已 ${seconds} 秒没有画面，审批人员看到的是静止画面。请检查高拍仪的连接线和电源，必要时重新插拔后刷新页面。`
            : "",
        ),
      );
      this.stops.push(stop);
    }
  }

  /** The call is over: stop watching, nothing to report any more. */
  stop() {
    for (const stop of this.stops) stop();
    this.stops = [];
    this.items.clear();
    this.set("", "");
  }
}
