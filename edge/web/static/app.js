// The bedside page. No framework, no network but the box: one Server-Sent Events stream
// (/api/stream) brings the samples, the int8 features and the panels' state; corrections
// go back by POST /api/corrections. window.nemg exposes the page's own measurements
// (latency from a sample reaching the box to the frame that draws it, frames drawn, audio)
// for `nemg bench web` and the browser tests.
"use strict";

const SWEEPS_MS = [10, 20, 50, 100, 200, 500, 1000];        // per division, 10 divisions
const SENS_UV = [20, 50, 100, 200, 500, 1000, 2000, 5000];  // per division, 8 divisions
const H_DIVS = 10, V_DIVS = 8;
const RING_S = 12;              // seconds of trace held (one 1 s/div sweep and its erase bar)
const SPECTRO_FRAMES = 1000;    // 10 s of 10 ms feature frames
const AUDIO_LEAD_S = 0.03;      // scheduled this far ahead of the audio clock
const AUDIO_MAX_LEAD_S = 0.08;  // further ahead than this, playback restarts (latency bound)
const FADE_S = 0.003;           // ramps at the edges of a run: silence, not clicks, at a gap
const MARKS = ["#ffd166", "#4cc9f0", "#ff8fab", "#c77dff", "#f8961e", "#b5e48c"];  // one per train
const CRITERIA = { agrees: "backed", contradicts: "withheld", names: "named" };  // edge/recogniser.py

const $ = (id) => document.getElementById(id);
const nice = (label) => label.replace(/_/g, " ");
const stats = {
  started: performance.now(), messages: 0, frames: 0, latencies: [], drawn: 0, marks: 0,
  audio: { chunks: 0, restarts: 0, gaps: 0, latencies: [] },
};
window.nemg = { stats, state: null };

let state = null;
let fs = 20000;
let pendingArrival = null;   // newest sample's arrival (ms since epoch) not yet drawn
let dirtyTrace = false;
let dirtySpectro = false;
let lastMessage = performance.now();

// ---- samples: a ring indexed by the stream's sample index -----------------------------------
class Ring {
  constructor(n) { this.resize(n); }
  resize(n) { this.n = n; this.buf = new Float32Array(n).fill(NaN); this.head = -1; }
  put(index, values) {
    if (this.head >= 0 && index > this.head + 1) {          // a gap: nothing drawn there
      for (let i = Math.max(this.head + 1, index - this.n); i < index; i++) this.buf[i % this.n] = NaN;
    }
    if (index + values.length - 1 <= this.head) return;       // already have it
    for (let k = 0; k < values.length; k++) this.buf[(index + k) % this.n] = values[k];
    this.head = Math.max(this.head, index + values.length - 1);
  }
  get(i) { return (i > this.head || i <= this.head - this.n || i < 0) ? NaN : this.buf[i % this.n]; }
}
const ring = new Ring(RING_S * fs);

function int16From(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Int16Array(bytes.buffer);
}
function int8From(b64) {
  const bin = atob(b64);
  const out = new Int8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = (bin.charCodeAt(i) << 24) >> 24;
  return out;
}

