// detstyle serve: the page. Plain JS, no framework; the server sends one kind of event ("update").
"use strict";

const $ = (id) => document.getElementById(id);
const state = { job: null, source: null, points: [], total: 0, cells: 0 };

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function request(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function fillSelect(select, values, keepFirst) {
  if (!keepFirst) select.innerHTML = "";
  for (const value of values) select.add(new Option(value, value));
}

async function loadOptions() {
  const options = await request("/api/options");
  fillSelect($("backbone"), options.backbones);
  fillSelect($("layers"), options.layers, true);
  fillSelect($("schedule"), options.schedule, true);
  fillSelect($("optimizer"), options.optimizer, true);
  fillSelect($("precision"), options.precision);
  $("size").value = options.defaults.size;
  $("steps").value = options.defaults.steps;
  $("seed").value = options.defaults.seed;
  $("precision").value = options.defaults.precision;
  fillSelect($("backbones"), options.backbones);
  for (const option of $("backbones").options) option.selected = true;
  fillSelect($("presets"), options.layers);
}

// The grid/comparison pickers offer the same inputs as the run form's, several at a time.
function fillMulti(select, inputs, fallback) {
  const keep = new Set([...select.selectedOptions].map((o) => o.value));
  if (!keep.size) keep.add(fallback);
  select.innerHTML = "";
  for (const item of inputs) {
    const option = new Option(`${item.name} (${item.width}x${item.height})`, item.id);
    option.selected = keep.has(item.id);
    select.add(option);
  }
}

async function loadInputs(selected) {
  const { inputs } = await request("/api/inputs");
  for (const [kind, fallback] of [["content", "grace_hopper"], ["style", "generated_style"]]) {
    const select = $(kind), keep = selected[kind] || select.value || fallback;
    select.innerHTML = "";
    for (const item of inputs) select.add(new Option(`${item.name} (${item.width}x${item.height})`, item.id));
    select.value = keep;
    showThumb(kind);
  }
  fillMulti($("contents"), inputs, "grace_hopper");
  fillMulti($("styles"), inputs, "generated_style");
}

function showThumb(kind) {
  const id = $(kind).value;
  $(`${kind}-thumb`).src = id ? `/api/inputs/${encodeURIComponent(id)}/image` : "";
}

async function upload(kind, input) {
  if (!input.files.length) return;
  const data = new FormData();
  data.append("file", input.files[0]);
  showError("");
  try {
    const saved = await request("/api/inputs", { method: "POST", body: data });
    await loadInputs({ [kind]: saved.id });
  } catch (err) {
    showError(`upload refused: ${err.message}`);
  } finally {
    input.value = "";
  }
}

async function start(event) {
  event.preventDefault();
  showError("");
  try {
    const job = await request("/api/jobs", { method: "POST", body: new FormData($("run-form")) });
    follow(job.id);
  } catch (err) {
    showError(err.message);
  }
}

// A grid or comparison: the run form's settings, the chosen images (and backbones, presets) as repeated fields.
async function startBatch(kind) {
  showError("");
  const data = new FormData($("run-form"));
  data.delete("content");
  data.delete("style");
  const lists = kind === "grid" ? ["contents", "styles"] : ["contents", "styles", "backbones", "presets"];
  if (kind === "compare") { data.delete("backbone"); data.delete("layers"); }
  for (const id of lists) {
    for (const option of $(id).selectedOptions) data.append($(id).name, option.value);
  }
  try {
    const job = await request(kind === "grid" ? "/api/grids" : "/api/comparisons", { method: "POST", body: data });
    follow(job.id);
  } catch (err) {
    showError(err.message);
  }
}

async function act(action) {
  if (!state.job) return;
  try {
    const job = await request(`/api/jobs/${state.job}/${action}`, { method: "POST" });
    if (action === "resume") follow(job.id);
  } catch (err) {
    showError(err.message);
  }
}

// Subscribe to a job's events: the first one carries the whole history and the latest image.
function follow(id) {
  if (state.source) state.source.close();
  state.job = id;
  state.points = [];
  state.cells = 0;
  $("cells").replaceChildren();
  $("cells").hidden = true;
  $("files").replaceChildren();
  $("files").hidden = true;
  history.replaceState(null, "", `#job=${id}`);
  $("download").classList.add("disabled");
  const source = new EventSource(`/api/jobs/${id}/events`);
  state.source = source;
  source.addEventListener("update", (event) => render(JSON.parse(event.data)));
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) state.source = null; };
}

function render(update) {
  if (update.full) { state.points = []; state.cells = 0; $("cells").replaceChildren(); }  // the whole history again
  state.points.push(...update.points);
  state.total = update.total || state.total;
  for (const preview of update.previews) {
    const img = $("live-image");
    img.src = preview.image;
    img.dataset.step = preview.step;
    img.hidden = false;
  }
  const step = state.points.length ? state.points[state.points.length - 1].step : 0;
  const where = update.status === "queued" ? ` (position ${update.position} in the queue)` : "";
  const running = update.status === "running" || update.status === "queued";
  const batch = update.kind && update.kind !== "run";
  if (batch) showCells(update);
  const stepText = state.total ? `step ${step} of ${state.total}` : "";
  const progress = batch
    ? ` — ${update.kind}: ${state.cells} of ${update.units} cells done${stepText && running ? ", " + stepText : ""}`
    : (stepText ? ` — ${stepText}` : "");
  $("status").textContent = `${update.status}${where}${progress}${update.message ? ": " + update.message : ""}`;
  $("status").dataset.status = update.status;
  if (update.status === "failed") showError(update.message);
  $("stop").disabled = !running;
  $("resume").disabled = update.status !== "stopped";
  if (update.result) {
    $("download").href = update.result;
    $("download").classList.remove("disabled");
  }
  showFiles(update.files);
  drawCurve();
  if (!running) state.source && state.source.close();
}

