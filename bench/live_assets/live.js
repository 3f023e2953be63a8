// The page of `backprop-bench live`. It draws what the server streams and computes nothing that
// the kernels compute. Served live it talks to its own server only; saved as a replay it carries
// its frames inside (window.LIVE_REPLAY) and talks to nothing.
"use strict";

const SETUP_FIELDS = ["problem", "hidden", "activation", "loss", "optimizer", "lr", "init",
  "batchnorm", "dropout", "weight_decay", "seed", "tolerance", "epochs", "nets", "net"];
const PROBLEMS = ["xor", "and", "or", "parity2", "parity3", "parity4", "parity5", "parity6",
  "parity7", "parity8"];
const MAX_LINKS = 2048; // weights drawn as lines at most
const MAX_HEATMAPS = 64; // hidden units' heatmaps (live_train.MAX_HEATMAPS)
let drawLinks = true;
const RECONNECT_MS = 2000; // a lost stream is tried again after this long
// a command the server has not answered within this long: the browser may hold no connection
// to send it on (six per host, one held by each open page's stream)
const COMMAND_WAIT_MS = 8000;
const MAX_FRAMES = 400; // a saved run keeps at most this many frames (curves keep every epoch)
const $ = (id) => document.getElementById(id);

const state = {
  session: null, setup: null, snapshot: null, population: null,
  curve: { epoch: [], loss: [], grad: [] }, frames: [], replay: null, replayAt: 0,
  replayTimer: null,
};

// ------------------------------------------------------------------- numbers as train prints them

function pyExp(x) { // Python's f"{x:.3e}": two-digit exponent
  const [m, e] = x.toExponential(3).split("e");
  const n = Math.abs(parseInt(e, 10));
  return `${m}e${e[0] === "-" ? "-" : "+"}${n < 10 ? "0" : ""}${n}`;
}
function pyG4(x) { // Python's f"{x:.4g}"
  let [m, e] = x.toPrecision(4).split("e");
  if (m.includes(".")) m = m.replace(/0+$/, "").replace(/\.$/, "");
  if (e === undefined) return m;
  const n = Math.abs(parseInt(e, 10));
  return `${m}e${e[0] === "-" ? "-" : "+"}${n < 10 ? "0" : ""}${n}`;
}
// Python's rounding of a float to a whole number: a tie to the even one (f"{0.625:.0%}" is 62%,
// where Math.round gives 63: a parity3 net at 5 of 8 patterns read 63% on the page, 62% in train)
function pyRound(v) {
  const f = Math.floor(v), d = v - f; // exact for the values a percentage takes
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}
// the largest and smallest of many values (Math.max(...a) overflowed the call stack from about
// 60,000 epochs of curve points, and every frame's drawing stopped there)
function maxOf(values, start = -Infinity) { let m = start; for (const v of values) if (v > m) m = v; return m; }
function minOf(values, start = Infinity) { let m = start; for (const v of values) if (v < m) m = v; return m; }
const fmt = {
  loss: (x) => (x === null ? "diverged" : Math.abs(x) < 1e3 ? x.toFixed(6) : pyG4(x)), // as train prints it
  accuracy: (x) => (x === null ? "diverged" : `${pyRound(x * 100)}%`), // f"{x:.0%}"
  grad: (x) => (x === null ? "diverged" : pyExp(x)),
};

// ----------------------------------------------------------------------------------- messages

function showMessage(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = !text;
}

// -------------------------------------------------------------------------------- server link

function connect() {
  const source = new EventSource(`/events${location.search}`);
  source.addEventListener("setup", (e) => onSetup(JSON.parse(e.data)));
  source.addEventListener("snapshot", (e) => onSnapshot(JSON.parse(e.data)));
  source.addEventListener("population", (e) => onPopulation(JSON.parse(e.data)));
  source.addEventListener("error", (e) => {
    if (e.data) { showMessage(JSON.parse(e.data).message); return; }
    $("connection").textContent = "connection lost: is the server still running?";
    state.disconnected = true;
    scheduleDraw();
    // the browser would reconnect to the URL the page was opened with, and a restarted server
    // would start that setup, not the one on display: reconnect with the URL of now, which
    // holds the setup of now
    source.close();
    setTimeout(connect, RECONNECT_MS);
  });
  source.onopen = () => {
    $("connection").textContent = "connected";
    state.disconnected = false;
    if (state.unanswered) { state.unanswered = false; showMessage(""); } // it answers again
    scheduleDraw(); // the status box too, not at the next frame only
  };
}

