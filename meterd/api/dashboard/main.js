// The meter console: REST for the registers and settings, WebSocket streams for what changes
// every cycle (values, waveform, events). The token is asked once and kept in sessionStorage.

import { drawBars, drawPhasors, drawProfile, drawScope, phasorsFromValues, phasorsFromWaveform } from "./draw.js";
import { getLang, setLang, t } from "./i18n.js";

const TOKEN_KEY = "meterd-token";
const LANG_KEY = "meterd-lang";
const $ = (id) => document.getElementById(id);
const state = { values: null, wave: null, pq: null, harmChannel: "U1", scope: { U: true, I: true }, faults: null,
                sockets: {}, live: false, events: [] };

// ---- API -------------------------------------------------------------------------------------

class AuthError extends Error {}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let payload = {};
  try { payload = await res.json(); } catch { payload = {}; }
  if (res.status === 401) { askToken(payload.error); throw new AuthError(payload.error || "401"); }
  if (!res.ok) throw new Error(payload.error || `${res.status}`);
  return payload;
}

function askToken(reason) {
  const dialog = $("token-dialog");
  $("token-error").textContent = reason && token() ? reason : "";
  if (!dialog.open) dialog.showModal();
}

function stream(name, onData) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const query = token() ? `?access_token=${encodeURIComponent(token())}` : "";
  const ws = new WebSocket(`${proto}://${location.host}/ws/${name}${query}`);
  state.sockets[name] = ws;
  ws.onmessage = (msg) => {
    const m = JSON.parse(msg.data);
    if ("data" in m) onData(m.data);
    else if (m.hello) onData(null, m.hello);
  };
  ws.onopen = () => { if (name === "values") setConn(true); };
  ws.onclose = () => {
    if (state.sockets[name] !== ws) return;
    delete state.sockets[name];
    if (name === "values") setConn(false);
    setTimeout(() => stream(name, onData), 2000);
  };
}

function setConn(live) {
  state.live = live;
  const conn = $("conn");
  conn.dataset.state = live ? "live" : "polling";
  $("conn-text").dataset.t = live ? "live" : "polling";
  $("conn-text").textContent = t(live ? "live" : "polling");
}

// ---- formatting --------------------------------------------------------------------------------

const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toFixed(d));
const kilo = (v, d = 3) => (v === null || v === undefined ? "—" : (v / 1000).toFixed(d));
const DECIMALS = { voltage_v: 1, current_a: 2, active_power_w: 0, reactive_power_var: 0, apparent_power_va: 0,
                   power_factor: 3, frequency_hz: 2 };

function li(time, name, extra, isNew) {
  const item = document.createElement("li");
  if (isNew) item.className = "new";
  const tm = document.createElement("span"); tm.className = "t"; tm.textContent = time;
  const nm = document.createElement("span"); nm.className = "name"; nm.textContent = name;
  item.append(tm, nm);
  if (extra) { const x = document.createElement("span"); x.className = "logs"; x.textContent = extra; item.append(x); }
  return item;
}

function kv(dl, rows) {
  dl.replaceChildren();
  for (const [label, value, cls] of rows) {
    const dt = document.createElement("dt"); dt.textContent = label;
    const dd = document.createElement("dd"); if (cls) dd.className = cls;
    const v = document.createElement("bdi"); v.textContent = value; dd.append(v);
    dl.append(dt, dd);
  }
}

function table(tableEl, head, rows) {
  tableEl.replaceChildren();
  if (head) {
    const tr = tableEl.createTHead().insertRow();
    for (const h of head) { const th = document.createElement("th"); th.textContent = h; tr.append(th); }
  }
  const body = tableEl.createTBody();
  for (const { cells, cls } of rows) {
    const tr = body.insertRow(); if (cls) tr.className = cls;
    cells.forEach((c, i) => { const cell = document.createElement(i ? "td" : "th"); cell.textContent = c; tr.append(cell); });
  }
}

// ---- panels ------------------------------------------------------------------------------------

function showValues(v) {
  state.values = v;
  $("serial").textContent = v.serial || "—";
  $("meter-time").textContent = (v.utc || "").replace("T", " ").slice(0, 19) + " UTC";
  for (const row of $("values-table").tBodies[0].rows) {
    const q = row.dataset.q;
    ["L1", "L2", "L3"].forEach((p, i) => { row.cells[i + 1].textContent = fmt((v.phases[p] || {})[q], DECIMALS[q]); });
    const tot = q === "frequency_hz" ? v.frequency_hz : q === "current_a" ? v.total.neutral_current_a : v.total[q];
    row.cells[4].textContent = q === "voltage_v" ? "" : fmt(tot, DECIMALS[q]);
    if (q === "current_a") {  // the total column holds the neutral current
      const tag = document.createElement("span"); tag.className = "tag"; tag.textContent = "N";
      row.cells[4].prepend(tag);
    }
  }
  const flags = $("status-flags"); flags.replaceChildren();
  for (const f of v.status_flags || []) { const s = document.createElement("span"); s.className = "flag"; s.textContent = f; flags.append(s); }
  if (!state.wave) drawPhasors($("phasor"), phasorsFromValues(v.phases));
  showEnergy(v.energy);
}