// Each finished cell of a grid or comparison, as a thumbnail of its cached image.
function showCells(update) {
  const box = $("cells");
  for (const cell of update.cells) {
    const figure = document.createElement("figure");
    figure.innerHTML = "<a><img alt=''></a><figcaption></figcaption>";
    figure.querySelector("a").href = cell.image;
    figure.querySelector("img").src = cell.image;
    figure.querySelector("figcaption").textContent = `${cell.index + 1}. ${cell.name}${cell.cached ? " (cached)" : ""}`;
    box.append(figure);
  }
  state.cells = box.children.length;
  box.hidden = !state.cells;
}

function showFiles(files) {
  const box = $("files"), entries = Object.entries(files || {});
  if (!entries.length) return;
  box.replaceChildren(...entries.map(([label, url]) => {
    const link = document.createElement("a");
    link.href = url;
    link.textContent = label;
    link.download = "";
    return link;
  }));
  box.hidden = false;
}

// The loss curve: total loss on a log scale, one polyline in an inline SVG (a batch: the running cell's).
function drawCurve() {
  const newest = state.points[state.points.length - 1];
  const svg = $("loss-curve"), pts = state.points.filter((p) => p.losses.total > 0 && p.cell === (newest && newest.cell));
  if (!pts.length) { svg.innerHTML = ""; return; }
  const logs = pts.map((p) => Math.log10(p.losses.total));
  const lo = Math.min(...logs), hi = Math.max(...logs), span = hi - lo || 1;
  const last = Math.max(state.total, pts[pts.length - 1].step, 2);
  const xy = pts.map((p, i) => `${(((p.step - 1) / (last - 1)) * 390 + 5).toFixed(1)},${(150 - ((logs[i] - lo) / span) * 140).toFixed(1)}`);
  svg.innerHTML = `<polyline fill="none" stroke="#2c5aa0" stroke-width="2" points="${xy.join(" ")}"/>` +
    `<text x="6" y="14" font-size="11">${Math.pow(10, hi).toPrecision(3)}</text>` +
    `<text x="6" y="156" font-size="11">${Math.pow(10, lo).toPrecision(3)}</text>`;
  const losses = pts[pts.length - 1].losses;
  $("loss-text").textContent = Object.entries(losses).map(([k, v]) => `${k} ${v.toPrecision(4)}`).join("  ");
}

function card(image, title, details) {
  const div = document.createElement("div");
  div.className = "card";
  if (image) {
    const link = document.createElement("a");
    link.href = image;
    link.innerHTML = `<img loading="lazy" alt="">`;
    link.firstChild.src = image;
    div.append(link);
  }
  const name = document.createElement("div");
  name.textContent = title;
  const more = document.createElement("details");
  more.innerHTML = "<summary>spec</summary><pre></pre>";
  more.querySelector("pre").textContent = JSON.stringify(details, null, 1);
  div.append(name, more);
  return div;
}

async function loadGallery() {
  const found = await request("/api/gallery");
  const runs = $("gallery-runs"), grids = $("gallery-grids"), comparisons = $("gallery-comparisons");
  runs.replaceChildren(...found.runs.map((r) => card(r.image,
    `${r.spec.backbone ? r.spec.backbone.name : "?"} · ${r.spec.size}px · ${r.steps ?? "?"} steps`, r.spec)));
  grids.replaceChildren(...found.grids.map((g) => card(g.image, `${g.name} (${g.cells.length} cells)`, g.cells)));
  comparisons.replaceChildren(...found.comparisons.map((c) => card(c.image, `${c.name} (${c.runs} runs)`,
    { command: c.command, spec: c.spec })));
  for (const list of [runs, grids, comparisons]) {
    if (!list.children.length) list.textContent = "none yet";
  }
}

function showView() {
  const gallery = location.hash === "#gallery";
  $("run-view").hidden = gallery;
  $("gallery-view").hidden = !gallery;
  $("tab-run").classList.toggle("active", !gallery);
  $("tab-gallery").classList.toggle("active", gallery);
  if (gallery) loadGallery().catch((err) => showError(err.message));
}

async function main() {
  $("run-form").addEventListener("submit", start);
  $("stop").addEventListener("click", () => act("stop"));
  $("resume").addEventListener("click", () => act("resume"));
  $("start-grid").addEventListener("click", () => startBatch("grid"));
  $("start-compare").addEventListener("click", () => startBatch("compare"));
  for (const kind of ["content", "style"]) {
    $(`${kind}-file`).addEventListener("change", (e) => upload(kind, e.target));
    $(kind).addEventListener("change", () => showThumb(kind));
  }
  window.addEventListener("hashchange", showView);
  try {
    await loadOptions();
    await loadInputs({});
  } catch (err) {
    showError(err.message);
  }
  const wanted = /^#job=([0-9a-f]+)$/.exec(location.hash);
  if (wanted) {
    follow(wanted[1]);
  } else {
    const { jobs } = await request("/api/jobs");
    const active = jobs.find((j) => j.status === "running") || jobs.find((j) => j.status === "queued");
    if (active) follow(active.id);
  }
  showView();
  document.body.dataset.ready = "1";
}

main();
