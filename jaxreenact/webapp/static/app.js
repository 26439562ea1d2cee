// The page of `python -m jaxreenact.app`: plain JavaScript over the JSON API of jaxreenact/webapp/server.py.
// Every request carries the X-Session header (the server refuses state changes without it: a cross-site page
// cannot send it).
"use strict";

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let SESSION = null;
let INFO = null;
const inputs = { source: null, driving: null, edit: null }; // "upload" | "example" | null

async function api(path, { method = "POST", body = null, blob = false } = {}) {
  const headers = { "X-Session": SESSION || "" };
  let data = body;
  if (body !== null && !(body instanceof Blob)) {
    data = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  let r;
  try {
    r = await fetch(path, { method, headers, body: data });
  } catch (e) {
    throw new Error("the app does not answer (was it stopped?): " + e.message);
  }
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return blob ? r.blob() : r.json();
}

function show(el, on) { el.hidden = !on; }
function setError(id, err) {
  const el = $(id);
  el.textContent = err ? (err.message || String(err)) : "";
  show(el, !!err);
}
function setStatus(id, text, kind) {
  const el = $(id);
  el.textContent = text;
  el.className = "status" + (kind ? " " + kind : "");
}

// -- jobs ---------------------------------------------------------------------------------------------------
function showProgress(id, st) {
  const box = $(id);
  const bar = box.querySelector("progress");
  const bars = (st && st.bars) || [];
  const b = bars.length ? bars[bars.length - 1] : null;
  if (b && b.total) { bar.max = b.total; bar.value = b.n; } else { bar.removeAttribute("value"); }
  const what = b ? `${b.desc}${b.total ? ` ${b.n}/${b.total}` : ""}` : "working";
  box.querySelector(".ptext").textContent = `${what} · ${st ? st.seconds.toFixed(1) : "0.0"} s`;
  show(box, true);
}

const runningJobs = {}; // progress box id -> the job id shown there

async function cancelJob(progressId) {
  const id = runningJobs[progressId];
  if (!id) return;
  try { await api(`/api/job/${id}/cancel`); } catch (e) { /* the poll reports the outcome */ }
}

async function runJob(start, progressId) {
  showProgress(progressId, null);
  try {
    let st = await start;
    runningJobs[progressId] = st.job;
    while (st.state === "queued" || st.state === "running") {
      showProgress(progressId, st);
      await sleep(400);
      st = await api("/api/job/" + st.job, { method: "GET" });
    }
    if (st.state === "error" || st.state === "cancelled") throw new Error(st.error || "cancelled");
    return st.result;
  } finally {
    delete runningJobs[progressId];
    show($(progressId), false);
  }
}

// -- inputs -------------------------------------------------------------------------------------------------
function describe(r) {
  if (r.kind === "latent") return `${r.name}: a latent`;
  if (r.kind === "video" && r.frames) {
    const cut = r.max_frames && r.frames > r.max_frames ? ` (the first ${r.max_frames} are used: the app's limit)` : "";
    return `${r.name}: video, ${r.frames} frames${r.fps ? ` at ${r.fps} fps` : ""}${cut}`;
  }
  if (r.size) return `${r.name}: ${r.kind}, ${r.size[0]}×${r.size[1]}`;
  return `${r.name}: ${r.kind}`;
}

function preview(slot, url, isVideo) {
  const img = $(slot + "-preview");
  if (!img) return;
  if (!url) { show(img, false); return; }
  const wantVideo = img.tagName === "VIDEO";
  if (wantVideo !== isVideo) { show(img, false); return; }
  img.src = url;
  show(img, true);
}

function wireInput(slot, statusId) {
  const file = $(slot + "-file");
  file.accept = INFO.accept[slot];
  file.addEventListener("change", async () => {
    const f = file.files[0];
    if (!f) return;
    inputs[slot] = null;
    setStatus(statusId, `uploading ${f.name} (${(f.size / 2 ** 20).toFixed(1)} MB)…`);
    try {
      const r = await api(`/api/upload?slot=${slot}&name=${encodeURIComponent(f.name)}`, { method: "PUT", body: f });
      inputs[slot] = "upload";
      setStatus(statusId, "✓ " + describe(r), "ok");
      preview(slot, URL.createObjectURL(f), r.kind === "video");
    } catch (e) {
      setStatus(statusId, e.message, "bad");
      preview(slot, null);
    }
  });
  const ex = $(slot + "-example");
  const kind = slot === "driving" ? "driving" : "source";
  if (!INFO.examples[kind]) { ex.disabled = true; ex.title = "the examples are not in this installation"; }
  ex.addEventListener("click", () => {
    inputs[slot] = "example";
    file.value = "";
    setStatus(statusId, "✓ the shipped example " + (kind === "driving" ? "clip" : "photo"), "ok");
    preview(slot, "/examples/" + kind, kind === "driving");
  });
}

// -- reenact ------------------------------------------------------------------------------------------------
function reenactRequest() {
  return {
    source: inputs.source,
    driving: inputs.driving,
    mode: document.querySelector("input[name=mode]:checked").value,
    component: $("component").value,
    gains: $("gains").value,
    smooth: $("smooth").value,
    tune: $("tune").checked,
    tune_steps: $("tune-steps").value,
    max_frames: $("max-frames").value,
  };
}

function fillSummary(s) {
  const held = s.no_face_frames_held || [];
  const rows = [
    ["frames", `${s.frames} at ${s.fps} fps${s.audio ? " (audio kept)" : ""}`],
    ["motion", `${s.mode}, ${s.component}${s.gains ? ", gains " + s.gains.map((g) => +g.toFixed(3)).join(" ") : ""}, smoothing σ ${s.smooth_sigma_frames}`],
    ["generator tuning", s.tuned ? `on (LPIPS loss ${s.tune_loss_first_last.map((x) => x.toFixed(4)).join(" → ")})` : "off"],
    ["frames without a face", held.length ? `${held.length} (kept the previous pose): ${held.slice(0, 10).join(", ")}${held.length > 10 ? " …" : ""}` : "none"],
    ["several faces", (s.multiple_faces || []).length ? s.multiple_faces.slice(0, 10).join(", ") : "none"],
    ["time", `${s.seconds_total} s in all, ${s.seconds_render} s rendering`],
  ];
  const t = $("summary-table");
  t.innerHTML = "";
  for (const [k, v] of rows) {
    const tr = t.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
}

async function reenact() {
  setError("reenact-error", null);
  if (!inputs.source || !inputs.driving) {
    setError("reenact-error", new Error("choose a source face and a driving video first (upload them or use the examples)"));
    return;
  }
  const btn = $("run-reenact");
  btn.disabled = true;
  try {
    const r = await runJob(api("/api/reenact", { body: reenactRequest() }), "reenact-progress");
    for (const name of ["reenacted", "grid", "pasted"]) {
      const url = r.videos[name];
      show($("fig-" + name), !!url);
      if (!url) continue;
      const v = $("video-" + name);
      v.src = url;
      v.load();
      $("dl-" + name).href = url;
    }
    $("dl-summary").href = r.summary_url;
    fillSummary(r.summary);
    $("summary-text").textContent = r.text;
    show($("reenact-results"), true);
  } catch (e) {
    setError("reenact-error", e);
  } finally {
    btn.disabled = false;
  }
}

// -- edit ---------------------------------------------------------------------------------------------------
let renderBusy = false;
let renderDirty = false;
let renders = 0;

function currentDp() {
  return INFO.directions.map((_, i) => parseFloat($("s-" + i).value));
}

async function renderNow() {
  if (renderBusy) { renderDirty = true; return; }
  renderBusy = true;
  try {
    do {
      renderDirty = false;
      const blob = await api("/api/edit/render", { body: { dp: currentDp() }, blob: true });
      const img = $("edit-img");
      const old = img.src;
      await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = URL.createObjectURL(blob); });
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      img.dataset.renders = String(++renders);
    } while (renderDirty);
    setError("edit-error", null);
  } catch (e) {
    setError("edit-error", e);
  } finally {
    renderBusy = false;
  }
}

