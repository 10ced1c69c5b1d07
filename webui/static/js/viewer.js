// Zoom (wheel or buttons), pan (drag) and rotate (90° steps) of one video inside its
// frame, for reading documents on the document-camera stream.

const MIN_ZOOM = 1;
const MAX_ZOOM = 8;
const STEP = 1.25;

export class Viewer {
  constructor(tools, zoomLabel) {
    this.tools = tools;
    this.zoomLabel = zoomLabel;
    this.video = null;
    this.frame = null;
    this.drag = null;
    this.state = { zoom: 1, x: 0, y: 0, angle: 0 };
    tools.addEventListener("click", (event) => {
      const action = event.target.closest("[data-view]")?.dataset.view;
      if (action === "zoom-in") this.zoomBy(STEP);
      else if (action === "zoom-out") this.zoomBy(1 / STEP);
      else if (action === "rotate-left") this.rotate(-90);
      else if (action === "rotate-right") this.rotate(90);
      else if (action === "reset") this.reset();
    });
    this.onWheel = (event) => {
      event.preventDefault();
      const box = this.frame.getBoundingClientRect();
      const point = {
        x: event.clientX - box.left - box.width / 2,
        y: event.clientY - box.top - box.height / 2,
      };
      this.zoomBy(Math.exp(-event.deltaY * 0.0015), point);
    };
    this.onDown = (event) => {
      if (this.state.zoom <= MIN_ZOOM) return;
      this.drag = { id: event.pointerId, x: event.clientX, y: event.clientY };
      this.frame.setPointerCapture(event.pointerId);
      this.frame.classList.add("dragging");
    };
    this.onMove = (event) => {
      if (this.drag?.id !== event.pointerId) return;
      this.state.x += event.clientX - this.drag.x;
      this.state.y += event.clientY - this.drag.y;
      this.drag.x = event.clientX;
      this.drag.y = event.clientY;
      this.apply();
    };
    this.onUp = (event) => {
      if (this.drag?.id !== event.pointerId) return;
      this.drag = null;
      this.frame.classList.remove("dragging");
    };
  }

  /** Control ``video`` inside ``frame``, or nothing (null). */
  attach(video, frame) {
    if (video === this.video) return;
    this.detach();
    this.tools.hidden = !video;
    if (!video) return;
    this.video = video;
    this.frame = frame;
    frame.classList.add("zoomable");
    frame.addEventListener("wheel", this.onWheel, { passive: false });
    frame.addEventListener("pointerdown", this.onDown);
    frame.addEventListener("pointermove", this.onMove);
    frame.addEventListener("pointerup", this.onUp);
    frame.addEventListener("pointercancel", this.onUp);
    this.reset();
  }

  detach() {
    if (!this.video) return;
    this.video.style.transform = "";
    const frame = this.frame;
    frame.classList.remove("zoomable", "dragging");
    frame.removeEventListener("wheel", this.onWheel);
    frame.removeEventListener("pointerdown", this.onDown);
    frame.removeEventListener("pointermove", this.onMove);
    frame.removeEventListener("pointerup", this.onUp);
    frame.removeEventListener("pointercancel", this.onUp);
    this.video = null;
    this.frame = null;
  }

  reset() {
    this.state = { zoom: 1, x: 0, y: 0, angle: 0 };
    this.apply();
  }

  zoomBy(factor, point = { x: 0, y: 0 }) {
    const before = this.state.zoom;
    const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, before * factor));
    // keep the point under the pointer where it is
    this.state.x = point.x - ((point.x - this.state.x) * zoom) / before;
    this.state.y = point.y - ((point.y - this.state.y) * zoom) / before;
    this.state.zoom = zoom;
    if (zoom === MIN_ZOOM) {
      this.state.x = 0;
      this.state.y = 0;
    }
    this.apply();
  }

  rotate(degrees) {
    this.state.angle = (this.state.angle + degrees + 360) % 360;
    this.apply();
  }

  apply() {
    if (this.zoomLabel) this.zoomLabel.textContent = `${Math.round(this.state.zoom * 100)}%`;
    if (!this.video) return;
    const { zoom, x, y, angle } = this.state;
    // A quarter turn puts the picture's width across the frame's height: shrink to fit.
    const box = this.frame.getBoundingClientRect();
    const sideways = angle % 180 !== 0 && box.width && box.height;
    const fit = sideways ? Math.min(box.width / box.height, box.height / box.width) : 1;
    this.video.style.transform =
      `translate(${x}px, ${y}px) rotate(${angle}deg) scale(${zoom * fit})`;
    this.video.dataset.zoom = zoom.toFixed(2);
    this.video.dataset.angle = String(angle);
  }
}