async function send(action, extra = {}, origin = null) {
  if (state.replay) return replayCommand(action);
  if (!state.session) return;
  const waiting = new AbortController();
  const timer = setTimeout(() => waiting.abort(), COMMAND_WAIT_MS);
  try {
    const reply = await fetch("/command", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session: state.session, action, ...extra }), signal: waiting.signal,
    });
    const doc = await reply.json();
    state.unanswered = false;
    showMessage(doc.ok ? "" : doc.error);
    // a refused setting: the controls show the setup that still trains, the refused field too,
    // but a field being typed into keeps what is typed
    if (!doc.ok && state.setup) {
      for (const key of SETUP_FIELDS) {
        if (key === origin || $(key) !== document.activeElement) $(key).value = state.setup.query[key];
      }
    }
  } catch (err) {
    state.unanswered = true;
    showMessage(waiting.signal.aborted
      ? `the server did not answer within ${COMMAND_WAIT_MS / 1000} s: it may be busy, or this ` +
        "browser holds all its connections to it (six at most, one for each open tab of the " +
        "page): close another tab of the page"
      : `the server did not answer (${err.message}); is it still running?`);
  } finally {
    clearTimeout(timer);
  }
}

function readSetup() {
  const setup = {};
  for (const key of SETUP_FIELDS) setup[key] = $(key).value;
  return setup;
}

// ---------------------------------------------------------------------------------- handlers

function onSetup(doc) {
  // a reconnection (the server restarted, or the stream broke) opens a new session at epoch 0:
  // say that the run on display is gone rather than replace it without a word
  if (doc.session && state.session && doc.session !== state.session && !state.replay) {
    showMessage("the connection was reopened and the server started a new session at epoch 0: " +
      "the previous run and its curves are gone (Save run keeps a run before a restart)");
  }
  if (doc.session) state.session = doc.session;
  state.setup = doc;
  state.curve = { epoch: [], loss: [], grad: [] };
  state.frames = [{ kind: "setup", data: doc }];
  // the field being edited keeps what is typed: a reply to an earlier change, late on a busy
  // server, overwrote it mid-edit
  for (const key of SETUP_FIELDS) {
    if (doc.query[key] !== undefined && $(key) !== document.activeElement) $(key).value = doc.query[key];
  }
  $("command").textContent = doc.command;
  $("spec").textContent = `${doc.spec}, ${doc.n_params} parameters, ${doc.backend} kernels`;
  $("boundary-panel").hidden = doc.layers[0] !== 2;
  if (!state.replay) history.replaceState(null, "", `?${new URLSearchParams(doc.query)}`);
  buildNetwork(doc.layers);
  buildUnits(doc.layers);
  $("layer-norms").dataset.height = 16 + 28 * (doc.layers.length - 1);
}

function onSnapshot(s) {
  state.snapshot = s;
  const h = s.history, c = state.curve;
  for (let i = 0; i < h.epoch.length; i++) {
    if (c.epoch.length && h.epoch[i] <= c.epoch[c.epoch.length - 1]) continue; // each epoch once
    state.curve.epoch.push(h.epoch[i]);
    state.curve.loss.push(h.loss[i]);
    state.curve.grad.push(h.grad_norm[i]);
  }
  if (s.population) state.population = s.population;
  if (!state.replay) keepFrame({ kind: "snapshot", data: s });
  scheduleDraw();
}

function onPopulation(p) {
  state.population = p;
  if (!state.replay) keepFrame({ kind: "population", data: p });
  scheduleDraw();
}