function buildSliders(start) {
  const box = $("sliders");
  box.innerHTML = "";
  const sel = $("sweep-dir");
  sel.innerHTML = "";
  const lim = INFO.slider_range;
  INFO.directions.forEach((name, i) => {
    const row = document.createElement("div");
    row.className = "slider";
    row.innerHTML = `<label for="s-${i}">${name}</label>` +
      `<input type="range" id="s-${i}" min="${-lim}" max="${lim}" step="0.1" value="0">` +
      `<output id="o-${i}">0.0</output><span class="start" title="the source's own value of ${name}">at ${start[i] >= 0 ? "+" : ""}${start[i].toFixed(2)}</span>`;
    box.appendChild(row);
    const s = row.querySelector("input");
    s.addEventListener("input", () => { $("o-" + i).textContent = (+s.value).toFixed(1); renderNow(); });
    const opt = document.createElement("option");
    opt.value = i;
    opt.textContent = name;
    sel.appendChild(opt);
  });
}

async function editLoad() {
  setError("edit-error", null);
  if (!inputs.edit) {
    setError("edit-error", new Error("choose a photo or a .npy latent first (upload one or use the example)"));
    return;
  }
  const btn = $("edit-load");
  btn.disabled = true;
  try {
    const body = { source: inputs.edit, tune: $("edit-tune").checked, tune_steps: $("edit-tune-steps").value };
    const r = await runJob(api("/api/edit/source", { body }), "edit-progress");
    $("edit-source-img").src = r.source_url;
    $("edit-source-caption").textContent = `${r.latent ? "G(trunc(w)) of " : ""}${r.label}${r.tuned ? " (generator tuned)" : ""}`;
    buildSliders(r.start);
    $("export-links").innerHTML = "";
    show($("sweep-result"), false);
    show($("edit-area"), true);
    await renderNow();
  } catch (e) {
    setError("edit-error", e);
  } finally {
    btn.disabled = false;
  }
}