function showWave(wave) {
  state.wave = wave;
  drawScope($("scope"), wave, state.scope);
  const f = state.values ? state.values.frequency_hz : 50;
  drawPhasors($("phasor"), phasorsFromWaveform(wave, f || 50));
}

function showEnergy(energy) {
  if (!energy || !energy.total) return;
  const e = energy.total;
  const rows = [["import", e.active_import_wh], ["export", e.active_export_wh], ["q1", e.reactive_q1_varh],
                ["q2", e.reactive_q2_varh], ["q3", e.reactive_q3_varh], ["q4", e.reactive_q4_varh],
                ["apparent", e.apparent_import_vah]];
  table($("energy-table"), null, rows.map(([k, v]) => ({ cells: [t(k), kilo(v)] })));
}

function showStatus(s) {
  state.status = s;
  if (!state.live) showValues(s);
  const relay = s.relay;
  const badge = $("relay-badge");
  if (relay) {
    const st = relay.relay_fault ? "fault" : relay.output_state;
    badge.dataset.state = st;
    badge.textContent = `${t("relay")}: ${relay.relay_fault ? t("relay_fault") : t(relay.output_state)}`;
    kv($("relay-kv"), [
      [t("output_state"), t(relay.output_state), relay.output_state === "connected" ? "ok" : "warn"],
      [t("control_state"), t(relay.control_state)],
      [t("control_mode"), String(relay.control_mode)],
      [t("relay_fault"), relay.relay_fault ? t("yes") : t("no"), relay.relay_fault ? "bad" : "ok"],
      [t("operations"), String(relay.operation_count)],
    ]);
  }
  const credit = s.credit;
  if (credit) {
    const amount = credit.unit === "energy" ? `${fmt(credit.credit_kwh, 3)} kWh`
      : `${fmt(credit.credit / 10 ** (credit.minor_digits || 0), credit.minor_digits || 0)} ${credit.currency || ""}`;
    kv($("credit-kv"), [
      [t("credit"), amount, credit.low_credit ? "big warn" : "big"],
      [t("credit_mode"), t(credit.mode)],
      [t("low_credit"), credit.low_credit ? t("yes") : t("no"), credit.low_credit ? "warn" : ""],
      [t("emergency"), credit.emergency && credit.emergency.active ? t("yes") : t("no")],
    ]);
  }
  if (s.tariff) $("rate").textContent = String(s.tariff.rate);
  const alarms = $("alarms"); alarms.replaceChildren();
  for (const a of (s.alarms && s.alarms.active) || []) { const x = document.createElement("span"); x.className = "flag"; x.textContent = a; alarms.append(x); }
  for (const a of s.tamper || []) { const x = document.createElement("span"); x.className = "flag"; x.textContent = `${t("tamper")}: ${a}`; alarms.append(x); }
  if (s.metrology && s.metrology.in_fault) {
    const x = document.createElement("span"); x.className = "flag"; x.textContent = `IC: ${s.metrology.faults.join(", ")}`; alarms.append(x);
  }
}

function showPq(pq) {
  state.pq = pq;
  if (pq.enabled === false) { $("thd").textContent = "—"; $("flicker-note").textContent = "power quality off ([power_quality] enabled = false)"; return; }
  const tabs = $("harm-tabs");
  const channels = Object.keys(pq.harmonic_pct || {}).filter((c) => c !== "IN");
  if (tabs.childElementCount !== channels.length) {
    tabs.replaceChildren();
    for (const c of channels) {
      const b = document.createElement("button"); b.type = "button"; b.textContent = c;
      b.onclick = () => { state.harmChannel = c; showPq(state.pq); };
      tabs.append(b);
    }
  }
  for (const b of tabs.children) b.setAttribute("aria-pressed", String(b.textContent === state.harmChannel));
  const ch = state.harmChannel;
  const colour = ["var(--l1)", "var(--l2)", "var(--l3)"][Number(ch.slice(1)) - 1] || "var(--accent)";
  drawBars($("harm"), (pq.harmonic_pct || {})[ch] || [], colour);
  $("thd").textContent = `${ch} ${fmt((pq.thd_pct || {})[ch], 2)} %`;
  const thd = pq.thd_pct || {};
  table($("thd-table"), ["THD %", "L1", "L2", "L3"], [
    { cells: ["U", fmt(thd.U1, 2), fmt(thd.U2, 2), fmt(thd.U3, 2)] },
    { cells: ["I", fmt(thd.I1, 2), fmt(thd.I2, 2), fmt(thd.I3, 2)] },
  ]);
  for (const row of $("flicker-table").tBodies[0].rows) {
    const values = pq[row.dataset.k] || {};
    ["L1", "L2", "L3"].forEach((p, i) => {
      const v = values[p] ?? values[`U${i + 1}`] ?? values[String(i + 1)];
      row.cells[i + 1].textContent = fmt(v, 2);
    });
  }
  const list = $("pq-events"); list.replaceChildren();
  for (const e of (pq.recent_events || []).slice(-5).reverse()) {
    list.append(li((e.utc || "").slice(11, 19), `${e.kind} ${e.phases ? `L${e.phases}` : ""}`, `${fmt(e.duration_s, 2)} s`));
  }
}