function keepFrame(frame) {
  state.frames.push(frame);
  if (state.frames.length <= MAX_FRAMES) return;
  // thin the saved frames: drop every other snapshot, handing its curve points to the next
  const kept = [state.frames[0]];
  let carry = null;
  state.frames.slice(1).forEach((f, i) => {
    if (f.kind !== "snapshot") { kept.push(f); return; }
    if (carry) {
      const h = {};
      for (const k of Object.keys(f.data.history)) h[k] = carry[k].concat(f.data.history[k]);
      f = { kind: "snapshot", data: { ...f.data, history: h } };
      carry = null;
      kept.push(f);
    } else if (i % 2 === 0 && i < state.frames.length - 2) {
      carry = f.data.history;
    } else {
      kept.push(f);
    }
  });
  state.frames = kept;
}

// ------------------------------------------------------------------------------------ drawing

let drawPending = false;
function scheduleDraw() { // at most one redraw per animation frame
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => { drawPending = false; draw(); });
}

function draw() {
  const s = state.snapshot;
  if (!s || !state.setup) return;
  $("connection").textContent = state.replay ? `replay of a saved run (${state.replay.length} frames)`
    : state.disconnected ? "connection lost: is the server still running?" : "connected";
  document.querySelector('[data-stat="epoch"]').textContent = String(s.epoch);
  document.querySelector('[data-stat="loss"]').textContent = fmt.loss(s.loss);
  document.querySelector('[data-stat="accuracy"]').textContent = fmt.accuracy(s.accuracy);
  document.querySelector('[data-stat="grad-norm"]').textContent = fmt.grad(s.grad_norm);
  const status = $("status");
  // the net's status; "training" only while it trains (before Play: ready; after Pause: paused)
  let shown = s.status;
  if (shown === "training" && !s.playing && !state.replay) shown = s.epoch === 0 ? "ready" : "paused";
  if (state.disconnected) shown = "disconnected";
  // a net that converged trains on to the budget while Play runs: say so (it read "converged"
  // alone, and nothing showed that Play still ran)
  else if (s.playing && !state.replay && shown !== "training") shown += ", playing on";
  status.textContent = shown;
  status.className = shown.split(",")[0].replace(" ", "-");
  $("speed").textContent = s.epochs_per_second ? Math.round(s.epochs_per_second).toLocaleString("en") : "–";
  drawNetwork(s.theta);
  if (s.grid) drawBoundary(s.grid);
  drawCurves();
  drawLayerNorms(s.layer_grad_norms);
  drawPopulation(state.population);
}

function signColor(v, alpha) {
  return v >= 0 ? `rgba(232,133,61,${alpha})` : `rgba(59,125,216,${alpha})`;
}

// weights of layer l in theta: W (fan_in x fan_out, row-major) then b (fan_out)
function layerParams(layers, theta) {
  const out = [];
  let at = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    const fi = layers[l], fo = layers[l + 1];
    out.push({ W: theta.slice(at, at + fi * fo), b: theta.slice(at + fi * fo, at + fi * fo + fo), fi, fo });
    at += fi * fo + fo;
  }
  return out;
}