async function editExport() {
  try {
    const r = await api("/api/edit/export", { body: { dp: currentDp() } });
    $("export-links").innerHTML = `<a href="${r.npy_url}" download="dp.npy">dp.npy</a> · <a href="${r.json_url}" download="dp.json">dp.json</a>`;
  } catch (e) {
    setError("edit-error", e);
  }
}

async function editSweep() {
  const btn = $("edit-sweep");
  btn.disabled = true;
  try {
    const r = await runJob(api("/api/edit/sweep", { body: { direction: $("sweep-dir").value } }), "sweep-progress");
    $("sweep-gif").src = r.gif_url;
    $("dl-sweep").href = r.gif_url;
    $("dl-sweep").download = `sweep_${r.direction}.gif`;
    $("dl-sweep").textContent = `download the GIF (${r.direction}, ${r.frames} frames)`;
    show($("sweep-result"), true);
  } catch (e) {
    setError("edit-error", e);
  } finally {
    btn.disabled = false;
  }
}

// -- start --------------------------------------------------------------------------------------------------
function selectTab(name) {
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.tab === name);
  show($("reenact"), name === "reenact");
  show($("edit"), name === "edit");
}

async function main() {
  try {
    INFO = await api("/api/session");
  } catch (e) {
    $("page-error").textContent = e.message;
    show($("page-error"), true);
    return;
  }
  SESSION = INFO.session;
  document.body.dataset.session = SESSION;
  // Closing the page closes its session: its jobs stop and its files go.
  window.addEventListener("pagehide", () => {
    fetch("/api/session", { method: "DELETE", headers: { "X-Session": SESSION }, keepalive: true }).catch(() => {});
  });
  const lim = INFO.limits;
  $("max-frames").max = lim.max_frames;
  $("max-frames").placeholder = `all (≤ ${lim.max_frames})`;
  $("limits").textContent = `Limits: ${lim.max_frames} driving frames and ${Math.round(lim.job_seconds)} s per job, ` +
    `${lim.queue} jobs queued in all, uploads up to ${INFO.max_upload_mb} MB and ${(lim.max_pixels / 1e6).toFixed(1)} megapixels.`;
  if (INFO.banner) { $("banner").textContent = INFO.banner; show($("banner"), true); }
  if (INFO.weights_message) { $("weights-text").textContent = INFO.weights_message; show($("weights"), true); }
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => selectTab(t.dataset.tab));
  wireInput("source", "source-status");
  wireInput("driving", "driving-status");
  wireInput("edit", "edit-status");
  $("tune").addEventListener("change", () => { $("tune-steps").disabled = !$("tune").checked; });
  $("edit-tune").addEventListener("change", () => { $("edit-tune-steps").disabled = !$("edit-tune").checked; });
  $("run-reenact").addEventListener("click", reenact);
  $("use-examples").addEventListener("click", () => { $("source-example").click(); $("driving-example").click(); });
  if (!INFO.examples.source || !INFO.examples.driving) $("use-examples").disabled = true;
  for (const b of document.querySelectorAll("button.cancel")) b.addEventListener("click", () => cancelJob(b.dataset.progress));
  $("edit-load").addEventListener("click", editLoad);
  $("edit-reset").addEventListener("click", () => {
    INFO.directions.forEach((_, i) => { $("s-" + i).value = 0; $("o-" + i).textContent = "0.0"; });
    renderNow();
  });
  $("edit-export").addEventListener("click", editExport);
  $("edit-sweep").addEventListener("click", editSweep);
  document.body.dataset.ready = "1";
}

main();