// ---- the sweeping trace ------------------------------------------------------------------------
const trace = $("trace");
function fitCanvas(c) {
  const r = c.getBoundingClientRect();
  const w = Math.max(50, Math.round(r.width)), h = Math.max(30, Math.round(r.height));
  if (c.width !== w || c.height !== h) { c.width = w; c.height = h; return true; }
  return false;
}
function drawTrace() {
  fitCanvas(trace);
  const g = trace.getContext("2d");
  const W = trace.width, H = trace.height;
  g.fillStyle = "#05080a"; g.fillRect(0, 0, W, H);
  g.strokeStyle = "#1d3a2a"; g.lineWidth = 1; g.beginPath();
  for (let i = 1; i < H_DIVS; i++) { const x = Math.round(i * W / H_DIVS) + .5; g.moveTo(x, 0); g.lineTo(x, H); }
  for (let i = 1; i < V_DIVS; i++) { const y = Math.round(i * H / V_DIVS) + .5; g.moveTo(0, y); g.lineTo(W, y); }
  g.stroke();
  const msDiv = +$("sweep").value, uvDiv = +$("sens").value;
  g.fillStyle = "#5f7f6a"; g.font = "11px sans-serif";
  g.fillText(`${msDiv} ms/div · ${uvDiv >= 1000 ? uvDiv / 1000 + " mV" : uvDiv + " µV"}/div`, 6, 13);
  if (ring.head < 0 || !state) return;
  const sweepN = Math.round(msDiv * H_DIVS / 1000 * fs);
  const head = ring.head;
  const sweepStart = head - (head % sweepN);
  const pos = Math.floor((head % sweepN) / sweepN * W);
  const erase = Math.max(4, Math.round(W / 60));
  const lsbPerPx = (uvDiv / state.uv_per_lsb) / (H / V_DIVS);
  const mid = H / 2;
  g.strokeStyle = "#7cf29a"; g.lineWidth = 1.2; g.beginPath();
  let pen = false;
  for (let x = 0; x < W; x++) {
    if (x > pos && x <= pos + erase) { pen = false; continue; }   // the erase bar ahead of the beam
    const base = x <= pos ? sweepStart : sweepStart - sweepN;
    const a = base + Math.floor(x * sweepN / W), b = Math.max(a + 1, base + Math.floor((x + 1) * sweepN / W));
    let lo = Infinity, hi = -Infinity;
    const step = Math.max(1, Math.floor((b - a) / 400));        // bounded work per column
    for (let i = a; i < b; i += step) { const v = ring.get(i); if (v < lo) lo = v; if (v > hi) hi = v; }
    if (lo === Infinity) { pen = false; continue; }              // a gap or before the start
    const y1 = Math.max(0, Math.min(H, mid - hi / lsbPerPx)), y2 = Math.max(0, Math.min(H, mid - lo / lsbPerPx));
    if (!pen) { g.moveTo(x + .5, y1); pen = true; } else g.lineTo(x + .5, y1);
    if (y2 !== y1) g.lineTo(x + .5, y2);
  }
  g.stroke();
  stats.marks = drawMarks(g, W, sweepStart, sweepN, pos + erase);
}
// The discharges of the last window's trains (the recogniser's evidence): a tick above the
// trace at each, one row and colour per train, where the beam drew that sample.
function drawMarks(g, W, sweepStart, sweepN, erased) {
  const ev = state.decision && state.decision.evidence;
  if (!ev) return 0;
  let n = 0;
  ev.trains.slice(0, MARKS.length).forEach((t, k) => {
    g.fillStyle = MARKS[k];
    const y = 18 + 7 * k;
    for (const ts of t.times_s) {
      const i = Math.round(ts * fs);
      if (i > ring.head || i < sweepStart - sweepN || Number.isNaN(ring.get(i))) continue;  // not drawn
      const current = i >= sweepStart;
      const x = Math.floor((i - (current ? sweepStart : sweepStart - sweepN)) * W / sweepN);
      if (!current && x <= erased) continue;   // the new sweep has drawn over it
      g.fillRect(x, y, 2, 5); n++;
    }
  });
  return n;
}

// ---- the spectrogram of the model's int8 features -------------------------------------------
const spectro = $("spectrogram");
const specImg = document.createElement("canvas");
specImg.width = SPECTRO_FRAMES; specImg.height = 40;
const STOPS = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]];
const PALETTE = new Uint8ClampedArray(256 * 3);
for (let i = 0; i < 256; i++) {
  const t = i / 255 * (STOPS.length - 1), k = Math.min(STOPS.length - 2, Math.floor(t)), f = t - k;
  for (let c = 0; c < 3; c++) PALETTE[i * 3 + c] = STOPS[k][c] + (STOPS[k + 1][c] - STOPS[k][c]) * f;
}
function addFrames(nFrames, values) {
  const mels = values.length / nFrames;
  if (specImg.height !== mels) { specImg.height = mels; }
  const g = specImg.getContext("2d");
  const n = Math.min(nFrames, SPECTRO_FRAMES);
  g.drawImage(specImg, -n, 0);
  const img = g.createImageData(n, mels);
  for (let f = 0; f < n; f++) {
    const src = (nFrames - n + f) * mels;
    for (let m = 0; m < mels; m++) {
      const v = values[src + m] + 128, o = ((mels - 1 - m) * n + f) * 4;   // low Mel bands at the bottom
      img.data[o] = PALETTE[v * 3]; img.data[o + 1] = PALETTE[v * 3 + 1]; img.data[o + 2] = PALETTE[v * 3 + 2]; img.data[o + 3] = 255;
    }
  }
  g.putImageData(img, SPECTRO_FRAMES - n, 0);
  dirtySpectro = true;
}
function drawSpectro() {
  fitCanvas(spectro);
  const g = spectro.getContext("2d");
  g.imageSmoothingEnabled = false;
  g.drawImage(specImg, 0, 0, spectro.width, spectro.height);
}