const SVG = "http://www.w3.org/2000/svg";
let links = [], nodes = [];
function buildNetwork(layers) {
  const svg = $("network");
  svg.replaceChildren();
  const width = 640, height = 260, pad = 30;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const pos = layers.map((n, l) => {
    const x = pad + (l * (width - 2 * pad)) / (layers.length - 1);
    return Array.from({ length: n }, (_, j) => [x, n === 1 ? height / 2 : pad + (j * (height - 2 * pad)) / (n - 1)]);
  });
  links = []; nodes = [];
  // a line per weight up to MAX_LINKS: 64 units in 6 layers (20,800 lines) stalled the tab
  const weights = layers.slice(1).reduce((n, fo, l) => n + layers[l] * fo, 0);
  drawLinks = weights <= MAX_LINKS;
  // the key describes lines that are drawn (index.html's words), none for a net of more weights
  const key = $("network-key");
  if (key.dataset.lines === undefined) key.dataset.lines = key.textContent;
  key.textContent = drawLinks ? key.dataset.lines : ": units only; hover a unit for its bias";
  $("weight-readout").textContent = drawLinks ? "\u00a0"
    : `${weights.toLocaleString("en")} weights: too many to draw (at most ${MAX_LINKS.toLocaleString("en")}); hover a unit for its bias`;
  const most = Math.max(...layers), radius = Math.max(2, Math.min(9, (0.4 * (height - 2 * pad)) / Math.max(most - 1, 1)));
  for (let l = 0; drawLinks && l + 1 < layers.length; l++) {
    for (let i = 0; i < layers[l]; i++) {
      for (let j = 0; j < layers[l + 1]; j++) {
        const line = document.createElementNS(SVG, "line");
        const [x1, y1] = pos[l][i], [x2, y2] = pos[l + 1][j];
        line.setAttribute("x1", x1); line.setAttribute("y1", y1);
        line.setAttribute("x2", x2); line.setAttribute("y2", y2);
        const title = document.createElementNS(SVG, "title");
        line.appendChild(title);
        const name = `W${l + 1}[${i + 1},${j + 1}] (${l === 0 ? "input" : "unit"} ${i + 1} \u2192 ${l + 2 === layers.length ? "output" : "unit"} ${j + 1})`;
        line.addEventListener("mouseenter", () => { $("weight-readout").textContent = `${name} = ${line.dataset.value}`; });
        svg.appendChild(line);
        links.push({ line, title, name });
      }
    }
  }
  for (let l = 0; l < layers.length; l++) {
    pos[l].forEach(([x, y], j) => {
      const c = document.createElementNS(SVG, "circle");
      c.setAttribute("cx", x); c.setAttribute("cy", y); c.setAttribute("r", radius);
      c.setAttribute("fill", "#fff"); c.setAttribute("stroke", "#555");
      const title = document.createElementNS(SVG, "title");
      c.appendChild(title);
      const name = l === 0 ? `input ${j + 1}` : l + 1 === layers.length ? `output ${j + 1}` : `layer ${l} unit ${j + 1}`;
      c.addEventListener("mouseenter", () => { $("weight-readout").textContent = `${name}${c.dataset.value ? ` bias = ${c.dataset.value}` : ""}`; });
      svg.appendChild(c);
      nodes.push({ c, title, name, layer: l, unit: j });
    });
  }
}

function drawNetwork(theta) {
  const params = layerParams(state.setup.layers, theta);
  const all = params.flatMap((p) => [...p.W, ...p.b]).filter((v) => v !== null);
  const biggest = all.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);
  let k = 0;
  for (const p of drawLinks ? params : []) {
    for (let i = 0; i < p.fi; i++) {
      for (let j = 0; j < p.fo; j++) {
        const v = p.W[i * p.fo + j], link = links[k++];
        const text = v === null ? "NaN" : v.toPrecision(6);
        link.line.dataset.value = text;
        link.title.textContent = `${link.name} = ${text}`;
        link.line.setAttribute("stroke", v === null ? "#b3261e" : signColor(v, 0.85));
        link.line.setAttribute("stroke-width", v === null ? 1 : 0.6 + (7 * Math.abs(v)) / biggest);
      }
    }
  }
  for (const n of nodes) {
    if (n.layer === 0) continue;
    const v = params[n.layer - 1].b[n.unit];
    const text = v === null ? "NaN" : v.toPrecision(6);
    n.c.dataset.value = text;
    n.title.textContent = `${n.name}, bias = ${text}`;
    n.c.setAttribute("fill", v === null ? "#fff" : signColor(v, Math.min(1, 0.15 + Math.abs(v) / biggest)));
  }
}