function showTariff(tf) {
  state.tariff = tf;
  const regs = tf.rate_registers || {};
  table($("rate-table"), [t("rate_n"), t("import"), t("export")], Object.entries(regs).map(([rate, r]) => ({
    cells: [rate, kilo(r.active_import), kilo(r.active_export)], cls: Number(rate) === tf.rate ? "current" : "" })));
  const md = (tf.max_demand || {}).active_import || {};
  table($("md-table"), [t("rate_n"), t("kw"), "UTC"], Object.entries(md).map(([rate, m]) => ({
    cells: [rate === "0" ? t("all_rates") : rate, kilo(m.value, 2), m.utc ? m.utc.replace("T", " ").slice(5, 16) : "—"],
    cls: Number(rate) === tf.rate ? "current" : "" })));
  $("rate").textContent = String(tf.rate);
}

function showProfile(p) {
  state.profile = p;
  $("profile-note").textContent = p.rows.length ? `${p.rows.length} × ${p.period_s / 60} min` : t("no_profile");
  drawProfile($("profile"), p);
}

function showEvents(events, fresh) {
  const list = $("events");
  if (!fresh) list.replaceChildren();
  const items = fresh ? events : events.slice(0, 60);
  for (const e of items) {
    const item = li((e.utc || "").replace("T", " ").slice(5, 19), e.text || e.name, `${e.name} · ${(e.logs || []).join(", ")}`, fresh);
    item.dataset.name = e.name;
    if (fresh) list.prepend(item); else list.append(item);
  }
  while (list.childElementCount > 80) list.lastElementChild.remove();
}

// ---- simulation controls -----------------------------------------------------------------------

function simMessage(text, error) {
  const m = $("sim-message"); m.textContent = text; m.className = error ? "message error" : "message";
}

function showFaults(view) {
  const first = !state.faults;
  state.faults = view;
  $("panel-sim").hidden = false;
  $("sim-badge").hidden = false;
  const select = $("fault-kind");
  if (first) {
    const groups = {};
    for (const k of view.kinds) (groups[k.group] ||= []).push(k);
    for (const [group, kinds] of Object.entries(groups)) {
      const og = document.createElement("optgroup"); og.label = group;
      for (const k of kinds) { const o = document.createElement("option"); o.value = k.kind; o.textContent = k.kind; og.append(o); }
      select.append(og);
    }
    select.onchange = faultParams;
    faultParams();
  }
  const list = $("active-faults");
  const left = (a) => (a.remaining_s === null ? t("until_cleared") : `${fmt(a.remaining_s, 0)} s ${t("remaining")}`);
  const key = JSON.stringify(view.active.map((a) => [a.kind, a.params])) + getLang();
  if (list.dataset.key === key) {  // the same faults: only the time left changes (buttons stay put)
    view.active.forEach((a, i) => { list.children[i].querySelector(".t").textContent = left(a); });
    return;
  }
  list.dataset.key = key;
  list.replaceChildren();
  for (const a of view.active) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = `${a.kind} ${Object.entries(a.params || {}).map(([k, v]) => `${k}=${v}`).join(" ")}`;
    const b = document.createElement("button"); b.type = "button"; b.textContent = t("clear");
    b.onclick = () => simCall("/sim/fault-clear", { kind: a.kind }, t("clear"));
    const time = document.createElement("span"); time.className = "t"; time.textContent = left(a);
    item.append(name, time, b);
    item.style.gridTemplateColumns = "1fr auto auto";
    list.append(item);
  }
}