// ---- sound ---------------------------------------------------------------------------------------
const audio = {
  ctx: null, vol: null, run: null, next: 0, expected: null, muted: false,
  start() {
    if (!this.ctx) {
      this.ctx = new AudioContext({ latencyHint: "interactive" });
      this.vol = this.ctx.createGain(); this.run = this.ctx.createGain();
      this.run.connect(this.vol); this.vol.connect(this.ctx.destination);
      this.setVolume();
    }
    return this.ctx.resume();
  },
  stop() { if (this.ctx) this.ctx.suspend(); },
  playing() { return !!this.ctx && this.ctx.state === "running" && !this.muted; },
  setVolume() {
    if (!this.vol) return;
    const v = +$("volume").value / 100;
    this.vol.gain.value = this.muted ? 0 : Math.pow(v, 2) * 4;
  },
  push(index, pcm, netDelayMs) {
    const end = index + pcm.length;
    if (!this.playing()) { this.expected = end; return; }
    const ctx = this.ctx, now = ctx.currentTime, rate = fs;
    const contiguous = this.expected === index;
    const restart = !contiguous || this.next < now + 0.002 || this.next > now + AUDIO_MAX_LEAD_S;
    if (restart) {
      const g = this.run.gain;
      if (this.next > now + FADE_S) {                 // fade out what is already scheduled
        g.cancelScheduledValues(now);
        g.setValueAtTime(1, this.next - FADE_S); g.linearRampToValueAtTime(0, this.next);
      }
      this.next = Math.max(this.next, now + AUDIO_LEAD_S);   // a gap's silence is the time it took
      if (this.next > now + AUDIO_MAX_LEAD_S) this.next = now + AUDIO_LEAD_S;
      g.setValueAtTime(0, this.next); g.linearRampToValueAtTime(1, this.next + FADE_S);
      stats.audio.restarts++;
      if (!contiguous && this.expected !== null) stats.audio.gaps++;   // samples lost on the way
    }
    const buf = ctx.createBuffer(1, pcm.length, rate);
    const d = buf.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) d[i] = pcm[i] / 8192;    // 4 mV full scale at volume 1
    const src = ctx.createBufferSource();
    src.buffer = buf; src.connect(this.run); src.start(this.next);
    const out = (ctx.outputLatency || ctx.baseLatency || 0);
    stats.audio.latencies.push(netDelayMs + (this.next - now + out) * 1000);
    if (stats.audio.latencies.length > 2000) stats.audio.latencies.splice(0, 1000);
    stats.audio.chunks++;
    this.next += pcm.length / rate;
    this.expected = end;
  },
};

