// The audiocnn page: upload or record, classify (POST /v1/predict), explain a window (POST /v1/explain).
// No framework and nothing from the internet: the page works wherever the server does.
"use strict";

const $ = (id) => document.getElementById(id);
let lastFiles = [];  // the recordings of the last run, for downloads and explanations

function headers() {
  const key = sessionStorage.getItem("audiocnn-key") || $("api-key").value;
  return key ? { "X-API-Key": key } : {};
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function status(text) { $("status").textContent = text; }

// One request with upload progress (fetch has none); resolves {status, body} and never throws on 4xx.
function send(url, form, responseType = "json", onProgress = null) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
    xhr.responseType = responseType;
    if (onProgress) xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => resolve({ status: xhr.status, body: xhr.response, xhr });
    xhr.onerror = () => reject(new Error("the server cannot be reached"));
    xhr.send(form);
  });
}

async function errorText(response) {
  // A refusal is {"error": ..., "file": ...}; blobs (explain) are read as text first.
  let body = response.body;
  if (body instanceof Blob) { try { body = JSON.parse(await body.text()); } catch { body = null; } }
  return (body && body.error) || `the server answered ${response.status}`;
}

function formOf(files) {
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  return form;
}

function options(format) {
  const q = new URLSearchParams({ format, top_k: $("top-k").value || "3" });
  if ($("denoise").checked) q.set("denoise", "true");
  return q;
}

async function classify(files) {
  if (!files.length) return;
  lastFiles = Array.from(files);
  showError("");
  $("results").replaceChildren();
  $("downloads").hidden = true;
  const bar = $("progress");
  bar.hidden = false; bar.removeAttribute("value");
  status(`uploading ${files.length} file${files.length > 1 ? "s" : ""}…`);
  const q = options("json"); q.set("timeline", "true");
  try {
    const r = await send(`v1/predict?${q}`, formOf(lastFiles), "json", (share) => {
      bar.value = share;
      status(share < 1 ? `uploading… ${Math.round(share * 100)}%` : "classifying…");
      if (share >= 1) bar.removeAttribute("value");
    });
    if (r.status === 401) { $("key-row").hidden = false; $("api-key").focus(); }
    if (r.status !== 200) {
      showError(await errorText(r));
      for (const f of (r.body && r.body.failed) || []) $("results").append(failedCard(f));
      status("");
      return;
    }
    for (const doc of r.body.files) $("results").append(fileCard(doc));
    for (const f of r.body.failed) $("results").append(failedCard(f));
    status(`${r.body.files.length} classified` + (r.body.failed.length ? `, ${r.body.failed.length} could not be read` : ""));
    $("downloads").hidden = false;
  } catch (err) {
    showError(err.message); status("");
  } finally {
    bar.hidden = true;
  }
}

function labelText(entry) {
  return entry.probability === null ? entry.label : `${entry.label} ${entry.probability.toFixed(2)}`;
}

function fileCard(doc) {
  const card = document.createElement("article");
  card.className = "file";
  const title = document.createElement("h2");
  title.textContent = `${doc.path} (${doc.duration_s.toFixed(1)} s)`;
  const summary = document.createElement("ul");
  summary.className = "summary";
  summary.setAttribute("aria-label", "whole file");
  for (const entry of doc.summary) {
    const li = document.createElement("li");
    li.textContent = labelText(entry);
    if (entry.probability === null) li.className = "unknown";
    summary.append(li);
  }
  card.append(title, summary);
  if (doc.timeline_png) {
    const img = document.createElement("img");
    img.className = "timeline";
    img.src = `data:image/png;base64,${doc.timeline_png}`;
    img.alt = `label timeline over the spectrogram of ${doc.path}`;
    card.append(img);
  }
  const hint = document.createElement("p");
  hint.className = "muted";
  hint.textContent = "Windows: choose one to see what the model listened to.";
  const windows = document.createElement("div");
  windows.className = "windows";
  const explanation = document.createElement("div");
  explanation.className = "explanation";
  explanation.setAttribute("aria-live", "polite");
  const file = lastFiles.find((f) => f.name === doc.path) || null;
  for (const w of doc.windows) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `${w.start_s.toFixed(1)}–${w.end_s.toFixed(1)} s: ${w.top.length ? labelText(w.top[0]) : "–"}`;
    if (w.top.length && w.top[0].probability === null) {
      b.className = "unknown";
      if (w.top[1]) b.textContent += ` (${labelText(w.top[1])}?)`;
    }
    b.addEventListener("click", () => explain(file, w, b, windows, explanation));
    windows.append(b);
  }
  card.append(hint, windows, explanation);
  return card;
}

