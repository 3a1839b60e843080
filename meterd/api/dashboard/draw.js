// Drawing of the console's charts: phasor diagram and bar charts in SVG, the scope on a canvas.

const SVG = "http://www.w3.org/2000/svg";
const PHASE_COLOURS = ["var(--l1)", "var(--l2)", "var(--l3)"];
const CANVAS_COLOURS = ["#ffb347", "#5ec8ff", "#c792ff"];

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

/** Fundamental phasor (RMS magnitude, angle in degrees) of samples taken at rate over whole periods of f. */
export function fundamental(samples, rate, f) {
  const period = rate / f;
  const n = Math.max(Math.floor(samples.length / period) * Math.round(period), Math.round(period));
  let re = 0, im = 0;
  const count = Math.min(n, samples.length);
  for (let k = 0; k < count; k++) {
    const w = 2 * Math.PI * f * k / rate;
    re += samples[k] * Math.cos(w);
    im -= samples[k] * Math.sin(w);
  }
  const mag = Math.SQRT2 * Math.hypot(re, im) / count;
  return { mag, deg: Math.atan2(im, re) * 180 / Math.PI };
}

/** Phasors U1..U3, I1..I3 as {mag, deg}, referenced to U1 at 0°. */
export function phasorsFromWaveform(wave, f) {
  const rate = wave.sample_rate_hz;
  const ch = wave.channels;
  const names = ["U1", "U2", "U3", "I1", "I2", "I3"];
  const out = {};
  for (const name of names) out[name] = ch[name] ? fundamental(ch[name], rate, f || 50) : { mag: 0, deg: 0 };
  const ref = out.U1.mag > 1 ? out.U1.deg : 0;
  for (const name of names) out[name].deg = ((out[name].deg - ref + 540) % 360) - 180;
  return out;
}

/** Phasors from per-phase values alone (no waveform): nominal voltage angles, current at the V-I angle. */
export function phasorsFromValues(phases) {
  const out = {};
  [0, -120, 120].forEach((base, i) => {
    const p = phases[`L${i + 1}`] || {};
    out[`U${i + 1}`] = { mag: p.voltage_v || 0, deg: base };
    out[`I${i + 1}`] = { mag: p.current_a || 0, deg: base - (p.angle_deg || 0) };
  });
  return out;
}

export function drawPhasors(svg, ph) {
  svg.replaceChildren();
  const r = 100;
  for (const k of [0.25, 0.5, 0.75, 1]) el("circle", { cx: 0, cy: 0, r: r * k, fill: "none", stroke: "#27313d", "stroke-width": 0.7 }, svg);
  for (let a = 0; a < 360; a += 30) {
    const x = r * Math.cos(a * Math.PI / 180), y = -r * Math.sin(a * Math.PI / 180);
    el("line", { x1: 0, y1: 0, x2: x, y2: y, stroke: "#1e2731", "stroke-width": 0.6 }, svg);
  }
  const vmax = Math.max(1, ph.U1.mag, ph.U2.mag, ph.U3.mag);
  const imax = Math.max(0.001, ph.I1.mag, ph.I2.mag, ph.I3.mag);
  const arrow = (vec, scale, colour, dashed, label) => {
    const len = r * 0.95 * vec.mag / scale;
    if (len < 0.5) return;
    const a = vec.deg * Math.PI / 180;
    const x = len * Math.cos(a), y = -len * Math.sin(a);
    const line = el("line", { x1: 0, y1: 0, x2: x, y2: y, stroke: colour, "stroke-width": dashed ? 2 : 2.6,
                              "stroke-linecap": "round", class: "phasor-line" }, svg);
    if (dashed) line.setAttribute("stroke-dasharray", "5 3");
    const head = 7, spread = 0.38;
    const p1 = [x - head * Math.cos(a - spread), y + head * Math.sin(a - spread)];
    const p2 = [x - head * Math.cos(a + spread), y + head * Math.sin(a + spread)];
    el("polygon", { points: `${x},${y} ${p1[0]},${p1[1]} ${p2[0]},${p2[1]}`, fill: colour }, svg);
    const la = a + (dashed ? -0.22 : 0);
    const lx = (len + 10) * Math.cos(la), ly = -(len + 10) * Math.sin(la);
    const text = el("text", { x: lx, y: ly + 3, fill: colour, "font-size": 9, "text-anchor": "middle",
                              "font-family": "DejaVu Sans Mono, monospace" }, svg);
    text.textContent = label;
  };
  for (let i = 0; i < 3; i++) arrow(ph[`U${i + 1}`], vmax, PHASE_COLOURS[i], false, `U${i + 1}`);
  for (let i = 0; i < 3; i++) arrow(ph[`I${i + 1}`], imax * 1.35, PHASE_COLOURS[i], true, `I${i + 1}`);
}

