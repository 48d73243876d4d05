/* Strangler report charts: a small SVG renderer of our own (no library, nothing fetched).
 * Reads the report embedded in #report-data and draws
 *   svg#chart-traffic  per route, the share of each second on new and on legacy (stacked areas)
 *   svg#chart-errors   error rate and fallback rate
 *   svg#chart-p99      p99 and p50 latency
 * Every series is one path.series, every event one line.marker, stages are shaded bands.
 * Long runs are bucketed to at most MAX_POINTS buckets; in a bucket, rates are sums over
 * sums, p99 is the worst second and p50 the request-weighted mean. */
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";  // the SVG namespace name, not a fetch
  const W = 960, ML = 124, MR = 18, ROW_H = 13, LABEL_ROWS = 3, AXIS_H = 24, MAX_POINTS = 480;
  const TOP = LABEL_ROWS * ROW_H + 6;
  const COLORS = {new: "#2563eb", legacy: "#c3cad3", error_rate: "#c62828",
                  fallback_rate: "#f08c00", p99: "#7048e8", p50: "#a9a3f5"};
  const LABELLED = new Set(["stage", "fault", "breach", "rollback", "kill_switch", "drill"]);
  const MARKER_COLORS = {stage: "#52606d", fault: "#e8590c", fault_end: "#e8590c",
                         breach: "#c62828", rollback: "#8e0000", kill_switch: "#111",
                         drill: "#0b7285"};

  const num = (v) => (typeof v === "number" && isFinite(v) ? v : null);
  const r1 = (v) => Math.round(v * 10) / 10;

  function el(name, attrs, parent, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  // -- data -------------------------------------------------------------------

  function prepare(report) {
    const timeline = (report.timeline || [])
      .filter((p) => p && num(p.t) !== null && p.t >= 0)
      .sort((a, b) => a.t - b.t);
    const events = (report.events || []).filter((e) => e && num(e.t) !== null && e.t >= 0);
    const stages = (report.stages || []).filter((s) => s && num(s.start_s) !== null);
    let end = Math.max(1, num(report.duration_s) || 0);
    for (const p of timeline) end = Math.max(end, p.t + 1);
    for (const e of events) end = Math.max(end, e.t);
    for (const s of stages) end = Math.max(end, num(s.end_s) || 0);
    const step = Math.max(1, Math.ceil(end / MAX_POINTS));
    const n = Math.max(1, Math.ceil(end / step));
    const buckets = [];
    for (let i = 0; i < n; i++) {
      buckets.push({t0: i * step, t1: Math.min(end, (i + 1) * step), requests: 0, errors: 0,
                    fallbacks: 0, p99: null, p50sum: 0, p50w: 0, routes: {}});
    }
    const routes = [];
    const addRoute = (r) => { if (typeof r === "string" && !routes.includes(r)) routes.push(r); };
    for (const s of stages) for (const c of s.changes || []) if (c) addRoute(c.route);
    for (const p of timeline) {
      const b = buckets[Math.min(n - 1, Math.floor(p.t / step))];
      const req = num(p.requests);
      b.requests += req || 0;
      b.errors += num(p.errors) || 0;
      b.fallbacks += num(p.fallbacks) || 0;
      if (req === null || req > 0) {  // a second without requests has no latency
        if (num(p.p99_ms) !== null) b.p99 = Math.max(b.p99 === null ? -Infinity : b.p99, p.p99_ms);
        if (num(p.p50_ms) !== null) { b.p50sum += p.p50_ms * (req || 1); b.p50w += req || 1; }
      }
      for (const [route, split] of Object.entries(p.by_route || {})) {
        addRoute(route);
        const acc = b.routes[route] || (b.routes[route] = {legacy: 0, new: 0});
        acc.legacy += num(split && split.legacy) || 0;
        acc.new += num(split && split.new) || 0;
      }
    }
    return {end, step, buckets, routes, events, stages, hasTimeline: timeline.length > 0};
  }

  // -- scales and axes ----------------------------------------------------------

  function niceCeil(v) {
    const exp = Math.pow(10, Math.floor(Math.log10(v)));
    const f = v / exp;
    const nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
    return {max: nice * exp, ticks: nice === 2.5 || nice === 5 ? 5 : 4};
  }

  function fmtTime(t, end) {
    t = Math.round(t);
    if (end < 120) return t + "s";
    const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
    const pad = (x) => String(x).padStart(2, "0");
    return h ? h + ":" + pad(m) + ":" + pad(s) : m + ":" + pad(s);
  }
  const fmtPct = (v) => { const p = v * 100; return p.toFixed(p === 0 ? 0 : p < 1 ? 2 : p < 10 ? 1 : 0) + "%"; };
  const fmtMs = (v) => (v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(v < 10 ? 1 : 0) + " ms");

  function frame(svg, data, plotH) {
    const H = TOP + plotH + AXIS_H;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.replaceChildren();
    const x = (t) => r1(ML + (Math.min(Math.max(t, 0), data.end) / data.end) * (W - ML - MR));
    const f = {svg, x, top: TOP, bottom: TOP + plotH, H};
    const bands = el("g", {class: "stages"}, svg);
    data.stages.forEach((s, i) => {
      const x0 = x(s.start_s), x1 = x(num(s.end_s) === null ? data.end : s.end_s);
      const cls = "stage-band " + (s.outcome === "breached" ? "breached" : i % 2 ? "odd" : "even");
      const rect = el("rect", {class: cls, x: x0, y: f.top, width: Math.max(0, r1(x1 - x0)),
                               height: plotH}, bands);
      el("title", {}, rect, "stage " + (i + 1) + ": " + (s.name || "") + " (" + (s.outcome || "") + ")");
    });
    const axis = el("g", {class: "axis"}, svg);
    el("path", {d: "M" + ML + "," + f.bottom + "H" + (W - MR), fill: "none"}, axis);
    const candidates = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400];
    const tick = candidates.find((c) => data.end / c <= 10) || 86400;
    for (let t = 0; t <= data.end + 1e-9; t += tick) {
      el("line", {x1: x(t), x2: x(t), y1: f.bottom, y2: f.bottom + 4}, axis);
      el("text", {x: x(t), y: f.bottom + 16, "text-anchor": "middle"}, axis, fmtTime(t, data.end));
    }
    return f;
  }

  function yAxis(f, yOf, scale, fmt) {
    const g = el("g", {class: "grid"}, f.svg);
    for (let i = 0; i <= scale.ticks; i++) {
      const v = (scale.max * i) / scale.ticks, y = yOf(v);
      el("line", {x1: ML, x2: W - MR, y1: y, y2: y}, g);
      el("text", {x: ML - 6, y: y + 4, "text-anchor": "end"}, g, fmt(v));
    }
  }

  function emptyNote(f, text) {
    f.svg.classList.add("empty");
    el("text", {class: "empty-note", x: (ML + W - MR) / 2, y: (f.top + f.bottom) / 2,
                "text-anchor": "middle"}, f.svg, text);
  }

  // -- series -----------------------------------------------------------------

  /* Runs of consecutive buckets that have a value: gaps stay gaps. */
  function runs(buckets, valueOf) {
    const out = [];
    let cur = null;
    for (const b of buckets) {
      const v = valueOf(b);
      if (v === null) { cur = null; continue; }
      if (!cur) out.push((cur = []));
      cur.push({b, v});
    }
    return out;
  }

  function stepLine(f, data, yOf, valueOf, name, label) {
    let d = "";
    for (const run of runs(data.buckets, valueOf)) {
      run.forEach(({b, v}, i) => {
        d += (i ? "L" : "M") + f.x(b.t0) + "," + r1(yOf(v)) + "L" + f.x(b.t1) + "," + r1(yOf(v));
      });
    }
    if (!d) return null;
    const path = el("path", {class: "series line", "data-series": name, d,
                             stroke: COLORS[name]}, f.svg);
    el("title", {}, path, label);
    return path;
  }

  function stackedShare(f, data, route, yOf) {
    const share = (b) => {
      const s = b.routes[route];
      return s && s.legacy + s.new > 0 ? s.new / (s.legacy + s.new) : null;
    };
    let dNew = "", dLegacy = "";
    for (const run of runs(data.buckets, share)) {
      const first = run[0].b, last = run[run.length - 1].b;
      let top = "";
      for (const {b, v} of run) top += "L" + f.x(b.t0) + "," + r1(yOf(v)) + "L" + f.x(b.t1) + "," + r1(yOf(v));
      dNew += "M" + f.x(first.t0) + "," + yOf(0) + top + "L" + f.x(last.t1) + "," + yOf(0) + "Z";
      dLegacy += "M" + f.x(first.t0) + "," + yOf(1) + top + "L" + f.x(last.t1) + "," + yOf(1) + "Z";
    }
    if (!dNew) return 0;
    for (const [backend, d] of [["legacy", dLegacy], ["new", dNew]]) {
      const path = el("path", {class: "series area", "data-route": route, "data-backend": backend,
                               d, fill: COLORS[backend]}, f.svg);
      el("title", {}, path, route + ": share on " + backend);
    }
    return 2;
  }

  // -- event markers ------------------------------------------------------------

  function markers(f, data) {
    const g = el("g", {class: "markers"}, f.svg);
    const rowEnds = new Array(LABEL_ROWS).fill(-Infinity);
    for (const e of data.events) {
      const kind = String(e.kind || "event").replace(/[^a-z_]/gi, "");
      const x = f.x(e.t), detail = e.detail == null ? "" : String(e.detail);
      const line = el("line", {class: "marker marker-" + kind, "data-kind": kind,
                               x1: x, x2: x, y1: f.top - 2, y2: f.bottom}, g);
      el("title", {}, line, fmtTime(e.t, data.end) + "  " + kind + (detail ? ": " + detail : ""));
      if (!LABELLED.has(kind)) continue;
      let text = kind === "stage" ? detail || "stage" : kind.replace("_", " ") + (detail ? ": " + detail : "");
      if (text.length > 26) text = text.slice(0, 25) + "…";
      const w = text.length * 6, right = x + 3 + w <= W;
      const left = right ? x + 3 : x - 3 - w;
      const row = rowEnds.findIndex((endX) => endX < left - 4);
      if (row < 0) continue;  // no room: the line and its tooltip still say it
      rowEnds[row] = left + w;
      el("text", {class: "marker-label kind-" + kind, x: right ? x + 3 : x - 3,
                  y: (row + 1) * ROW_H, "text-anchor": right ? "start" : "end"}, g, text);
    }
  }

  // -- hover readout --------------------------------------------------------------

  function hover(f, data, describe) {
    const fig = f.svg.parentNode, tip = fig.querySelector(".tip");
    const cursor = el("line", {class: "cursor", y1: f.top, y2: f.bottom, visibility: "hidden"}, f.svg);
    f.svg.addEventListener("mousemove", (ev) => {
      const box = f.svg.getBoundingClientRect();
      const sx = ((ev.clientX - box.left) * W) / box.width;
      const t = ((sx - ML) / (W - ML - MR)) * data.end;
      if (t < 0 || t > data.end) { cursor.setAttribute("visibility", "hidden"); tip.hidden = true; return; }
      const b = data.buckets[Math.min(data.buckets.length - 1, Math.floor(t / data.step))];
      cursor.setAttribute("x1", r1(sx)); cursor.setAttribute("x2", r1(sx));
      cursor.setAttribute("visibility", "visible");
      const span = data.step > 1 ? fmtTime(b.t0, data.end) + "–" + fmtTime(b.t1, data.end) : fmtTime(b.t0, data.end);
      tip.textContent = span + "\n" + describe(b).join("\n");
      tip.hidden = false;
      const fb = fig.getBoundingClientRect();
      const px = ev.clientX - fb.left;
      tip.style.left = (px > fb.width / 2 ? px - tip.offsetWidth - 12 : px + 12) + "px";
      tip.style.top = (ev.clientY - fb.top + 12) + "px";
    });
    f.svg.addEventListener("mouseleave", () => { cursor.setAttribute("visibility", "hidden"); tip.hidden = true; });
  }

  function legend(id, items, data) {
    const box = document.getElementById(id + "-legend");
    box.replaceChildren();
    const kinds = [...new Set(data.events.map((e) => String(e.kind || "event").replace(/[^a-z_]/gi, "")))];
    for (const [label, color, cls] of items.concat(kinds.map((k) => [k.replace("_", " "), MARKER_COLORS[k] || "#52606d", "marker"]))) {
      const span = document.createElement("span");
      const sw = document.createElement("span");
      sw.className = "swatch" + (cls ? " " + cls : "");
      sw.style.background = color;
      span.append(sw, document.createTextNode(label));
      box.appendChild(span);
    }
  }

  // -- the three charts ------------------------------------------------------------

  function trafficChart(data) {
    const svg = document.getElementById("chart-traffic");
    const bandH = 46, gap = 14, routes = data.routes;
    const f = frame(svg, data, routes.length ? routes.length * (bandH + gap) - gap : 60);
    routes.forEach((route, i) => {
      const top = f.top + i * (bandH + gap);
      const yOf = (s) => r1(top + bandH * (1 - s));
      const name = route.length > 18 ? route.slice(0, 17) + "…" : route;
      const label = el("text", {class: "route-label", x: ML - 8, y: top + bandH / 2, "text-anchor": "end"}, svg, name);
      el("title", {}, label, route);
      el("text", {x: ML - 8, y: top + bandH / 2 + 13, "text-anchor": "end"}, svg, "% of requests");
      const grid = el("g", {class: "grid"}, svg);
      for (const v of [0, 0.5, 1]) el("line", {x1: ML, x2: W - MR, y1: yOf(v), y2: yOf(v)}, grid);
      if (!stackedShare(f, data, route, yOf)) {
        el("text", {class: "empty-note", x: (ML + W - MR) / 2, y: top + bandH / 2 + 4,
                    "text-anchor": "middle"}, svg, "no traffic on " + route);
      }
    });
    if (!routes.length) emptyNote(f, "no traffic recorded");
    markers(f, data);
    hover(f, data, (b) => routes.map((r) => {
      const s = b.routes[r];
      const total = s ? s.legacy + s.new : 0;
      return r + ": " + (total ? fmtPct(s.new / total) + " new (" + s.new + " new / " + s.legacy + " legacy)" : "no traffic");
    }));
    legend("chart-traffic", [["new", COLORS.new], ["legacy", COLORS.legacy]], data);
  }

  function lineChart(id, data, plotH, series, floor, fmt) {
    const svg = document.getElementById(id);
    const f = frame(svg, data, plotH);
    let peak = 0;
    for (const b of data.buckets) for (const s of series) { const v = s.value(b); if (v !== null) peak = Math.max(peak, v); }
    const scale = niceCeil(Math.max(peak * 1.08, floor));
    const yOf = (v) => f.bottom - (v / scale.max) * plotH;
    yAxis(f, yOf, scale, fmt);
    let drawn = 0;
    // drawn last-first so the first series (the one the chart is named for) lies on top
    for (const s of series.slice().reverse()) if (stepLine(f, data, yOf, s.value, s.name, s.label)) drawn++;
    if (!drawn) emptyNote(f, data.hasTimeline ? "no requests recorded" : "no traffic recorded");
    markers(f, data);
    hover(f, data, (b) => series.map((s) => { const v = s.value(b); return s.label + ": " + (v === null ? "-" : fmt(v)); }));
    legend(id, series.map((s) => [s.label, COLORS[s.name]]), data);
  }

  function draw() {
    const report = JSON.parse(document.getElementById("report-data").textContent);
    const data = prepare(report);
    const perReq = (key) => (b) => (b.requests > 0 ? b[key] / b.requests : null);
    const failures = [];
    const charts = [
      () => trafficChart(data),
      () => lineChart("chart-errors", data, 150, [
        {name: "error_rate", label: "error rate", value: perReq("errors")},
        {name: "fallback_rate", label: "fallback rate", value: perReq("fallbacks")}], 0.01, fmtPct),
      () => lineChart("chart-p99", data, 150, [
        {name: "p99", label: "p99", value: (b) => b.p99},
        {name: "p50", label: "p50", value: (b) => (b.p50w ? b.p50sum / b.p50w : null)}], 10, fmtMs),
    ];
    for (const chart of charts) {
      try { chart(); } catch (err) { failures.push(String(err && err.stack || err)); }
    }
    if (data.step > 1) {
      document.getElementById("chart-note").textContent =
        "Vertical lines mark stage changes, faults and other events. The run is long: each point covers " + data.step +
        " s (rates over the bucket, p99 the worst second in it, p50 the request-weighted mean).";
    }
    if (failures.length) {
      const box = document.getElementById("render-error");
      box.textContent = "Some charts could not be drawn: " + failures.join("; ");
      box.hidden = false;
    }
    document.body.setAttribute("data-charts", failures.length ? "failed" : "drawn");
  }

  try { draw(); } catch (err) {
    const box = document.getElementById("render-error");
    box.textContent = "The charts could not be drawn: " + String(err);
    box.hidden = false;
    document.body.setAttribute("data-charts", "failed");
  }
})();