function failedCard(failure) {
  const card = document.createElement("article");
  card.className = "file failed";
  const title = document.createElement("h2");
  title.textContent = failure.path;
  const p = document.createElement("p");
  p.textContent = failure.error;
  card.append(title, p);
  return card;
}

async function explain(file, w, button, windows, target) {
  if (!file) { showError("the recording is no longer here: classify it again"); return; }
  for (const other of windows.querySelectorAll("button")) other.removeAttribute("aria-current");
  button.setAttribute("aria-current", "true");
  target.replaceChildren();
  status(`explaining ${w.start_s.toFixed(1)}–${w.end_s.toFixed(1)} s of ${file.name}…`);
  const q = new URLSearchParams({ start: String(w.start_s), method: "both" });
  try {
    const r = await send(`v1/explain?${q}`, formOf([file]), "blob");
    if (r.status !== 200) { showError(await errorText(r)); status(""); return; }
    const img = document.createElement("img");
    img.src = URL.createObjectURL(r.body);
    img.alt = `why the model heard “${r.xhr.getResponseHeader("X-Audiocnn-Label")}” at ${w.start_s.toFixed(1)} s`;
    target.append(img);
    status(`explained: ${r.xhr.getResponseHeader("X-Audiocnn-Label")} at ${w.start_s.toFixed(1)} s`);
  } catch (err) { showError(err.message); status(""); }
}

async function download(format) {
  if (!lastFiles.length) return;
  status(`preparing ${format}…`);
  const r = await send(`v1/predict?${options(format)}`, formOf(lastFiles), "blob");
  if (r.status !== 200) { showError(await errorText(r)); status(""); return; }
  const name = { csv: "predictions.csv", raven: "predictions.selections.txt", json: "predictions.json",
                 kaleidoscope: "predictions.kaleidoscope.csv", scores: "predictions.scores.csv" }[format];
  const a = document.createElement("a");
  a.href = URL.createObjectURL(r.body);
  a.download = name;
  document.body.append(a); a.click(); a.remove();
  status(`${format} downloaded`);
}

// ---- microphone: PCM captured in the page and sent as a 16-bit WAV (every browser records it the same way)
let recording = null;

async function toggleRecording() {
  const button = $("record");
  if (recording) { finishRecording(); return; }
  showError("");
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const context = new AudioContext();
    const source = context.createMediaStreamSource(stream);
    const processor = context.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    processor.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    source.connect(processor); processor.connect(context.destination);
    const started = Date.now();
    const timer = setInterval(() => { $("record-time").textContent = `recording… ${((Date.now() - started) / 1000).toFixed(0)} s`; }, 250);
    recording = { stream, context, processor, chunks, timer };
    button.setAttribute("aria-pressed", "true");
    button.textContent = "■ Stop and classify";
  } catch (err) {
    showError(`the microphone cannot be used: ${err.message}`);
  }
}

function finishRecording() {
  const { stream, context, processor, chunks, timer } = recording;
  recording = null;
  clearInterval(timer);
  processor.disconnect();
  stream.getTracks().forEach((t) => t.stop());
  const rate = context.sampleRate;
  context.close();
  $("record").setAttribute("aria-pressed", "false");
  $("record").textContent = "● Record from the microphone";
  $("record-time").textContent = "";
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  classify([new File([wav(chunks, rate)], `recording-${stamp}.wav`, { type: "audio/wav" })]);
}

function wav(chunks, rate) {
  const n = chunks.reduce((sum, c) => sum + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * n));
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * n, true);
  let offset = 44;
  for (const c of chunks) for (const x of c) {
    view.setInt16(offset, Math.max(-1, Math.min(1, x)) * 0x7fff, true); offset += 2;
  }
  return view.buffer;
}

// ---- wiring
async function loadModel() {
  const r = await fetch("v1/model", { headers: headers() });
  if (r.status === 401) {
    $("key-row").hidden = false;
    $("model").textContent = "this server needs an API key (Options)";
    return;
  }
  const m = await r.json();
  if (!r.ok) { $("model").textContent = m.error || "the model cannot be described"; return; }
  $("model").textContent = `model ${m.name}: ${m.labels.length} classes, ${m.window_seconds} s windows, ` +
    `${m.sample_rate / 1000} kHz`;
}

$("files").addEventListener("change", (e) => classify(e.target.files));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); classify(e.dataTransfer.files); });
$("record").addEventListener("click", toggleRecording);
$("api-key").addEventListener("change", (e) => { sessionStorage.setItem("audiocnn-key", e.target.value); loadModel(); });
for (const b of document.querySelectorAll("#downloads button")) b.addEventListener("click", () => download(b.dataset.format));
loadModel();