function buildUnits(layers) {
  const box = $("units");
  box.replaceChildren();
  const hidden = layers.slice(1, -1).reduce((a, b) => a + b, 0);
  const shown = Math.min(hidden, MAX_HEATMAPS); // the server sends the first MAX_HEATMAPS
  if (shown < hidden) {
    const note = document.createElement("div");
    note.textContent = `the first ${shown} of ${hidden} hidden units`;
    box.appendChild(note);
  }
  // unit by unit in the server's order, layer by layer; with several hidden layers each one's
  // units under its name (in one run of squares, where a layer ended did not show)
  const widths = layers.slice(1, -1), several = widths.length > 1;
  for (let l = 0, u = 0; l < widths.length && u < shown; l++) {
    if (several) {
      const name = document.createElement("div");
      name.className = "layer-name";
      name.textContent = `hidden layer ${l + 1} (${widths[l]} ${widths[l] === 1 ? "unit" : "units"})`;
      box.appendChild(name);
    }
    for (let j = 0; j < widths[l] && u < shown; j++, u++) {
      const c = document.createElement("canvas");
      c.width = state.setup.grid.size; c.height = state.setup.grid.size;
      c.title = several ? `hidden layer ${l + 1}, unit ${j + 1}` : `hidden unit ${j + 1}`;
      box.appendChild(c);
    }
  }
}

// colours of a heatmap value in [-1, 1]: blue through white to orange
function heat(t) {
  const a = Math.max(-1, Math.min(1, t));
  const [r, g, b] = a >= 0 ? [232, 133, 61] : [59, 125, 216];
  const w = 1 - Math.abs(a);
  return [r + (255 - r) * w, g + (255 - g) * w, b + (255 - b) * w];
}

function paintGrid(canvas, values, toUnit) {
  const n = state.setup.grid.size, ctx = canvas.getContext("2d");
  const img = ctx.createImageData(n, n);
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < n; col++) {
      const v = values[row * n + col]; // row 0 is the lowest x2: draw it at the bottom
      const [r, g, b] = v === null ? [179, 38, 30] : heat(toUnit(v));
      const at = 4 * ((n - 1 - row) * n + col);
      img.data[at] = r; img.data[at + 1] = g; img.data[at + 2] = b; img.data[at + 3] = 255;
    }
  }
  return img;
}

// A chart drawn at the screen's pixel density: its canvas holds its size in CSS pixels times
// devicePixelRatio, and is drawn on in CSS pixels (at one pixel a CSS pixel, the text and lines of
// a screen of ratio 2 or 3 were blurred). The size in CSS pixels is the canvas's width and height
// attributes in index.html (a height set later in data-height); returns the context and that size.
function surface(canvas) {
  const ratio = window.devicePixelRatio || 1;
  if (!canvas.dataset.width) canvas.dataset.width = canvas.width;
  if (!canvas.dataset.height) canvas.dataset.height = canvas.height;
  const w = Number(canvas.dataset.width), h = Number(canvas.dataset.height);
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
    canvas.style.width = `${w}px`; // its height follows (the page may narrow it: max-width)
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, w, h };
}

// The charts follow the screen's pixel density when it changes (the window moved to another
// screen, the page zoomed): redrawn at once, also while the net is paused and no frame comes
// (until the next frame they were stretched from the old density, blurred or cropped).
function watchPixelRatio() {
  const ratio = window.devicePixelRatio || 1;
  window.matchMedia(`(resolution: ${ratio}dppx)`).addEventListener("change", () => {
    scheduleDraw();
    watchPixelRatio(); // a query for the new density
  }, { once: true });
}

function drawBoundary(grid) {
  const { ctx, w, h } = surface($("boundary"));
  const n = state.setup.grid.size, [lo, hi] = state.setup.grid.range;
  const off = document.createElement("canvas");
  off.width = n; off.height = n;
  off.getContext("2d").putImageData(paintGrid(off, grid.output, (v) => 2 * v - 1), 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, w, h);
  const X = state.setup.problem.X, Y = state.setup.problem.Y;
  X.forEach(([x1, x2], i) => {
    const px = ((x1 - lo) / (hi - lo)) * w, py = (1 - (x2 - lo) / (hi - lo)) * h;
    ctx.beginPath(); ctx.arc(px, py, 7, 0, 2 * Math.PI);
    ctx.fillStyle = Y[i][0] >= 0.5 ? "#e8853d" : "#3b7dd8"; ctx.fill();
    ctx.lineWidth = 2.5; ctx.strokeStyle = "#222"; ctx.stroke();
  });
  const units = $("units").querySelectorAll("canvas");
  grid.hidden.forEach((values, u) => {
    if (!units[u]) return;
    const finite = values.filter((v) => v !== null);
    const scale = maxOf(finite.map(Math.abs), 1e-12);
    const signed = finite.some((v) => v < 0);
    units[u].getContext("2d").putImageData(
      paintGrid(units[u], values, signed ? (v) => v / scale : (v) => (2 * v) / scale - 1), 0, 0);
  });
}