// ---- panels --------------------------------------------------------------------------------------
function fmtS(x) { return x.toFixed(1); }
function buildBars() {
  const box = $("bars"); box.textContent = "";
  for (const lab of state.labels) {
    const patho = state.pathological_labels.includes(lab);
    const n = document.createElement("span"); n.className = "name" + (patho ? " patho" : ""); n.textContent = nice(lab);
    const t = document.createElement("span"); t.className = "track";
    const f = document.createElement("span"); f.className = "fill" + (patho ? " patho" : ""); f.style.width = "0%"; f.dataset.label = lab;
    t.appendChild(f);
    const v = document.createElement("span"); v.className = "val"; v.textContent = "–";
    box.append(n, t, v);
  }
}
function trainText(t) {
  const backs = t.backs.length ? t.backs.map(nice).join("/") : "no class";
  return `${t.firings}× ${t.rate_hz.toFixed(1)} Hz · CV ${(100 * t.regularity_cv).toFixed(0)} % · ${t.pattern} · ` +
    `${t.duration_ms.toFixed(1)} ms · ${t.phases} ph · initially ${t.initial} · ${t.amplitude_uv.toFixed(0)} µV → ${backs}`;
}
// How the recogniser's evidence entered the last window's label (a badge beside the
// finding; 'not backed' only for a call of spontaneous activity, as edge/screen.py words it),
// and its trains (a legend under the trace, in the colours of their marks).
function renderEvidence(ev) {
  const badge = $("finding-criterion"), box = $("evidence");
  const word = !ev ? "" : CRITERIA[ev.criterion] ||
    (ev.criterion === "silent" && state.pathological_labels.includes(ev.call) ? "not backed" : "");
  badge.hidden = !word; badge.textContent = word;
  badge.className = "criterion " + (ev ? ev.criterion || "" : ""); badge.title = ev ? ev.line : "";
  box.hidden = !ev; box.textContent = "";
  if (!ev) return;
  const v = document.createElement("span"); v.className = "verdict"; v.title = ev.line;
  v.textContent = ev.trains.length ? ev.verdict + (ev.voluntary ? ` · voluntary activity: ${ev.voluntary_trains} units` : "") +
    ` · ${fmtS(ev.span_s[0])}–${fmtS(ev.span_s[1])} s` : `${ev.verdict} — ${ev.text}`;
  box.appendChild(v);
  ev.trains.slice(0, MARKS.length).forEach((t, k) => {
    const s = document.createElement("span"); s.className = "train";
    const dot = document.createElement("span"); dot.className = "dot"; dot.style.background = MARKS[k];
    s.append(dot, trainText(t));
    box.appendChild(s);
  });
  if (ev.trains.length > MARKS.length) {
    const more = document.createElement("span"); more.className = "train"; more.textContent = `+${ev.trains.length - MARKS.length} more`;
    box.appendChild(more);
  }
  dirtyTrace = true;
}
function render(st) {
  const first = !state || state.labels.join() !== st.labels.join();
  state = st; window.nemg.state = st;
  if (st.sample_rate_hz !== fs) { fs = st.sample_rate_hz; ring.resize(RING_S * fs); }
  if (first) buildBars();
  $("model").textContent = `${st.model.name} ${st.model.version} · ${st.board}`;
  $("trial").hidden = !st.model.trial;
  const L = st.link;
  const flags = L.flags.length ? " · " + L.flags.join(" ").toUpperCase() : "";
  const logNote = !st.logging ? " · NOT RECORDED" : (L.logging_stopped ? " · LOG STOPPED" : "");
  $("link").textContent = `${st.live ? L.state : "session ended"} · ${(L.rate_sps / 1000).toFixed(1)} kS/s · CRC err ${L.crc_errors} · gaps ${L.gaps} (${L.samples_lost} lost)${flags}${logNote}`;
  $("link").className = "link" + ((L.state !== "streaming" && st.live) || L.flags.length || L.crc_errors || L.gaps || !st.logging || L.logging_stopped ? " bad" : "");
  const d = st.decision, box = $("finding");
  if (!d) {
    $("finding-label").textContent = st.live ? "listening…" : "no decision";
    $("finding-detail").textContent = ""; box.className = "finding uncertain";
    $("finding-caveat").hidden = true;
    renderEvidence(null);
  } else {
    const unc = d.label === "uncertain";
    $("finding-label").textContent = nice(d.label).toUpperCase() + (d.pathological ? "  · PATHOLOGICAL" : "");
    const next = d.pending ? ` · changing? ${nice(d.pending.label)} (${d.pending.windows}/${d.pending.needed})` : "";
    $("finding-detail").textContent = (unc ? `uncertain: ${d.uncertain_reason}` :
      `confidence ${d.confidence.toFixed(2)} · at ${fmtS(d.at_s)} s · window ${d.window}`) + next;
    box.className = "finding " + (unc ? "uncertain" : d.pathological ? "patho" : "normal");
    $("finding-caveat").hidden = !d.caveat;
    $("finding-caveat").textContent = d.caveat ? `⚠ ${d.caveat}` : "";
    box.dataset.label = d.label;
    try { renderEvidence(d.evidence); } catch (e) {   // the trace and the sound must go on
      console.error("evidence not shown:", e); renderEvidence(null);
    }
    const fills = $("bars").querySelectorAll(".fill"), vals = $("bars").querySelectorAll(".val");
    d.probabilities.forEach((p, i) => {
      fills[i].style.width = (p * 100).toFixed(1) + "%";
      fills[i].classList.toggle("shown", st.labels[i] === d.label);
      vals[i].textContent = p.toFixed(2);
    });
  }
  renderMuap(st.muap);
  renderEvents(st.events);
}
// ---- the MUAP panel ----------------------------------------------------------------------------------
// The newest site summary (edge/muap_live.py): its line, each unit's confidence, the evidence,
// and a drawing of the analysis (inline SVG, classes styled in app.css): each unit's template
// (measured ones in colour with their duration between two markers, flagged ones grey with their
// verdict; one amplitude scale), the site's mean duration on a duration axis with the reference
// band of the mean behind it, and the recruitment plot (the measured units' firing rates in
// order of first firing, under the line rate = limit × units of edge/muap/interpretation.py).
const SVG_NS = "http://www.w3.org/2000/svg";
const FIG_W = 220;          // viewBox units ≈ px of the 800×480 side column: text stays ≥ 6 px
const CAPTION_H = 9, CELL_H = 32, GRID_COLS = 6, PLOTS_H = 52;
const FLAGGED = "#6b7682";
function svgEl(parent, tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text != null) el.textContent = text;
  parent.appendChild(el);
  return el;
}
const niceCeil = (x, step) => Math.max(step, Math.ceil(x / step) * step);
function unitCell(svg, u, x0, y0, w, peak, colour) {
  const g = svgEl(svg, "g", { class: "unit " + (u.measured ? "measured" : "flagged"),
    "data-id": u.id, "data-verdict": u.verdict });
  svgEl(g, "rect", { class: "cell", x: x0, y: y0 + 0.5, width: w, height: CELL_H - 1, rx: 2 });
  const span = u.template_uv.length * u.point_ms;   // point k at k × point_ms
  const X = (ms) => (x0 + 1 + (ms / span) * (w - 2)).toFixed(2);
  const cy = y0 + CELL_H / 2 + 1, half = CELL_H / 2 - 3;
  if (u.measured && u.onset_ms != null) {
    for (const [which, ms] of [["onset", u.onset_ms], ["end", u.end_ms]]) {
      svgEl(g, "line", { class: "dur " + which, x1: X(ms), x2: X(ms), y1: y0 + 2, y2: y0 + CELL_H - 2, "data-ms": ms });
    }
  }
  svgEl(g, "polyline", { class: "tpl", stroke: u.measured ? colour : FLAGGED,
    points: u.template_uv.map((v, k) => `${X(k * u.point_ms)},${(cy - (v / peak) * half).toFixed(2)}`).join(" ") });
  svgEl(g, "text", { class: "lab", x: x0 + 2, y: y0 + 8 }, `#${u.id}`);
  svgEl(g, "text", { class: "lab sub", x: x0 + 2, y: y0 + CELL_H - 3 },
    u.measured ? (u.duration_ms != null ? `${u.duration_ms.toFixed(1)} ms` : "") : u.verdict);
}
function durationAxis(svg, units, colour, m, x0, y0, w) {
  const lim = (m.limits || {}).duration_ms, mean = m.summary.mean_duration_ms;
  const durs = units.map((u) => u.duration_ms).filter((d) => d != null);
  const top = niceCeil(Math.max(mean, ...durs, lim ? lim[1] * 1.4 : 0) * 1.05, 5);
  const X = (ms) => (x0 + (Math.min(ms, top) / top) * w).toFixed(2);
  const ya = y0 + 34;                              // the axis
  svgEl(svg, "text", { class: "lab", x: x0, y: y0 + 7 }, `duration: mean ${mean.toFixed(1)} ms`);
  if (lim) {
    svgEl(svg, "rect", { class: "band", x: X(lim[0]), y: y0 + 12, width: (X(lim[1]) - X(lim[0])).toFixed(2),
      height: ya - y0 - 12, "data-lo": lim[0], "data-hi": lim[1] });
  }
  for (const [k, ms] of ((m.limits || {}).single_duration_ms || []).entries()) {
    svgEl(svg, "line", { class: "single", x1: X(ms), x2: X(ms), y1: y0 + 12, y2: ya, "data-ms": ms, "data-end": k ? "hi" : "lo" });
  }
  svgEl(svg, "line", { class: "axis", x1: x0, x2: x0 + w, y1: ya, y2: ya });
  for (const u of units) {
    if (u.duration_ms != null) {
      svgEl(svg, "line", { class: "udur", x1: X(u.duration_ms), x2: X(u.duration_ms), y1: y0 + 18, y2: ya - 2,
        stroke: colour.get(u.id), "data-id": u.id, "data-ms": u.duration_ms });
    }
  }
  svgEl(svg, "line", { class: "mean", x1: X(mean), x2: X(mean), y1: y0 + 10, y2: ya + 2, "data-ms": mean });
  const ticks = [0, ...(lim || []), top];
  ticks.forEach((t, k) => svgEl(svg, "text", { class: "lab sub tick", x: X(t), y: ya + 8,
    "text-anchor": k === 0 ? "start" : k === ticks.length - 1 ? "end" : "middle" }, `${t}`));
}
function recruitmentPlot(svg, units, colour, m, x0, y0, w) {
  const r = (m.limits || {}).recruitment_reduced_above, n = units.length, mean = m.summary.mean_firing_rate_hz;
  const order = [...units].sort((a, b) => (a.first_firing_s ?? Infinity) - (b.first_firing_s ?? Infinity));
  const rates = order.map((u) => u.firing_rate_hz || 0);
  const top = niceCeil(Math.max(mean, ...rates, r || 0) * 1.25, 10);
  const px0 = x0 + 12, pw = w - 14, py0 = y0 + 11, py1 = y0 + 40;
  const X = (k) => (px0 + (k / n) * (pw - 3)).toFixed(2), Y = (hz) => (py1 - (Math.min(hz, top) / top) * (py1 - py0)).toFixed(2);
  svgEl(svg, "text", { class: "lab", x: x0, y: y0 + 7 },
    `recruitment ${m.summary.recruitment_ratio}` + (r != null ? ` (≤ ${r})` : ""));
  svgEl(svg, "polyline", { class: "axis", points: `${px0},${py0} ${px0},${py1} ${px0 + pw},${py1}` });
  svgEl(svg, "text", { class: "lab sub tick", x: px0 - 2, y: py0 + 4, "text-anchor": "end" }, `${top}`);
  svgEl(svg, "text", { class: "lab sub tick", x: px0 - 2, y: py1, "text-anchor": "end" }, "0");
  svgEl(svg, "text", { class: "lab sub tick", x: px0 + pw, y: py1 + 8, "text-anchor": "end" }, `${n} units`);
  if (r != null) {   // rate = r × units, drawn as far as the plot's top
    const k = Math.min(n, top / r);
    svgEl(svg, "line", { class: "limit", x1: X(0), y1: Y(0), x2: X(k), y2: Y(r * k), "data-per-unit": r });
  }
  svgEl(svg, "line", { class: "mean-rate", x1: X(0), x2: X(n), y1: Y(mean), y2: Y(mean), "data-hz": mean });
  order.forEach((u, k) => svgEl(svg, "circle", { class: "rate", cx: X(k + 1), cy: Y(rates[k]), r: 2,
    fill: colour.get(u.id), "data-id": u.id, "data-hz": rates[k], "data-first": u.first_firing_s }));
}
function muapFigure(m) {
  const units = m.templates || [];
  const measured = units.filter((u) => u.measured && u.firing_rate_hz != null);
  const colour = new Map(measured.map((u, k) => [u.id, MARKS[k % MARKS.length]]));
  const cols = Math.min(GRID_COLS, units.length), rows = Math.ceil(units.length / cols);
  const gridH = CAPTION_H + rows * CELL_H, plots = measured.length > 0 && m.summary.mean_duration_ms != null;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${FIG_W} ${gridH + (plots ? PLOTS_H : 0)}`);
  svg.setAttribute("class", "muap-fig");
  // one amplitude scale for every unit: their sizes compare at a glance (as the report's)
  const peak = Math.max(1, ...units.map((u) => Math.max(...u.template_uv.map(Math.abs))));
  const w = FIG_W / cols;
  // a MUAP longer than its template is drawn on its wider one (edge/muap/analysis.py)
  const spans = [...new Set(units.map((u) => (u.template_uv.length * u.point_ms).toFixed(0)))];
  svgEl(svg, "text", { class: "lab sub", x: 2, y: 6 }, `templates: ${spans.join(" or ")} ms ` +
    `each, one scale ±${peak.toFixed(0)} µV; dashes: duration`);
  units.forEach((u, k) => unitCell(svg, u, (k % cols) * w, CAPTION_H + Math.floor(k / cols) * CELL_H, w - 2, peak, colour.get(u.id)));
  if (plots) {
    durationAxis(svg, measured, colour, m, 2, gridH + 2, FIG_W / 2 - 10);
    recruitmentPlot(svg, measured, colour, m, FIG_W / 2 + 2, gridH + 2, FIG_W / 2 - 4);
  }
  return svg;
}
function renderMuap(m) {
  const mb = $("muap");
  mb.hidden = !m;
  const key = m ? `${m.start_s}-${m.end_s}-${m.line}` : "";
  if (mb.dataset.key === key) return;   // redrawn only for a new analysis
  mb.dataset.key = key;
  if (!m) return;
  mb.textContent = "";
  const b = document.createElement("b"); b.textContent = `MUAP ${fmtS(m.start_s)}–${fmtS(m.end_s)} s: ${m.finding}`;
  mb.appendChild(b);
  if ((m.templates || []).length) {
    try { mb.appendChild(muapFigure(m)); } catch (e) { console.error("MUAP drawing not shown:", e); }
  }
  const p = document.createElement("div"); p.textContent = m.line;
  mb.appendChild(p);
  const verdicts = (m.summary && m.summary.unit_verdicts) || [];
  if (verdicts.length) {  // each unit's confidence; flagged ones are not measured
    const q = document.createElement("div"); q.className = "units";
    q.textContent = "units: " + verdicts.map((v) => v.verdict === "valid"
      ? `#${v.id} ✓ ${v.ptp_to_rms}× RMS` : `#${v.id} ${v.verdict}, not measured`).join(" · ");
    mb.appendChild(q);
  }
  for (const e of m.evidence.slice(0, 3)) { const q = document.createElement("div"); q.textContent = "· " + e; mb.appendChild(q); }
}
const judged = new Map();   // event id -> text of this page's judgement
function eventText(ev) {
  if (ev.kind === "gap") return `gap: ${ev.detail}`;
  if (ev.kind === "muap") return `MUAP: ${ev.label}`;
  return `${nice(ev.label)} (${ev.confidence.toFixed(2)})${ev.pathological ? " ⚠" : ""}`;
}
// a label event's detail: the rest check's note (edge/rest_check.DETAIL_PREFIX), then the
// recogniser's evidence line (edge/recogniser.py Recogniser.event_line), either or both
const caveatOf = (ev) => (ev.detail || "").startsWith("caveat: ") ? ev.detail.slice(8).split("; evidence: ")[0] : "";
const evidenceOf = (ev) => { const m = /(?:^|; )evidence: (.*)$/.exec(ev.detail || ""); return m ? m[1] : ""; };
function renderEvents(events) {
  const ol = $("events"); ol.textContent = "";
  for (const ev of [...events].reverse()) {
    const li = document.createElement("li");
    li.className = [ev.kind, ev.pathological ? "patho" : "", ev.correctable ? "correctable" : ""].join(" ");
    if (ev.id != null) li.dataset.event = ev.id;
    const t = document.createElement("span"); t.className = "t"; t.textContent = `${fmtS(ev.start_s)}–${fmtS(ev.end_s)} s`;
    const l = document.createElement("span"); l.className = "l"; l.textContent = eventText(ev);
    li.append(t, l);
    if (evidenceOf(ev)) li.title = evidenceOf(ev);
    if (caveatOf(ev)) { const c = document.createElement("span"); c.className = "c"; c.textContent = "not at rest: calls withheld (voluntary activity)"; li.appendChild(c); }
    if (judged.has(ev.id)) { const j = document.createElement("span"); j.className = "j"; j.textContent = judged.get(ev.id); li.appendChild(j); }
    if (ev.correctable) li.addEventListener("click", () => openJudge(ev));
    ol.appendChild(li);
  }
}

