// The book by rate level as an SVG: a bar per level (the part in the funding set dark, the rest
// light), the cumulative amount of live bids as a step line, the funding line at the listing's
// amount, and the marginal rate where they meet.

const NS = "http://www.w3.org/2000/svg";
const PAD = { left: 52, right: 12, top: 22, bottom: 38 };
const MAX_BANDS = 48;
const MIN_SLOT_PX = 7;

function svg(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Levels grouped into bands of equal rate width when there are too many for the width.
function bands(levels, fit) {
  const most = Math.min(MAX_BANDS, fit);
  if (levels.length <= most) return levels.map((l) => ({ ...l, from: l.rate, to: l.rate }));
  const lo = levels[0].rate;
  const hi = levels[levels.length - 1].rate;
  const width = Math.ceil((hi - lo + 1) / most);
  const out = new Map();
  for (const l of levels) {
    const index = Math.floor((l.rate - lo) / width);
    const band = out.get(index) || {
      rate: lo + index * width, from: lo + index * width, to: lo + (index + 1) * width - 1,
      amount: 0, allocated: 0, live: 0, count: 0,
    };
    band.amount += l.amount;
    band.allocated += l.allocated;
    band.live += l.live;
    band.count += l.count;
    out.set(index, band);
  }
  return [...out.values()];
}

// A round tick step (1, 2, 2.5 or 5 times a power of ten) so that four steps cover `most`.
function niceStep(most) {
  const raw = Math.max(most, 1) / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
}

function compact(minor) {
  const major = minor / 100;
  if (major >= 1e6) return `${+(major / 1e6).toFixed(1)}M`;
  if (major >= 1e3) return `${+(major / 1e3).toFixed(1)}k`;
  return major.toFixed(0);
}

function pct(bps) {
  return `${(bps / 100).toFixed(bps % 100 === 0 ? 0 : 2)}%`;
}

// book: {levels: [{rate, amount, allocated, live, count}] ascending, amount, marginal}
// Drawn at the container's own width, so the text keeps its size on a phone.
export function drawBook(container, book) {
  const W = Math.max(300, container.clientWidth || 640);
  const H = W < 520 ? 240 : 300;
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Book by rate level",
    "data-levels": book.levels.length,
  });
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const groups = bands(book.levels, Math.max(8, Math.floor(plotW / MIN_SLOT_PX)));
  let cumulative = 0;
  const steps = groups.map((g) => (cumulative += g.live));
  const step = niceStep(Math.max(book.amount, cumulative, ...groups.map((g) => g.amount)) * 1.05);
  const top = step * 4;
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const slot = plotW / Math.max(groups.length, 1);
  const x = (i) => PAD.left + i * slot;

  for (let t = 0; t <= 4; t++) {
    const v = step * t;
    root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: PAD.left - 8, y: y(v) + 4, class: "tick", "text-anchor": "end" },
      compact(v)));
  }
  if (!groups.length) {
    root.append(svg("text", { x: PAD.left + plotW / 2, y: PAD.top + plotH / 2, class: "empty",
      "text-anchor": "middle" }, "No bids yet"));
  }
  const every = Math.ceil(groups.length / Math.max(3, Math.floor(plotW / 56)));
  groups.forEach((g, i) => {
    const bw = Math.max(1, slot * 0.72);
    const bx = x(i) + (slot - bw) / 2;
    const title = `${pct(g.from)}${g.to !== g.from ? `–${pct(g.to)}` : ""}: ${compact(g.amount)}`
      + ` in ${g.count} bid${g.count === 1 ? "" : "s"}, ${compact(g.allocated)} in the funding set`;
    const bar = svg("g", { class: "level", "data-rate": g.rate });
    bar.append(svg("title", {}, title));
    bar.append(svg("rect", { x: bx, y: y(g.amount), width: bw, height: y(0) - y(g.amount),
      class: "out" }));
    bar.append(svg("rect", { x: bx, y: y(g.allocated), width: bw,
      height: y(0) - y(g.allocated), class: "in" }));
    root.append(bar);
    if (i % every === 0) {
      root.append(svg("text", { x: x(i) + slot / 2, y: H - PAD.bottom + 16, class: "tick",
        "text-anchor": "middle" }, pct(g.from)));
    }
  });
  if (groups.length) {
    let path = `M ${x(0)} ${y(0)}`;
    steps.forEach((v, i) => { path += ` L ${x(i)} ${y(v)} L ${x(i + 1)} ${y(v)}`; });
    root.append(svg("path", { d: path, class: "cumulative" }));
  }
  root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(book.amount),
    y2: y(book.amount), class: "funding" }));
  root.append(svg("text", { x: W - PAD.right - 4, y: y(book.amount) + 14,
    class: "label funding-label", "text-anchor": "end" }, `amount ${compact(book.amount)}`));
  if (book.marginal !== null) {
    const i = groups.findIndex((g) => book.marginal >= g.from && book.marginal <= g.to);
    if (i >= 0) {
      const mx = x(i) + slot / 2;
      root.append(svg("line", { x1: mx, x2: mx, y1: PAD.top, y2: y(0), class: "marginal" }));
      const anchor = mx > W * 0.7 ? "end" : "start";
      root.append(svg("text", { x: mx + (anchor === "end" ? -6 : 6), y: PAD.top + 10,
        class: "label marginal-label", "text-anchor": anchor }, `marginal ${pct(book.marginal)}`));
    }
  }
  root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0), class: "axis" }));
  root.append(svg("text", { x: PAD.left + plotW / 2, y: H - 4, class: "tick",
    "text-anchor": "middle" }, "rate"));
  container.replaceChildren(root);
}