function logAxes(ctx, w, h, pad, lo, hi, xmax, xlabel) {
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#ddd"; ctx.fillStyle = "#666"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    const y = h - pad.b - ((e - lo) / (hi - lo)) * (h - pad.t - pad.b);
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
    ctx.fillText(`1e${e}`, 2, y + 4);
  }
  ctx.fillText(`${xlabel} ${xmax.toLocaleString("en")}`, w - pad.r - 90, h - 4);
}

function drawCurves() {
  const { ctx, w, h } = surface($("curves"));
  const pad = { l: 42, r: 8, t: 8, b: 18 };
  const c = state.curve, n = c.epoch.length;
  if (!n) return;
  const logs = c.loss.concat(c.grad).filter((v) => v !== null && v > 0).map(Math.log10);
  const lo = Math.floor(minOf(logs, 0)), hi = Math.ceil(maxOf(logs, 0));
  const xmax = Math.max(1, c.epoch[n - 1]);
  logAxes(ctx, w, h, pad, lo, hi === lo ? lo + 1 : hi, xmax, "epoch");
  const stride = Math.max(1, Math.floor(n / 1500));
  // the gradient norm first, the loss over it: a noisy gradient (dropout) hid the loss
  for (const [values, color] of [[c.grad, "#3b7dd8"], [c.loss, "#e8853d"]]) {
    ctx.beginPath(); ctx.strokeStyle = color; ctx.lineWidth = 1.5;
    let started = false;
    for (let i = 0; i < n; i += (i + stride < n ? stride : Math.max(1, n - 1 - i))) {
      const v = values[i];
      if (v === null || v <= 0) { started = false; continue; }
      const x = pad.l + (c.epoch[i] / xmax) * (w - pad.l - pad.r);
      const y = h - pad.b - ((Math.log10(v) - lo) / ((hi === lo ? lo + 1 : hi) - lo)) * (h - pad.t - pad.b);
      if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
    }
    ctx.stroke();
  }
}

function drawLayerNorms(norms) {
  const { ctx, w, h } = surface($("layer-norms"));
  ctx.clearRect(0, 0, w, h);
  const layers = state.setup.layers, rowH = Math.min(28, (h - 10) / norms.length);
  const logs = norms.filter((v) => v !== null && v > 0).map(Math.log10);
  const lo = Math.floor(minOf(logs, -1)) - 1, hi = Math.ceil(maxOf(logs, 0));
  ctx.font = "11px sans-serif";
  norms.forEach((v, l) => {
    const y = 5 + l * rowH;
    ctx.fillStyle = "#666";
    ctx.fillText(`layer ${l + 1} (${layers[l]}\u2192${layers[l + 1]})`, 2, y + rowH * 0.6);
    if (v === null) { ctx.fillStyle = "#b3261e"; ctx.fillText("NaN", 110, y + rowH * 0.6); return; }
    const frac = v > 0 ? (Math.log10(v) - lo) / (hi - lo) : 0;
    ctx.fillStyle = "#3b7dd8";
    ctx.fillRect(110, y + 3, frac * (w - 200), rowH - 6);
    ctx.fillStyle = "#222";
    ctx.fillText(pyExp(v), 114 + frac * (w - 200), y + rowH * 0.6);
  });
}