// ---- corrections ---------------------------------------------------------------------------------
let judging = null;
function openJudge(ev) {
  judging = ev;
  $("judge-what").textContent = `${fmtS(ev.start_s)}–${fmtS(ev.end_s)} s: the model said ${nice(ev.label).toUpperCase()} (${ev.confidence.toFixed(2)}). Was it?` +
    (caveatOf(ev) ? ` (The box noted ${caveatOf(ev)}.)` : "") +
    (evidenceOf(ev) ? ` Its evidence: ${evidenceOf(ev)}.` : "");
  const grid = $("judge-labels"); grid.textContent = "";
  for (const lab of state.labels) {
    const b = document.createElement("button"); b.type = "button"; b.textContent = nice(lab); b.dataset.label = lab;
    if (state.pathological_labels.includes(lab)) b.classList.add("patho");
    b.disabled = lab === ev.label;
    b.addEventListener("click", () => sendJudgement(lab));
    grid.appendChild(b);
  }
  $("judge-confirm").disabled = ev.label === "uncertain";   // the model gave no label to confirm
  $("judge").hidden = false;
}
async function sendJudgement(label) {
  const ev = judging; $("judge").hidden = true; judging = null;
  if (!ev) return;
  try {
    const r = await fetch("/api/corrections", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ event_id: ev.id, label }) });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    const what = label === "confirm" ? "✓ confirmed" : `→ ${nice(label)}`;
    judged.set(ev.id, what);
    toast(`${what}: saved${body.samples_saved ? ` with ${body.seconds_saved.toFixed(1)} s of signal` : " (signal no longer held)"}`);
    if (state) renderEvents(state.events);
    if (!$("review").hidden && currentSession) showSession(currentSession);
  } catch (e) { toast(`not saved: ${e.message}`); }
}
$("judge-confirm").addEventListener("click", () => sendJudgement("confirm"));
$("judge-cancel").addEventListener("click", () => { $("judge").hidden = true; judging = null; });
let toastTimer = null;
function toast(text) {
  const t = $("toast"); t.textContent = text; t.hidden = false;
  clearTimeout(toastTimer); toastTimer = setTimeout(() => { t.hidden = true; }, 3500);
}