export function drawScope(canvas, wave, show) {
  const ctx = canvas.getContext("2d");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = Math.round(w * 0.42);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.direction = "ltr";  // a scope reads left to right in any language
  ctx.fillStyle = "#0f141a"; ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#222c37"; ctx.lineWidth = 1;
  for (let i = 1; i < 10; i++) { const x = Math.round(w * i / 10) + 0.5; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke(); }
  for (let i = 1; i < 8; i++) { const y = Math.round(h * i / 8) + 0.5; ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke(); }
  ctx.strokeStyle = "#35414f"; ctx.beginPath(); ctx.moveTo(0, h / 2 + 0.5); ctx.lineTo(w, h / 2 + 0.5); ctx.stroke();
  canvas.dataset.traced = wave ? "yes" : "no";  // what a reader (or a test) can ask of the canvas
  if (!wave) return;
  const ch = wave.channels;
  const peak = (names) => Math.max(1e-3, ...names.flatMap((n) => (ch[n] || []).map(Math.abs)));
  const upk = peak(["U1", "U2", "U3"]) * 1.1, ipk = peak(["I1", "I2", "I3"]) * 1.1;
  const trace = (data, scale, colour, width, alpha) => {
    if (!data || !data.length) return;
    ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.globalAlpha = alpha; ctx.beginPath();
    data.forEach((v, k) => { const x = w * k / (data.length - 1), y = h / 2 - (h / 2 - 4) * v / scale; k ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    ctx.stroke(); ctx.globalAlpha = 1;
  };
  for (let i = 0; i < 3; i++) {
    if (show.U) trace(ch[`U${i + 1}`], upk, CANVAS_COLOURS[i], 1.8, 1);
    if (show.I) trace(ch[`I${i + 1}`], ipk, CANVAS_COLOURS[i], 1.2, 0.6);
  }
  ctx.fillStyle = "#8491a1"; ctx.font = "11px DejaVu Sans Mono, monospace";
  ctx.fillText(`U ±${Math.round(upk)} V`, 6, 14);
  ctx.fillText(`I ±${ipk.toFixed(1)} A`, 6, 28);
  const ms = 1000 * (ch.U1 || []).length / wave.sample_rate_hz;
  ctx.fillText(`${ms.toFixed(0)} ms`, w - 48, h - 6);
}

/** Harmonic magnitudes (% of fundamental) of orders 2..50 as bars. */
export function drawBars(svg, values, colour) {
  svg.replaceChildren();
  const W = 500, H = 190, left = 26, bottom = 16, head = 8;
  const max = Math.max(1, ...values.map((v) => v || 0));
  const top = Math.ceil(max / 2) * 2 + (max < 2 ? 0 : 1);
  const plotH = H - bottom - head;
  for (let k = 0; k <= 4; k++) {
    const y = head + plotH * (1 - k / 4) + 0.5;
    el("line", { x1: left, y1: y, x2: W, y2: y, stroke: "#27313d", "stroke-width": 0.7 }, svg);
    const lab = el("text", { x: left - 4, y: y + 3, fill: "#8491a1", "font-size": 9, "text-anchor": "end" }, svg);
    lab.textContent = (top * k / 4).toFixed(top < 4 ? 1 : 0);
  }
  const bw = (W - left) / values.length;
  values.forEach((v, i) => {
    const hgt = plotH * (v || 0) / top;
    if (hgt > 0.2) el("rect", { x: left + i * bw + 1, y: H - bottom - hgt, width: Math.max(bw - 2, 1), height: hgt, fill: colour, class: "bar" }, svg);
    const order = i + 2;
    if (order % 2 === 1 && (order <= 15 || order % 10 === 5)) {
      const lab = el("text", { x: left + i * bw + bw / 2, y: H - 4, fill: "#8491a1", "font-size": 9, "text-anchor": "middle" }, svg);
      lab.textContent = String(order);
    }
  });
}

/** Load profile: bars of mean active power per period (kW) and the mean voltages as lines. */
export function drawProfile(svg, profile) {
  svg.replaceChildren();
  const W = 600, H = 200, left = 34, right = 34, bottom = 16, head = 8;
  const rows = profile.rows || [];
  const col = (pred) => (profile.columns || []).findIndex(pred);
  const ai = col((c) => c.kind === "interval" && c.quantity === "active_import");
  const ae = col((c) => c.kind === "interval" && c.quantity === "active_export");
  const vcols = [1, 2, 3].map((n) => col((c) => c.kind === "avg_voltage" && c.channel === `L${n}`));
  const hours = profile.period_s / 3600;
  const kw = rows.map((r) => ((ai >= 0 ? r.values[ai] : 0) - (ae >= 0 ? r.values[ae] : 0)) / hours / 1000);
  const kmax = Math.max(0.1, ...kw.map(Math.abs)) * 1.15;
  const plotH = H - bottom - head;
  for (let k = 0; k <= 4; k++) {
    const y = head + plotH * (1 - k / 4) + 0.5;
    el("line", { x1: left, y1: y, x2: W - right, y2: y, stroke: "#27313d", "stroke-width": 0.7 }, svg);
    const lab = el("text", { x: left - 4, y: y + 3, fill: "#8491a1", "font-size": 9, "text-anchor": "end" }, svg);
    lab.textContent = (kmax * k / 4).toFixed(kmax < 1 ? 2 : kmax < 4 ? 1 : 0);
  }
  if (!rows.length) return;
  const bw = (W - left - right) / Math.max(rows.length, 24);
  kw.forEach((v, i) => {
    const hgt = plotH * Math.max(v, 0) / kmax;
    el("rect", { x: left + i * bw + 1, y: H - bottom - hgt, width: Math.max(bw - 2, 1), height: hgt, fill: "#3d7fc1", class: "bar" }, svg);
  });
  const volts = vcols.flatMap((c) => (c >= 0 ? rows.map((r) => r.values[c]) : []));
  if (volts.length) {
    const vmin = Math.min(...volts) - 5, vmax = Math.max(...volts) + 5;
    vcols.forEach((c, p) => {
      if (c < 0) return;
      const pts = rows.map((r, i) => `${left + i * bw + bw / 2},${head + plotH * (1 - (r.values[c] - vmin) / (vmax - vmin))}`);
      el("polyline", { points: pts.join(" "), fill: "none", stroke: PHASE_COLOURS[p], "stroke-width": 1.4 }, svg);
    });
    for (const [v, y] of [[vmax, head], [vmin, H - bottom]]) {
      const lab = el("text", { x: W - right + 4, y: y + 3, fill: "#8491a1", "font-size": 9 }, svg);
      lab.textContent = `${v.toFixed(0)} V`;
    }
  }
  const last = rows.length - 1;
  for (const i of [0, last]) {
    const lab = el("text", { x: left + i * bw + bw / 2, y: H - 3, fill: "#8491a1", "font-size": 9, "text-anchor": i ? "end" : "start" }, svg);
    lab.textContent = rows[i].utc.slice(11, 16);
  }
}