function drawPopulation(p) {
  if (!p) return;
  const trained = p.n_done < p.n_nets ? `, ${p.n_done.toLocaleString("en")} trained so far` : "";
  let text = `${p.n_nets.toLocaleString("en")} seeded nets of this setup${trained}`;
  const shown = state.snapshot ? state.snapshot.net : 0;
  if (shown >= p.n_nets) text += ` (nets 0 to ${(p.n_nets - 1).toLocaleString("en")}: the displayed net, ${shown.toLocaleString("en")}, is not among them)`;
  if (p.converged) {
    const stalls = p.epoch >= p.stalled_from ? `${p.n_stalled} stalled` : `stalls judged from epoch ${p.stalled_from.toLocaleString("en")}`;
    text += ` \u2014 at epoch ${p.epoch.toLocaleString("en")}: ${(100 * p.converged_now).toFixed(1)}% converged, ${p.diverged} diverged, ${stalls}`;
  }
  $("pop-count").textContent = text;
  if (!p.converged) return;
  const { ctx, w, h } = surface($("pop-converged"));
  const pad = { l: 36, r: 8, t: 8, b: 18 };
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#ddd"; ctx.fillStyle = "#666"; ctx.font = "11px sans-serif";
  for (const f of [0, 0.5, 1]) {
    const y = h - pad.b - f * (h - pad.t - pad.b);
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
    ctx.fillText(`${f * 100}%`, 2, y + 4);
  }
  const budget = Math.max(1, Number(state.setup.query.epochs));
  ctx.fillText(`epoch ${budget.toLocaleString("en")}`, w - pad.r - 80, h - 4);
  ctx.beginPath(); ctx.strokeStyle = "#1e7b34"; ctx.lineWidth = 2;
  p.epochs.forEach((e, i) => {
    const x = pad.l + (e / budget) * (w - pad.l - pad.r), y = h - pad.b - p.converged[i] * (h - pad.t - pad.b);
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.stroke();

  const { ctx: hx, w: hw, h: hh } = surface($("pop-histogram"));
  hx.clearRect(0, 0, hw, hh);
  const { edges, counts } = p.histogram, most = maxOf(counts, 1), bw = (hw - 20) / counts.length;
  const tallest = counts.indexOf(most), full = hh - 46; // room above for the scale's label
  counts.forEach((n, i) => {
    const bar = (n / most) * full;
    hx.fillStyle = "#e8853d"; hx.fillRect(10 + i * bw, hh - 18 - bar, bw - 1, bar);
  });
  hx.fillStyle = "#666"; hx.font = "11px sans-serif";
  hx.textAlign = "center"; // each label under its bin edge, the last one inside the canvas
  // the scale: the tallest bar's count over it (every bar is drawn against it)
  if (tallest >= 0 && counts[tallest] > 0) {
    const label = `${most.toLocaleString("en")} ${most === 1 ? "net" : "nets"}`;
    hx.fillText(label, Math.max(30, Math.min(10 + (tallest + 0.5) * bw, hw - 30)), hh - 22 - full);
  }
  for (let i = 0; i < edges.length; i += 4) hx.fillText(`1e${edges[i]}`, Math.max(16, Math.min(10 + i * bw, hw - 14)), hh - 4);
  hx.textAlign = "start";
  if (p.histogram.nonfinite) hx.fillText(`${p.histogram.nonfinite} NaN`, hw - 60, 12);
  // the last record at or before the displayed epoch, which may lie a record's interval back
  if (p.histogram.epoch !== undefined) hx.fillText(`at epoch ${p.histogram.epoch.toLocaleString("en")}`, 12, 12);

  const list = $("stalled");
  list.replaceChildren();
  if (p.epoch < p.stalled_from) list.textContent = `judged from epoch ${p.stalled_from.toLocaleString("en")} on (an early plateau is no stall)`;
  else if (!p.stalled.length) list.textContent = "none";
  if (p.stalled.length && p.n_stalled > p.stalled.length) {
    const note = document.createElement("div");
    note.textContent = `the ${p.stalled.length} of ${p.n_stalled} with the highest loss:`;
    note.style.flexBasis = "100%"; // a line of its own above the nets
    list.appendChild(note);
  }
  for (const s of p.stalled) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `net ${s.net}: ${s.loss === null ? "NaN" : s.loss.toFixed(3)}`;
    b.title = `display net ${s.net}`;
    b.disabled = Boolean(state.replay); // a saved run holds the displayed net's frames only
    if (state.snapshot && s.net === state.snapshot.net) b.className = "shown";
    b.addEventListener("click", () => send("select", { net: s.net }));
    list.appendChild(b);
  }
}

// ------------------------------------------------------------------------------------- replay

function replayCommand(action) {
  const frames = state.replay;
  const show = (k) => {
    state.replayAt = Math.max(0, Math.min(k, frames.length - 1));
    state.curve = { epoch: [], loss: [], grad: [] };
    for (let i = 0; i <= state.replayAt; i++) {
      const f = frames[i];
      if (f.kind === "setup") onSetup(f.data);
      else if (f.kind === "snapshot") onSnapshot(f.data);
      else onPopulation(f.data);
    }
  };
  clearInterval(state.replayTimer);
  if (action === "play") {
    state.replayTimer = setInterval(() => {
      const f = frames[state.replayAt + 1];
      if (!f) { clearInterval(state.replayTimer); return; }
      state.replayAt += 1;
      if (f.kind === "snapshot") onSnapshot(f.data); else if (f.kind === "population") onPopulation(f.data);
    }, 1000 / 30);
  } else if (action === "step") {
    // to the next snapshot of the net: population frames in between change no epoch
    let k = state.replayAt + 1;
    while (k < frames.length - 1 && frames[k].kind !== "snapshot") k += 1;
    show(k);
  } else if (action === "reset") {
    show(1);
  }
}

async function saveRun() {
  const page = await (await fetch("/")).text();
  const frames = state.frames;
  const data = JSON.stringify(frames).replace(/</g, "\\u003c");
  const html = page.replace("<script>", `<script>window.LIVE_REPLAY = ${data};<\/script>\n<script>`);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([html], { type: "text/html" }));
  const q = state.setup.query;
  link.download = `backprop-live-${q.problem}-${q.hidden}-seed${q.seed}-net${q.net}-epoch${state.snapshot.epoch}.html`;
  document.body.appendChild(link);
  link.click();
  link.remove();
}

