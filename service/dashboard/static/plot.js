/* caviar dashboard: a small SVG plotting module (no dependencies).
 *
 * Scales: "linear" (alias "float"), "log", "one_minus_log" (a value β drawn at -log10(1 − β), so
 * 1 − β is on a log axis and β grows to the right; ticks are labelled as β values), "int", "int_log",
 * and "choice" (categorical; alias "categorical").
 *
 * Charts: Plot.scatter (objective against a hyperparameter: points coloured by round, best as a star,
 * pruned/failed faint, a vertical band per round's region), Plot.regions (each round's region as a
 * horizontal band at that round's height), Plot.lines (learning curves, optional log y, vertical markers
 * labelled key=value), Plot.parallel (parallel coordinates), Plot.bars (horizontal bars).
 * Hover tooltips are SVG <title> children. Every chart is drawn into a container element, replacing its
 * contents; nothing uses inline styles, so the page's Content-Security-Policy holds.
 */
"use strict";

(function (global) {
  const NS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v !== undefined && v !== null) node.setAttribute(k, String(v));
      }
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function title(node, text) {
    if (text) el("title", null, node).textContent = text;
    return node;
  }

  function text(parent, x, y, str, attrs) {
    const t = el("text", Object.assign({ x: round2(x), y: round2(y) }, attrs || {}), parent);
    t.textContent = str;
    return t;
  }

  function round2(v) {
    return Math.round(v * 100) / 100;
  }

  function finite(v) {
    return typeof v === "number" && Number.isFinite(v);
  }

  /* ---- number formatting ---------------------------------------------------------------------- */

  function fmt(v, digits) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
    const a = Math.abs(v);
    const d = digits || 4;
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return Number(v.toPrecision(d)).toExponential().replace("e+", "e");
    return String(Number(v.toPrecision(d)));
  }

  function tickLabel(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a < 1e-3 || a >= 1e5) {
      const e = Math.floor(Math.log10(a) + 1e-9);
      const m = v / Math.pow(10, e);
      const mm = Number(m.toPrecision(2));
      return (mm === 1 ? "" : mm + "×") + "1e" + e;
    }
    return String(Number(v.toPrecision(6)));
  }

  /* ---- colours -------------------------------------------------------------------------------- */

  // Viridis-ish stops: dark blue -> teal -> green -> yellow.
  const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

  function ramp(t) {
    const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
    const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
    const f = x - i;
    const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * f));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  /** Colour of round `index` of `count` rounds. */
  function roundColour(index, count) {
    const n = Math.max(count, 1);
    return ramp(0.1 + 0.75 * (n <= 1 ? 0 : index / (n - 1)));
  }

  const SERIES = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];

  function seriesColour(i) {
    return SERIES[((i % SERIES.length) + SERIES.length) % SERIES.length];
  }

  /* ---- scales --------------------------------------------------------------------------------- */

  function niceStep(span, n) {
    const raw = span / Math.max(n, 1);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / p;
    return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
  }

  function linearTicks(lo, hi, n, integer) {
    if (!(hi > lo)) return [lo];
    let step = niceStep(hi - lo, n);
    if (integer) step = Math.max(1, Math.round(step));
    const out = [];
    const start = Math.ceil(lo / step - 1e-9) * step;
    for (let v = start; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }

  function logTicks(lo, hi, n, integer) {
    if (!(lo > 0) || !(hi > lo)) return [lo];
    const e0 = Math.floor(Math.log10(lo) + 1e-9);
    const e1 = Math.ceil(Math.log10(hi) - 1e-9);
    const decades = e1 - e0;
    let subs = [1];
    if (decades <= 2) subs = [1, 2, 5];
    if ((hi / lo) < 4) subs = [1, 1.5, 2, 3, 5, 7];
    let out = [];
    const every = Math.max(1, Math.ceil(decades / Math.max(n, 1)));
    for (let e = e0; e <= e1; e += 1) {
      if (subs.length === 1 && (e - e0) % every !== 0) continue;
      for (const s of subs) {
        const v = Number((s * Math.pow(10, e)).toPrecision(6));
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
      }
    }
    if (integer) out = Array.from(new Set(out.filter((v) => v >= 1).map((v) => Math.round(v))));
    if (out.length < 2) out = [lo, hi].map((v) => (integer ? Math.round(v) : Number(v.toPrecision(3))));
    return out;
  }

  function oneMinusTicks(lo, hi) {
    // lo, hi are β values; ticks at β = 1 − s·10^e.
    const a = 1 - hi;
    const b = 1 - lo;
    if (!(a > 0) || !(b > a)) return [lo, hi];
    const e0 = Math.floor(Math.log10(a) + 1e-9);
    const e1 = Math.ceil(Math.log10(b) - 1e-9);
    const subs = e1 - e0 <= 1 ? [1, 2, 5] : [1];
    const out = [];
    for (let e = e0; e <= e1; e += 1) {
      for (const s of subs) {
        const d = s * Math.pow(10, e);
        if (d >= a * (1 - 1e-9) && d <= b * (1 + 1e-9)) out.push(Number((1 - d).toPrecision(8)));
      }
    }
    return out.length >= 2 ? out : [lo, hi];
  }

  /**
   * A scale mapping a value to a pixel position.
   * @param {string} kind  linear|float|log|one_minus_log|int|int_log|choice|categorical
   * @param {Array} domain [low, high] (numbers) or the list of choices
   * @param {Array} range  [pixel at low, pixel at high]
   */
  function scale(kind, domain, range) {
    kind = kind === "float" ? "linear" : kind === "categorical" ? "choice" : kind;
    const [r0, r1] = range;
    if (kind === "choice") {
      const choices = (domain || []).map(String);
      const n = Math.max(choices.length, 1);
      const bw = (r1 - r0) / n;
      const s = {
        kind, choices, bandwidth: Math.abs(bw), domain: choices,
        map: (v) => {
          const i = choices.indexOf(String(v));
          return r0 + (i < 0 ? 0 : i + 0.5) * bw;
        },
        ticks: () => choices.slice(),
        label: (v) => String(v),
        contains: (v) => choices.indexOf(String(v)) >= 0,
      };
      return s;
    }
    let [lo, hi] = domain;
    if (!finite(lo) || !finite(hi)) { lo = 0; hi = 1; }
    if (lo > hi) [lo, hi] = [hi, lo];
    let fwd;
    if (kind === "log" || kind === "int_log") {
      if (!(lo > 0)) lo = hi > 0 ? hi / 1000 : 1e-3;
      if (!(hi > lo)) { lo /= 2; hi = hi > 0 ? hi * 2 : 1; }
      fwd = (v) => Math.log10(Math.max(v, 1e-300));
    } else if (kind === "one_minus_log") {
      if (!(hi < 1)) hi = 1 - 1e-6;
      if (!(hi > lo)) lo = 1 - (1 - hi) * 4;
      fwd = (v) => -Math.log10(Math.max(1 - v, 1e-300));
    } else {
      if (!(hi > lo)) { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
      fwd = (v) => v;
    }
    const f0 = fwd(lo);
    const f1 = fwd(hi);
    const map = (v) => r0 + ((fwd(v) - f0) / (f1 - f0 || 1)) * (r1 - r0);
    const integer = kind === "int" || kind === "int_log";
    const ticks = (n) => {
      const want = n || 5;
      if (kind === "log" || kind === "int_log") return logTicks(lo, hi, want, integer);
      if (kind === "one_minus_log") return oneMinusTicks(lo, hi);
      return linearTicks(lo, hi, want, integer);
    };
    return {
      kind, domain: [lo, hi], map, ticks, label: tickLabel,
      contains: (v) => finite(v) && v >= lo && v <= hi && (kind !== "log" || v > 0),
    };
  }

  /** Domain [lo, hi] padded a little on the scale's own axis. */
  function padded(kind, lo, hi, frac) {
    const f = frac === undefined ? 0.05 : frac;
    if (!finite(lo) || !finite(hi)) return [lo, hi];
    if (kind === "log" || kind === "int_log") {
      if (!(lo > 0)) return [lo, hi];
      const a = Math.log10(lo);
      const b = Math.log10(hi);
      const d = (b - a || 1) * f;
      return [Math.pow(10, a - d), Math.pow(10, b + d)];
    }
    if (kind === "one_minus_log") {
      if (!(hi < 1)) return [lo, hi];
      const a = -Math.log10(1 - lo);
      const b = -Math.log10(1 - hi);
      const d = (b - a || 1) * f;
      return [1 - Math.pow(10, -(a - d)), 1 - Math.pow(10, -(b + d))];
    }
    const d = (hi - lo || Math.abs(lo) || 1) * f;
    return [lo - d, hi + d];
  }

  function extent(values) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (finite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    }
    return lo <= hi ? [lo, hi] : [NaN, NaN];
  }

  /* ---- frame: an SVG with margins, axes and grid ---------------------------------------------- */

  /** The container's inner width in pixels (so text keeps its size), or a default when it has none. */
  function fitWidth(container, min, fallback) {
    const w = container && container.clientWidth;
    if (!w) return fallback;
    const cs = window.getComputedStyle(container);
    const inner = w - (parseFloat(cs.paddingLeft) || 0) - (parseFloat(cs.paddingRight) || 0);
    return Math.max(min, Math.floor(inner));
  }

  function frame(container, opts) {
    const width = opts.width || fitWidth(container, opts.minWidth || 300, opts.defaultWidth || 440);
    const height = opts.height || 280;
    const m = Object.assign({ top: 14, right: 14, bottom: 42, left: 58 }, opts.margin || {});
    container.textContent = "";
    const svg = el("svg", {
      viewBox: `0 0 ${width} ${height}`, width, height, class: "plot " + (opts.cls || ""),
      role: "img", "aria-label": opts.label || "", preserveAspectRatio: "xMidYMid meet",
    }, container);
    if (opts.testid) svg.setAttribute("data-testid", opts.testid);
    if (opts.label) title(svg, opts.label);
    const inner = { x0: m.left, x1: width - m.right, y0: height - m.bottom, y1: m.top };
    const clipId = "clip" + Math.random().toString(36).slice(2, 10);
    const defs = el("defs", null, svg);
    const clip = el("clipPath", { id: clipId }, defs);
    el("rect", { x: inner.x0, y: inner.y1, width: inner.x1 - inner.x0, height: inner.y0 - inner.y1 }, clip);
    const grid = el("g", { class: "grid" }, svg);
    const axes = el("g", { class: "axes" }, svg);
    const body = el("g", { class: "body", "clip-path": `url(#${clipId})` }, svg);
    const over = el("g", { class: "over" }, svg);
    return { svg, width, height, inner, grid, axes, body, over };
  }

  function xAxis(f, sx, label, opts) {
    const { inner } = f;
    el("line", { x1: inner.x0, x2: inner.x1, y1: inner.y0, y2: inner.y0, class: "axis-line" }, f.axes);
    const ticks = sx.ticks((opts && opts.ticks) || 6);
    const rotate = sx.kind === "choice" && ticks.some((t) => String(t).length > 6) && ticks.length > 3;
    for (const t of ticks) {
      const x = sx.map(t);
      if (!finite(x) || x < inner.x0 - 0.5 || x > inner.x1 + 0.5) continue;
      if (sx.kind !== "choice") {
        el("line", { x1: round2(x), x2: round2(x), y1: inner.y0, y2: inner.y1, class: "grid-line" }, f.grid);
      }
      el("line", { x1: round2(x), x2: round2(x), y1: inner.y0, y2: inner.y0 + 4, class: "tick" }, f.axes);
      const t2 = text(f.axes, x, inner.y0 + 15, sx.label(t), { class: "tick-label", "text-anchor": "middle" });
      if (rotate) {
        t2.setAttribute("text-anchor", "end");
        t2.setAttribute("transform", `rotate(-30 ${round2(x)} ${inner.y0 + 12})`);
      }
    }
    if (label) text(f.axes, (inner.x0 + inner.x1) / 2, f.height - 6, label, { class: "axis-label", "text-anchor": "middle" });
  }

  function yAxis(f, sy, label, opts) {
    const { inner } = f;
    el("line", { x1: inner.x0, x2: inner.x0, y1: inner.y0, y2: inner.y1, class: "axis-line" }, f.axes);
    const ticks = sy.ticks((opts && opts.ticks) || 5);
    for (const t of ticks) {
      const y = sy.map(t);
      if (!finite(y) || y > inner.y0 + 0.5 || y < inner.y1 - 0.5) continue;
      if (sy.kind !== "choice") {
        el("line", { x1: inner.x0, x2: inner.x1, y1: round2(y), y2: round2(y), class: "grid-line" }, f.grid);
      }
      el("line", { x1: inner.x0 - 4, x2: inner.x0, y1: round2(y), y2: round2(y), class: "tick" }, f.axes);
      text(f.axes, inner.x0 - 6, y + 3.5, sy.label(t), { class: "tick-label", "text-anchor": "end" });
    }
    if (label) {
      const cy = (inner.y0 + inner.y1) / 2;
      text(f.axes, 12, cy, label, { class: "axis-label", "text-anchor": "middle", transform: `rotate(-90 12 ${round2(cy)})` });
    }
  }

  function starPath(cx, cy, r) {
    const pts = [];
    for (let i = 0; i < 10; i += 1) {
      const a = -Math.PI / 2 + (i * Math.PI) / 5;
      const rr = i % 2 === 0 ? r : r * 0.45;
      pts.push(`${round2(cx + rr * Math.cos(a))},${round2(cy + rr * Math.sin(a))}`);
    }
    return "M" + pts.join("L") + "Z";
  }

  function crossPath(cx, cy, r) {
    return `M${round2(cx - r)},${round2(cy - r)}L${round2(cx + r)},${round2(cy + r)}` +
      `M${round2(cx - r)},${round2(cy + r)}L${round2(cx + r)},${round2(cy - r)}`;
  }

  /** Deterministic jitter in [-0.5, 0.5) for categorical axes. */
  function jitter(i) {
    return ((i * 7919) % 11) / 10 - 0.5;
  }

  function legend(f, items) {
    // items: [{label, colour, shape: "dot"|"star"|"line"}]; drawn along the top right.
    let x = f.inner.x1;
    const y = f.inner.y1 + 8;
    const g = el("g", { class: "legend" }, f.over);
    for (let i = items.length - 1; i >= 0; i -= 1) {
      const it = items[i];
      const w = 14 + 6.2 * String(it.label).length;
      x -= w;
      if (it.shape === "star") el("path", { d: starPath(x + 4, y - 3, 5), class: "star" }, g);
      else if (it.shape === "line" || it.shape === "dashed") el("line", { x1: x - 2, x2: x + 9, y1: y - 3, y2: y - 3, stroke: it.colour, class: "legend-line" + (it.shape === "dashed" ? " dashed" : "") }, g);
      else el("circle", { cx: x + 4, cy: y - 3, r: 3.5, fill: it.colour, class: "legend-dot" }, g);
      text(g, x + 11, y, it.label, { class: "legend-label" });
    }
  }

  function axisLabel(name, kind) {
    return kind === "one_minus_log" ? `${name} (1 − ${name} on a log axis)` : `${name} (${kind})`;
  }

  /* ---- scatter: the objective against one hyperparameter -------------------------------------- */

  /**
   * @param {Element} container
   * @param {object} o  {dim: {name, kind, low, high, choices}, points: [{id, round, status, params, value}],
   *   rounds: [{index, region}], objective, best: id, logY, roundCount, bands: bool, onClick(point)}
   */
  function scatter(container, o) {
    const dim = o.dim;
    const kind = dim.kind;
    const f = frame(container, { width: o.width, height: o.height || 290, cls: "scatter", testid: o.testid, label: `${o.objective} against ${dim.name}` });
    f.svg.setAttribute("data-dim", dim.name);
    const pts = o.points || [];
    const good = pts.filter((p) => finite(p.value));
    let sx;
    if (kind === "choice") {
      sx = scale("choice", dim.choices || Array.from(new Set(pts.map((p) => p.params[dim.name]))), [f.inner.x0, f.inner.x1]);
    } else {
      let lo = dim.low;
      let hi = dim.high;
      if (!finite(lo) || !finite(hi)) [lo, hi] = extent(pts.map((p) => p.params[dim.name]));
      sx = scale(kind, padded(kind, lo, hi, 0.03), [f.inner.x0, f.inner.x1]);
    }
    const ys = good.map((p) => p.value);
    let [ylo, yhi] = extent(ys);
    if (!finite(ylo)) { ylo = 0; yhi = 1; }
    const logY = !!o.logY && ylo > 0;
    const ykind = logY ? "log" : "linear";
    const sy = scale(ykind, padded(ykind, ylo, yhi, 0.06), [f.inner.y0, f.inner.y1]);
    xAxis(f, sx, axisLabel(dim.name, kind));
    yAxis(f, sy, o.objective);
    const nRounds = o.roundCount || Math.max(1, ...(o.rounds || []).map((r) => r.index + 1), ...pts.map((p) => (p.round || 0) + 1));

    // Regions as vertical bands, widest (round 0) at the back.
    if (o.bands !== false) {
      const bandG = el("g", { class: "bands" }, f.body);
      for (const r of o.rounds || []) {
        const b = (r.region || {})[dim.name];
        if (!Array.isArray(b)) continue;
        const colour = roundColour(r.index, nRounds);
        if (kind === "choice") {
          // a round that keeps every choice narrows nothing: no band (it would only tint the panel)
          if (sx.choices.every((c) => b.map(String).includes(c))) continue;
          for (const c of b) {
            if (!sx.contains(c)) continue;
            const cx = sx.map(c);
            title(el("rect", { x: round2(cx - sx.bandwidth * 0.4), width: round2(sx.bandwidth * 0.8), y: f.inner.y1, height: f.inner.y0 - f.inner.y1, fill: colour, class: "band vband", "data-round": r.index }, bandG), `round ${r.index}: ${dim.name} ∈ {${b.join(", ")}}`);
          }
        } else if (b.length === 2 && finite(b[0]) && finite(b[1])) {
          const x0 = sx.map(Math.min(b[0], b[1]));
          const x1 = sx.map(Math.max(b[0], b[1]));
          title(el("rect", { x: round2(Math.min(x0, x1)), width: round2(Math.max(1, Math.abs(x1 - x0))), y: f.inner.y1, height: f.inner.y0 - f.inner.y1, fill: colour, class: "band vband", "data-round": r.index }, bandG), `round ${r.index}: ${dim.name} ∈ [${fmt(b[0])}, ${fmt(b[1])}]`);
        }
      }
    }

    if (!good.length) {
      text(f.over, (f.inner.x0 + f.inner.x1) / 2, (f.inner.y0 + f.inner.y1) / 2, pts.length ? "no result yet (queued and running trials along the top)" : "no trials yet", { class: "empty-note", "text-anchor": "middle" });
    }
    const ptsG = el("g", { class: "points" }, f.body);
    let bestPoint = null;
    pts.forEach((p, i) => {
      const v = p.params ? p.params[dim.name] : undefined;
      if (v === undefined || v === null) return;
      let x = sx.map(v);
      if (kind === "choice") x += sx.bandwidth * 0.5 * jitter(i);
      if (!finite(x)) return;
      const faint = p.status !== "complete";
      const colour = roundColour(p.round || 0, nRounds);
      const tip = `${p.id}\nround ${p.round} · ${p.status}\n${dim.name} = ${fmt(v, 5)}\n${o.objective} = ${fmt(p.value, 5)}`;
      if (p.id === o.best) bestPoint = { p, x, tip };
      let node;
      if (finite(p.value)) {
        const y = sy.map(p.value);
        node = el("circle", { cx: round2(x), cy: round2(y), r: 4, fill: colour, class: "pt" + (faint ? " faint" : ""), "data-round": p.round, "data-status": p.status, "data-trial": p.id }, ptsG);
      } else {
        // no value (failed, diverged, running): a faint cross along the top edge
        node = el("path", { d: crossPath(x, f.inner.y1 + 5, 3), stroke: colour, class: "pt nov faint", "data-round": p.round, "data-status": p.status, "data-trial": p.id }, ptsG);
      }
      title(node, tip);
      if (o.onClick) node.addEventListener("click", () => o.onClick(p));
    });
    if (bestPoint && finite(bestPoint.p.value)) {
      const s = el("path", { d: starPath(bestPoint.x, sy.map(bestPoint.p.value), 9), class: "star", "data-testid": "best-star", "data-trial": bestPoint.p.id }, f.over);
      title(s, "best: " + bestPoint.tip);
      if (o.onClick) s.addEventListener("click", () => o.onClick(bestPoint.p));
    }
    return f.svg;
  }

  /* ---- regions: each round's region as a horizontal band at that round's height ---------------- */

  /**
   * @param {object} o {dim, rounds: [{index, region}], points, objective, maximize, best}
   */
  function regions(container, o) {
    const dim = o.dim;
    const kind = dim.kind;
    const rounds = (o.rounds || []).slice().sort((a, b) => a.index - b.index);
    const n = Math.max(rounds.length, 1);
    const rowH = Math.max(10, Math.min(26, 220 / n));
    const height = Math.max(150, n * rowH + 62);
    const f = frame(container, { width: o.width, height, cls: "regions", testid: o.testid, label: `regions of ${dim.name} per round` });
    f.svg.setAttribute("data-dim", dim.name);
    f.svg.setAttribute("data-rounds", rounds.length);
    let sx;
    if (kind === "choice") {
      sx = scale("choice", dim.choices || [], [f.inner.x0, f.inner.x1]);
    } else {
      let lo = dim.low;
      let hi = dim.high;
      if (!finite(lo) || !finite(hi)) {
        const vals = [];
        for (const r of rounds) { const b = (r.region || {})[dim.name]; if (Array.isArray(b)) vals.push(...b); }
        [lo, hi] = extent(vals);
      }
      sx = scale(kind, [lo, hi], [f.inner.x0, f.inner.x1]);
    }
    const ys = rounds.map((r) => r.index);
    const sy = {
      kind: "round",
      map: (k) => f.inner.y1 + (ys.indexOf(k) + 0.5) * ((f.inner.y0 - f.inner.y1) / n),
      ticks: () => (n <= 14 ? ys : ys.filter((k, i) => i % Math.ceil(n / 14) === 0)),
      label: (k) => String(k),
    };
    xAxis(f, sx, (kind === "one_minus_log" ? dim.name + " (1 − " + dim.name + " log axis)" : dim.name) + ": region per round");
    yAxis(f, sy, "round");
    const bandG = el("g", { class: "bands" }, f.body);
    const ptsG = el("g", { class: "points" }, f.body);
    const h = ((f.inner.y0 - f.inner.y1) / n) * 0.62;
    const pts = o.points || [];
    let bestSoFar = null;
    const better = (a, b) => (o.maximize ? a > b : a < b);
    for (const r of rounds) {
      const k = r.index;
      const cy = sy.map(k);
      const colour = roundColour(k, n);
      const b = (r.region || {})[dim.name];
      if (Array.isArray(b)) {
        if (kind === "choice") {
          for (const c of b) {
            if (!sx.contains(c)) continue;
            const cx = sx.map(c);
            title(el("rect", { x: round2(cx - sx.bandwidth * 0.4), width: round2(sx.bandwidth * 0.8), y: round2(cy - h / 2), height: round2(h), fill: colour, class: "band hband", "data-round": k, "data-testid": "region-band" }, bandG), `round ${k}: {${b.join(", ")}}`);
          }
        } else if (b.length === 2 && finite(b[0]) && finite(b[1])) {
          const x0 = sx.map(Math.min(b[0], b[1]));
          const x1 = sx.map(Math.max(b[0], b[1]));
          title(el("rect", { x: round2(Math.min(x0, x1)), width: round2(Math.max(2, Math.abs(x1 - x0))), y: round2(cy - h / 2), height: round2(h), fill: colour, class: "band hband", "data-round": k, "data-testid": "region-band" }, bandG), `round ${k}: ${dim.name} ∈ [${fmt(b[0])}, ${fmt(b[1])}]`);
        }
      }
      pts.filter((p) => p.round === k).forEach((p, i) => {
        const v = p.params ? p.params[dim.name] : undefined;
        if (v === undefined || v === null) return;
        let x = sx.map(v);
        if (kind === "choice") x += sx.bandwidth * 0.5 * jitter(i);
        if (!finite(x)) return;
        const faint = p.status !== "complete";
        const c = el("circle", { cx: round2(x), cy: round2(cy), r: 3, fill: faint ? "none" : colour, stroke: faint ? colour : "#222", class: "pt" + (faint ? " faint hollow" : ""), "data-trial": p.id }, ptsG);
        title(c, `${p.id}: ${dim.name} = ${fmt(v, 5)}, ${o.objective} = ${fmt(p.value, 5)} (${p.status})`);
        if (o.onClick) c.addEventListener("click", () => o.onClick(p));
        if (p.status === "complete" && finite(p.value) && (!bestSoFar || better(p.value, bestSoFar.value))) bestSoFar = p;
      });
      if (bestSoFar) {
        let bx = sx.map(bestSoFar.params[dim.name]);
        if (finite(bx)) {
          const t = el("line", { x1: round2(bx), x2: round2(bx), y1: round2(cy - h * 0.75), y2: round2(cy + h * 0.75), class: "best-tick" }, f.over);
          title(t, `best so far after round ${k}: ${bestSoFar.id} (${fmt(bestSoFar.value, 5)})`);
        }
      }
    }
    return f.svg;
  }

  /* ---- line charts: learning curves ------------------------------------------------------------ */

  /**
   * @param {object} o {series: [{key, label, points: [[x, y]], colour, cls, dashed, faint}], xLabel, yLabel,
   *   logY, markers: [{x, label}], xMin, xMax, testid}
   */
  function lines(container, o) {
    const f = frame(container, { width: o.width, defaultWidth: 640, height: o.height || 300, cls: "lines", testid: o.testid, label: o.label || o.yLabel || "" });
    const all = [];
    let xmax = o.xMax || 1;
    for (const s of o.series) {
      for (const [x, y] of s.points) {
        if (finite(x) && x > xmax) xmax = x;
        if (finite(y) && (!o.logY || y > 0)) all.push(y);
      }
    }
    for (const m of o.markers || []) if (finite(m.x) && m.x > xmax) xmax = m.x;
    const xmin = o.xMin !== undefined ? o.xMin : 0;
    const sx = scale("linear", [xmin, Math.max(xmax, xmin + 1)], [f.inner.x0, f.inner.x1]);
    let [ylo, yhi] = extent(all);
    const empty = !finite(ylo);
    if (empty) { ylo = o.logY ? 0.1 : 0; yhi = 1; }
    const ykind = o.logY && ylo > 0 ? "log" : "linear";
    const sy = scale(ykind, padded(ykind, ylo, yhi, 0.05), [f.inner.y0, f.inner.y1]);
    xAxis(f, sx, o.xLabel || "epoch", { ticks: 8 });
    yAxis(f, sy, o.yLabel || "");
    if (empty) text(f.over, (f.inner.x0 + f.inner.x1) / 2, (f.inner.y0 + f.inner.y1) / 2, o.emptyText || "no epochs yet", { class: "empty-note", "text-anchor": "middle" });
    const markG = el("g", { class: "markers" }, f.body);
    (o.markers || []).forEach((m, i) => {
      const x = sx.map(m.x);
      if (!finite(x)) return;
      const g = el("g", { class: "marker " + (m.cls || ""), "data-testid": "change-marker", "data-epoch": m.x, "data-label": m.label }, markG);
      el("line", { x1: round2(x), x2: round2(x), y1: f.inner.y1, y2: f.inner.y0, class: "marker-line" }, g);
      const ty = f.inner.y1 + 10 + (i % 4) * 11;
      text(g, x + 3, ty, m.label, { class: "marker-label" });
      title(g, `epoch ${m.x}: ${m.label}`);
    });
    const lineG = el("g", { class: "series" }, f.body);
    o.series.forEach((s, i) => {
      const ok = s.points.filter(([x, y]) => finite(x) && finite(y) && (ykind !== "log" || y > 0));
      const colour = s.colour || seriesColour(i);
      const d = ok.map(([x, y], j) => (j ? "L" : "M") + round2(sx.map(x)) + "," + round2(sy.map(y))).join("");
      const path = el("path", { d: d || "M0,0", stroke: colour, fill: "none", class: "curve " + (s.cls || "") + (s.dashed ? " dashed" : "") + (s.faint ? " faint" : ""), "data-series": s.key || "", "data-points": ok.length }, lineG);
      if (s.trial) path.setAttribute("data-trial", s.trial);
      if (s.testid) path.setAttribute("data-testid", s.testid);
      title(path, s.label || s.key || "");
      if (ok.length === 1) {
        const [x, y] = ok[0];
        title(el("circle", { cx: round2(sx.map(x)), cy: round2(sy.map(y)), r: 2.5, fill: colour, class: "curve-dot" + (s.faint ? " faint" : "") }, lineG), s.label || "");
      }
      // hover targets on each point (only for short series, to keep the DOM small)
      if (!s.faint && ok.length <= 400 && o.hover !== false) {
        const hg = el("g", { class: "hover-dots" }, lineG);
        for (const [x, y] of ok) {
          title(el("circle", { cx: round2(sx.map(x)), cy: round2(sy.map(y)), r: 3, class: "hover-dot" }, hg), `${s.label || s.key}\nepoch ${x}: ${fmt(y, 5)}`);
        }
      }
    });
    if (o.legend) {
      legend(f, o.series.filter((s) => s.legend === true || (s.legend !== false && !s.dashed)).slice(0, 6).map((s, i) => ({ label: s.legendLabel || s.label || s.key, colour: s.colour || seriesColour(i), shape: s.dashed ? "dashed" : "line" })));
    }
    return f.svg;
  }

  /* ---- parallel coordinates ------------------------------------------------------------------- */

  /**
   * @param {object} o {dims: [{name, kind, low, high, choices}], points: [{id, status, params, value, round}],
   *   objective, maximize, best}
   */
  function parallel(container, o) {
    const dims = o.dims.slice();
    const axesDef = dims.concat([{ name: o.objective, kind: o.logY ? "log" : "linear", objective: true }]);
    const width = o.width || Math.max(110 * axesDef.length, fitWidth(container, 520, 640));
    const f = frame(container, { width, height: o.height || 300, cls: "parallel", testid: o.testid, margin: { top: 24, bottom: 40, left: 50, right: 50 }, label: "parallel coordinates" });
    const pts = o.points || [];
    const vals = pts.filter((p) => finite(p.value)).map((p) => p.value);
    let [vlo, vhi] = extent(vals);
    if (!finite(vlo)) { vlo = 0; vhi = 1; }
    const step = (f.inner.x1 - f.inner.x0) / Math.max(axesDef.length - 1, 1);
    const scales = axesDef.map((d, i) => {
      const x = f.inner.x0 + i * step;
      let s;
      if (d.objective) {
        const k = d.kind === "log" && vlo > 0 ? "log" : "linear";
        s = scale(k, padded(k, vlo, vhi, 0.03), [f.inner.y0, f.inner.y1]);
      } else if (d.kind === "choice") {
        s = scale("choice", d.choices || Array.from(new Set(pts.map((p) => p.params[d.name]))), [f.inner.y0, f.inner.y1]);
      } else {
        let lo = d.low;
        let hi = d.high;
        if (!finite(lo) || !finite(hi)) [lo, hi] = extent(pts.map((p) => p.params[d.name]));
        s = scale(d.kind, [lo, hi], [f.inner.y0, f.inner.y1]);
      }
      return { d, x, s };
    });
    const lineG = el("g", { class: "pc-lines" }, f.body);
    // worst first so the best lines are drawn on top
    const sorted = pts.slice().sort((a, b) => {
      const av = finite(a.value) ? a.value : (o.maximize ? -Infinity : Infinity);
      const bv = finite(b.value) ? b.value : (o.maximize ? -Infinity : Infinity);
      return o.maximize ? av - bv : bv - av;
    });
    const span = vhi - vlo || 1;
    for (const p of sorted) {
      const coords = [];
      for (const a of scales) {
        const v = a.d.objective ? p.value : p.params[a.d.name];
        const y = v === undefined || v === null ? NaN : a.s.map(v);
        if (!finite(y)) { coords.push(null); continue; }
        coords.push([a.x, y]);
      }
      let d = "";
      let pen = false;
      for (const c of coords) {
        if (!c) { pen = false; continue; }
        d += (pen ? "L" : "M") + round2(c[0]) + "," + round2(c[1]);
        pen = true;
      }
      if (!d) continue;
      const q = finite(p.value) ? (o.maximize ? (p.value - vlo) / span : (vhi - p.value) / span) : 0;
      const faint = p.status !== "complete" || !finite(p.value);
      const path = el("path", { d, stroke: faint ? "#999" : ramp(0.1 + 0.85 * q), fill: "none", class: "pc-line" + (faint ? " faint" : "") + (p.id === o.best ? " best" : ""), "data-trial": p.id }, lineG);
      title(path, `${p.id} (${p.status}): ${o.objective} = ${fmt(p.value, 5)}\n` + dims.map((dd) => `${dd.name} = ${fmt(p.params[dd.name], 4)}`).join("\n"));
      if (o.onClick) path.addEventListener("click", () => o.onClick(p));
    }
    for (const a of scales) {
      const g = el("g", { class: "pc-axis" }, f.axes);
      el("line", { x1: round2(a.x), x2: round2(a.x), y1: f.inner.y0, y2: f.inner.y1, class: "axis-line" }, g);
      for (const t of a.s.ticks(5)) {
        const y = a.s.map(t);
        if (!finite(y) || y > f.inner.y0 + 0.5 || y < f.inner.y1 - 0.5) continue;
        el("line", { x1: round2(a.x - 3), x2: round2(a.x + 3), y1: round2(y), y2: round2(y), class: "tick" }, g);
        text(g, a.x + 5, y + 3.5, a.s.label(t), { class: "tick-label pc-tick" });
      }
      const lbl = a.d.kind === "one_minus_log" ? a.d.name + " (1−β log)" : a.d.name;
      text(g, a.x, f.inner.y1 - 10, lbl, { class: "axis-label", "text-anchor": "middle" });
    }
    return f.svg;
  }

  /* ---- horizontal bars -------------------------------------------------------------------------- */

  /** @param {object} o {items: [{label, value, tip}], max, format} */
  function bars(container, o) {
    const items = o.items || [];
    const rowH = 24;
    const width = o.width || Math.min(640, fitWidth(container, 320, 520));
    const left = Math.min(200, 12 + 7 * Math.max(4, ...items.map((i) => String(i.label).length)));
    const height = 16 + items.length * rowH;
    container.textContent = "";
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "plot bars", role: "img" }, container);
    if (o.testid) svg.setAttribute("data-testid", o.testid);
    const max = o.max || Math.max(1e-12, ...items.map((i) => i.value || 0));
    const w = width - left - 70;
    items.forEach((it, i) => {
      const y = 8 + i * rowH;
      text(svg, left - 8, y + 15, it.label, { class: "bar-label", "text-anchor": "end" });
      const bw = Math.max(1, (Math.max(0, it.value || 0) / max) * w);
      const r = el("rect", { x: left, y: y + 3, width: round2(bw), height: rowH - 8, class: "bar", fill: ramp(0.25 + 0.5 * (i / Math.max(items.length - 1, 1))), "data-testid": "bar" }, svg);
      title(r, it.tip || `${it.label}: ${fmt(it.value)}`);
      text(svg, left + bw + 6, y + 15, o.format ? o.format(it.value) : fmt(it.value, 3), { class: "bar-value" });
    });
    return svg;
  }

  global.Plot = { el, scale, padded, extent, fmt, tickLabel, ramp, roundColour, seriesColour, frame, xAxis, yAxis, scatter, regions, lines, parallel, bars, starPath };
})(window);