function faultParams() {
  const kind = state.faults.kinds.find((k) => k.kind === $("fault-kind").value);
  const box = $("fault-params"); box.replaceChildren();
  $("fault-summary").textContent = kind ? `${kind.summary}${kind.events.length ? ` → ${kind.events.join(", ")}` : ""}` : "";
  for (const p of (kind ? kind.params : [])) {
    const label = document.createElement("label");
    const span = document.createElement("span"); span.textContent = p.name;
    let input;
    if (p.choices) {
      input = document.createElement("select");
      for (const c of p.choices) { const o = document.createElement("option"); o.value = c; o.textContent = c; input.append(o); }
      input.value = p.default;
    } else {
      input = document.createElement("input"); input.type = "number"; input.min = p.min; input.max = p.max;
      input.step = "any"; input.value = p.default;
    }
    input.name = `param:${p.name}`;
    label.append(span, input);
    if (p.unit) { const u = document.createElement("small"); u.textContent = p.unit; label.append(u); }
    box.append(label);
  }
}

async function simCall(path, body, done) {
  try {
    await api("POST", path, body);
    simMessage(done);
    refreshFaults();
  } catch (err) {
    if (!(err instanceof AuthError)) simMessage(err.message, true);
  }
}

async function refreshFaults() {
  try { showFaults(await api("GET", "/sim/faults")); } catch { /* not simulated, or no access */ }
}

function wireSimForms() {
  $("sim-set").onsubmit = (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = { phase: f.get("phase") };
    for (const k of ["voltage_v", "current_a", "frequency_hz"]) if (f.get(k) !== "") body[k] = Number(f.get(k));
    if (f.get("power_factor")) body.power_factor = f.get("power_factor");
    simCall("/sim/set", body, t("applied"));
  };
  $("fault-form").onsubmit = (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = { kind: f.get("kind") };
    if (f.get("duration_s") !== "") body.duration_s = Number(f.get("duration_s"));
    for (const [k, v] of f.entries()) {
      if (!k.startsWith("param:")) continue;
      const name = k.slice(6);
      body[name] = v !== "" && !Number.isNaN(Number(v)) ? Number(v) : v;
    }
    simCall("/sim/fault", body, `${t("injected")}: ${body.kind}`);
  };
  $("scenario-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const file = new FormData(ev.target).get("file");
    if (!file || !file.size) return;
    simCall("/sim/scenario", { toml: await file.text(), name: file.name }, t("loaded"));
  };
}

// ---- start -------------------------------------------------------------------------------------

async function poll(path, show, method = "GET", body = undefined) {
  try { show(await api(method, path, body)); } catch { /* shown by the connection badge or the token dialog */ }
}

let started = false;

async function start() {
  try {
    showStatus(await api("GET", "/status"));
  } catch (err) {
    if (!(err instanceof AuthError)) { $("conn").dataset.state = "down"; setTimeout(start, 3000); }
    return;
  }
  if (started) return;
  started = true;
  stream("values", (v) => { if (v) showValues(v); });
  stream("waveform", (w, hello) => {
    if (w) showWave(w);
    else if (hello && hello.available === false) $("scope-note").textContent = t("waveform_none");
  });
  stream("events", (e) => { if (e) showEvents([e], true); });
  poll("/events", (r) => showEvents(r.events || [], false));
  const every = (ms, fn) => { fn(); setInterval(fn, ms); };
  every(2000, () => poll("/status", showStatus));
  every(2000, () => poll("/pq", showPq));
  every(10000, () => poll("/tariff", showTariff));
  every(60000, () => poll("/load-profile", showProfile));
  every(3000, refreshFaults);
}

function init() {
  setLang(sessionStorage.getItem(LANG_KEY) || new URLSearchParams(location.search).get("lang") || "en");
  $("lang").textContent = getLang() === "ar" ? "English" : "عربي";
  $("lang").onclick = () => {
    sessionStorage.setItem(LANG_KEY, setLang(getLang() === "ar" ? "en" : "ar"));
    $("lang").textContent = getLang() === "ar" ? "English" : "عربي";
    if (state.values) showValues(state.values);
    if (state.status) showStatus(state.status);
    if (state.pq) showPq(state.pq);
    if (state.tariff) showTariff(state.tariff);
    if (state.profile) showProfile(state.profile);
    if (state.faults) showFaults(state.faults);
    $("conn-text").textContent = t(state.live ? "live" : "polling");
  };
  $("token-form").onsubmit = () => {
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    for (const ws of Object.values(state.sockets)) ws.close();
    start();
  };
  for (const box of document.querySelectorAll("#scope-legend input")) {
    box.onchange = () => { state.scope[box.dataset.ch] = box.checked; drawScope($("scope"), state.wave, state.scope); };
  }
  drawScope($("scope"), null, state.scope);
  wireSimForms();
  start();
}

init();