// ------------------------------------------------------------------------------------ controls

function editHidden(change) {
  const input = $("hidden");
  let widths = input.value.trim().toLowerCase() === "none" || !input.value.trim()
    ? [] : input.value.split(",").map((w) => parseInt(w, 10));
  if (widths.some(Number.isNaN)) return showMessage("hidden widths must be integers such as 4 or 8,8");
  const before = widths.join(",");
  widths = change(widths);
  if (widths.join(",") === before) return; // "- unit" at width 1, "- layer" with none: no change, no restart
  input.value = widths.length ? widths.join(",") : "none";
  send("setup", { setup: readSetup() }, "hidden");
}

function init() {
  const select = $("problem");
  for (const name of PROBLEMS) {
    const o = document.createElement("option");
    o.textContent = name;
    select.appendChild(o);
  }
  $("play").addEventListener("click", () => send("play"));
  $("pause").addEventListener("click", () => send("pause"));
  $("step").addEventListener("click", () => send("step"));
  $("reset").addEventListener("click", () => send("reset"));
  $("save").addEventListener("click", saveRun);
  $("add-layer").addEventListener("click", () => editHidden((w) => w.concat([w.length ? w[w.length - 1] : 2])));
  $("remove-layer").addEventListener("click", () => editHidden((w) => w.slice(0, -1)));
  $("add-unit").addEventListener("click", () => editHidden((w) => (w.length ? w.slice(0, -1).concat([w[w.length - 1] + 1]) : [1])));
  $("remove-unit").addEventListener("click", () => editHidden((w) => (w.length && w[w.length - 1] > 1 ? w.slice(0, -1).concat([w[w.length - 1] - 1]) : w)));
  for (const key of SETUP_FIELDS) {
    $(key).addEventListener("change", () => (key === "net"
      ? send("select", { net: $(key).value }, key) : send("setup", { setup: readSetup() }, key)));
  }
  watchPixelRatio();
  if (window.LIVE_REPLAY) {
    state.replay = window.LIVE_REPLAY;
    document.body.classList.add("replay");
    $("save").hidden = true; // this file is the saved run
    for (const el of document.querySelectorAll("#controls input, #controls select, #controls .small button")) el.disabled = true;
    replayCommand("step");
    replayCommand("reset");
  } else {
    connect();
  }
}

init();