// ---- review ----------------------------------------------------------------------------------------
let currentSession = null;
async function getJSON(url) {
  const r = await fetch(url); const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function cells(tr, values) { for (const v of values) { const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); } }
async function showSessions() {
  const tb = $("sessions").querySelector("tbody"); tb.textContent = "";
  let list;
  try { list = await getJSON("/api/sessions"); } catch (e) { const tr = document.createElement("tr"); cells(tr, [e.message]); tb.appendChild(tr); return; }
  for (const s of list) {
    const tr = document.createElement("tr"); tr.dataset.session = s.id;
    cells(tr, [s.id, (s.started || "").replace("T", " ").slice(0, 19), s.signal_seconds != null ? `${s.signal_seconds.toFixed(0)} s` : "…",
      s.finding ? nice(s.finding) : (s.ended ? "–" : "running"), s.events, s.corrections]);
    tr.addEventListener("click", () => showSession(s.id));
    tb.appendChild(tr);
  }
}
async function showSession(id) {
  currentSession = id;
  for (const tr of $("sessions").querySelectorAll("tbody tr")) tr.classList.toggle("on", +tr.dataset.session === id);
  const data = await getJSON(`/api/sessions/${id}`);
  const s = data.session;
  $("session-title").textContent = `Session ${id} · ${s.model_name} ${s.model_version} · ${s.source}`;
  const a = $("session-csv"); a.href = `/api/sessions/${id}/events.csv`; a.hidden = false;
  $("session-usb").hidden = false;
  const latest = new Map();
  for (const c of data.corrections) latest.set(c.event_id, c);
  const tb = $("session-events").querySelector("tbody"); tb.textContent = "";
  for (const ev of data.events) {
    const tr = document.createElement("tr"); tr.dataset.event = ev.id;
    if (evidenceOf(ev)) tr.title = evidenceOf(ev);
    const c = latest.get(ev.id);
    cells(tr, [`${fmtS(ev.start_s)}–${fmtS(ev.end_s)}`, ev.kind, ev.kind === "gap" ? ev.detail : nice(ev.label) + (caveatOf(ev) ? " · not at rest" : ""),
      ev.kind === "label" ? ev.confidence.toFixed(2) : "", c ? (c.confirmed ? "✓ confirmed" : `→ ${nice(c.label)}`) : ""]);
    const td = document.createElement("td");
    if (ev.kind === "label") {
      const b = document.createElement("button"); b.type = "button"; b.textContent = "judge";
      b.addEventListener("click", () => openJudge({ ...ev, pathological: false, correctable: true }));
      td.appendChild(b);
    }
    tr.appendChild(td); tb.appendChild(tr);
  }
}
function showTab(which) {
  $("live").hidden = which !== "live"; $("review").hidden = which !== "review";
  $("tab-live").classList.toggle("on", which === "live"); $("tab-review").classList.toggle("on", which === "review");
  if (which === "review") showSessions();
}
// the chosen exam's EDF+ and report onto the USB stick; the box says what went wrong
$("session-usb").addEventListener("click", async () => {
  const b = $("session-usb"); b.disabled = true; toast("saving to USB…");
  try {
    const r = await fetch("/api/save-usb", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session: currentSession }) });
    const body = await r.json();
    toast(r.ok ? `saved to USB: ${body.files.join(", ")}` : `not saved: ${body.error || r.statusText}`);
  } catch (e) { toast(`not saved: ${e.message}`); } finally { b.disabled = false; }
});
$("tab-live").addEventListener("click", () => showTab("live"));
$("tab-review").addEventListener("click", () => showTab("review"));

