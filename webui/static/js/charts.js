// Small SVG charts drawn in the page (no library): vertical bars over time with an
// optional overlay series, lines over time, horizontal bars per group.

const NS = "http://www.w3.org/2000/svg";
const W = 420;
const H = 220;
const PAD = { left: 44, right: 12, top: 12, bottom: 38 };
export const COLOURS = { primary: "#1c64b2", alert: "#b42318", second: "#b54708", good: "#0f7b3f", grid: "#d9e2ec", text: "#616e7c" };

function node(tag, attributes = {}, text) {
  const element = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function reset(svg, width = W, height = H) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
}

/** A rounded-up scale maximum with about four grid steps. */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function axes(svg, max, labels, format) {
  const plotH = H - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i += 1) {
    const y = PAD.top + plotH - (plotH * i) / 4;
    svg.append(node("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, stroke: COLOURS.grid }));
    svg.append(node("text", { x: PAD.left - 4, y: y + 4, "text-anchor": "end", "font-size": 10, fill: COLOURS.text }, format((max * i) / 4)));
  }
  const every = Math.max(1, Math.ceil(labels.length / 8));
  const slot = (W - PAD.left - PAD.right) / Math.max(1, labels.length);
  labels.forEach((label, i) => {
    if (i % every) return;
    const x = PAD.left + slot * (i + 0.5);
    svg.append(node("text", { x, y: H - PAD.bottom + 14, "text-anchor": "middle", "font-size": 10, fill: COLOURS.text }, label));
  });
  return slot;
}

function legend(svg, items) {
  let x = PAD.left;
  for (const [name, colour] of items) {
    svg.append(node("rect", { x, y: H - 14, width: 10, height: 10, fill: colour }));
    svg.append(node("text", { x: x + 14, y: H - 5, "font-size": 11, fill: COLOURS.text }, name));
    x += 24 + name.length * 12;
  }
}

/** Bars per label (series[0]) with narrower overlay bars (series[1]). */
export function bars(svg, labels, series) {
  reset(svg);
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const slot = axes(svg, max, labels, (v) => String(Math.round(v)));
  const plotH = H - PAD.top - PAD.bottom;
  series.forEach((s, k) => {
    const width = slot * (k === 0 ? 0.7 : 0.35);
    s.values.forEach((value, i) => {
      if (!value) return;
      const height = (plotH * value) / max;
      const x = PAD.left + slot * (i + 0.5) - width / 2;
      const bar = node("rect", { x, y: PAD.top + plotH - height, width, height, fill: s.colour, "data-series": s.name });
      bar.append(node("title", {}, `${labels[i]} ${s.name}：${value}`));
      svg.append(bar);
    });
  });
  legend(svg, series.map((s) => [s.name, s.colour]));
}

/** One line per series over the labels; gaps where a value is null. */
export function lines(svg, labels, series, format) {
  reset(svg);
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null))));
  const slot = axes(svg, max, labels, format);
  const plotH = H - PAD.top - PAD.bottom;
  for (const s of series) {
    let path = "";
    s.values.forEach((value, i) => {
      if (value === null) return;
      const x = PAD.left + slot * (i + 0.5);
      const y = PAD.top + plotH - (plotH * value) / max;
      path += `${path && s.values[i - 1] !== null ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
      const dot = node("circle", { cx: x, cy: y, r: 3.5, fill: s.colour, "data-series": s.name });
      dot.append(node("title", {}, `${labels[i]} ${s.name}：${format(value)}`));
      svg.append(dot);
    });
    if (path) svg.append(node("path", { d: path, fill: "none", stroke: s.colour, "stroke-width": 2.5 }));
  }
  legend(svg, series.map((s) => [s.name, s.colour]));
}

/** Horizontal bars, one per group, values 0..1 shown as percentages. */
export function shares(svg, items, colour) {
  const rowH = 26;
  const height = Math.max(H, PAD.top + rowH * items.length + 8);
  reset(svg, W, height);
  const left = 150;
  const plotW = W - left - 48;
  items.forEach((item, i) => {
    const y = PAD.top + rowH * i;
    const name = item.name.length > 11 ? `${item.name.slice(0, 10)}…` : item.name;
    svg.append(node("text", { x: left - 6, y: y + 15, "text-anchor": "end", "font-size": 11, fill: COLOURS.text }, name));
    svg.append(node("rect", { x: left, y: y + 3, width: plotW, height: 16, fill: COLOURS.grid }));
    if (item.value !== null) {
      const bar = node("rect", { x: left, y: y + 3, width: plotW * item.value, height: 16, fill: colour, "data-series": "rate" });
      bar.append(node("title", {}, `${item.name}：${(item.value * 100).toFixed(1)}%`));
      svg.append(bar);
    }
    const label = item.value === null ? "无评价" : `${(item.value * 100).toFixed(1)}%`;
    svg.append(node("text", { x: left + plotW + 4, y: y + 15, "font-size": 11, fill: COLOURS.text }, label));
  });
}