// ---- controls --------------------------------------------------------------------------------------
function options(sel, values, fmt, chosen) {
  for (const v of values) { const o = document.createElement("option"); o.value = v; o.textContent = fmt(v); o.selected = v === chosen; sel.appendChild(o); }
  sel.addEventListener("change", () => { dirtyTrace = true; });
}
options($("sweep"), SWEEPS_MS, (v) => v >= 1000 ? `${v / 1000} s/div` : `${v} ms/div`, 100);
options($("sens"), SENS_UV, (v) => v >= 1000 ? `${v / 1000} mV/div` : `${v} µV/div`, 200);
$("listen").addEventListener("click", async () => {
  const on = $("listen").getAttribute("aria-pressed") !== "true";
  if (on) await audio.start(); else audio.stop();
  $("listen").setAttribute("aria-pressed", String(on));
  $("listen").textContent = on ? "Listening" : "Listen";
  $("mute").disabled = !on;
});
$("mute").addEventListener("click", () => {
  audio.muted = !audio.muted; audio.setVolume();
  $("mute").setAttribute("aria-pressed", String(audio.muted));
});
$("volume").addEventListener("input", () => audio.setVolume());

// ---- the stream --------------------------------------------------------------------------------
function onMessage(msg) {
  stats.messages++;
  lastMessage = performance.now();
  if (msg.state) render(msg.state);
  const net = Math.max(0, Date.now() - (msg.arrived ?? Date.now()));
  for (const [index, b64] of msg.chunks || []) {
    const pcm = int16From(b64);
    ring.put(index, pcm);
    audio.push(index, pcm, net);
    dirtyTrace = true;
  }
  if (msg.arrived) pendingArrival = msg.arrived;
  for (const [, n, b64] of msg.frames || []) addFrames(n, int8From(b64));
}
function connect() {
  const es = new EventSource("/api/stream");
  es.onmessage = (e) => onMessage(JSON.parse(e.data));
  es.onerror = () => { /* EventSource reconnects by itself; the stale banner says so */ };
}
function frame() {
  let drew = false;
  if (dirtyTrace) { drawTrace(); dirtyTrace = false; drew = true; }
  if (dirtySpectro) { drawSpectro(); dirtySpectro = false; drew = true; }
  if (drew) {
    stats.frames++;
    if (pendingArrival != null) {
      stats.latencies.push(Date.now() - pendingArrival);
      if (stats.latencies.length > 5000) stats.latencies.splice(0, 2500);
      pendingArrival = null;
    }
  }
  $("stale").hidden = !(state && state.live) || performance.now() - lastMessage < 1500;
  requestAnimationFrame(frame);
}
window.addEventListener("resize", () => { dirtyTrace = true; dirtySpectro = true; });
connect();
requestAnimationFrame(frame);
