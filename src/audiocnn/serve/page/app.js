// The audiocnn page: upload or record, classify (POST /v1/predict?keep=true), then read the kept result
// again for downloads and options (GET /v1/results/ID), re-run it (POST .../predict) and explain a window
// (POST .../explain): each recording is uploaded and classified once.
// No framework and nothing from the internet: the page works wherever the server does.
"use strict";

const $ = (id) => document.getElementById(id);
let run = null;  // the current run: {files, result (the kept result's id), xhr (while it is sent)}
let runs = 0;  // how many runs were started: an answer to an older one is never shown
let labels = [];  // the model's classes, for "why not X?"

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
// `onStart(xhr)` gets the request, to cancel it (xhr.abort(): resolves with status 0).
function send(url, form, responseType = "json", onProgress = null, method = "POST", onStart = null) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
    xhr.responseType = responseType;
    if (onProgress) xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => resolve({ status: xhr.status, body: xhr.response, xhr });
    xhr.onabort = () => resolve({ status: 0, body: null, xhr });
    xhr.onerror = () => reject(new Error("the server cannot be reached"));
    if (onStart) onStart(xhr);
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

function outputOptions(format) {
  return new URLSearchParams({ format, top_k: $("top-k").value || "3", min_confidence: $("min-confidence").value });
}

function classifyOptions() {
  const q = outputOptions("json");
  q.set("timeline", "true");
  // drawn as wide as the page shows it, so that its text keeps its size (a phone's is narrow)
  q.set("timeline_width", String(Math.max(320, Math.min(2400, Math.round($("results").clientWidth - 26)))));
  if ($("denoise").checked) q.set("denoise", "true");
  return q;
}

// A new run: the files sent once and kept on the server. A run still going is cancelled first.
async function classify(files) {
  if (!files.length) return;
  cancel();
  const mine = { files: Array.from(files), result: null, xhr: null, pending: null, id: ++runs };
  run = mine;
  const q = classifyOptions(); q.set("keep", "true");
  await answer(mine, `v1/predict?${q}`, formOf(mine.files), `uploading ${files.length} file${files.length > 1 ? "s" : ""}…`);
}

// The kept recordings classified again with the options now set (noise reduction): no upload.
// Asked while the run's last request is still out, it follows that request.
async function rerun() {
  if (!run || !run.result) return;
  const mine = run;
  if (mine.xhr) { mine.pending = rerun; return; }
  await answer(mine, `v1/results/${mine.result}/predict?${classifyOptions()}`, null, "classifying again…");
}

// The kept result written again with the labels per window now set: nothing is classified.
async function reread() {
  if (!run || !run.result) return;
  const mine = run;
  if (mine.xhr) { mine.pending = mine.pending || reread; return; }
  await answer(mine, `v1/results/${mine.result}?${outputOptions("json")}`, null, "", "GET");
}

// Send one run's request and show its answer, unless a newer run started meanwhile.
async function answer(mine, url, form, waiting, method = "POST") {
  showError("");
  const bar = $("progress");
  bar.hidden = !waiting; bar.removeAttribute("value");
  $("cancel").hidden = false;
  status(waiting);
  try {
    const r = await send(url, form, "json", (share) => {
      bar.value = share;
      status(share < 1 ? `uploading… ${Math.round(share * 100)}%` : "classifying…");
      if (share >= 1) bar.removeAttribute("value");
    }, method, (xhr) => { mine.xhr = xhr; });
    if (mine !== run) return;  // a newer run took over: its answer is the one shown
    if (r.status === 0) { status("cancelled"); return; }
    if (r.status === 401) { $("key-row").hidden = false; $("api-key").focus(); }
    if (r.status === 404 && mine.result) {
      mine.result = null; $("downloads").hidden = true; $("review-start").hidden = true;
      showError("the server no longer keeps this result: choose the recordings again"); status(""); return;
    }
    if (r.status !== 200) {
      showError(await errorText(r));
      $("results").replaceChildren(...((r.body && r.body.failed) || []).map(failedCard));
      status("");
      return;
    }
    mine.result = r.body.result || mine.result;
    const cards = [...r.body.files.map(fileCard), ...r.body.failed.map(failedCard)];
    $("results").replaceChildren(...cards);
    status(`${r.body.files.length} classified` + (r.body.failed.length ? `, ${r.body.failed.length} could not be read` : ""));
    $("downloads").hidden = !mine.result;
    $("review-start").hidden = !mine.result;
  } catch (err) {
    if (mine === run) { showError(err.message); status(""); }
  } finally {
    mine.xhr = null;
    if (mine === run) { bar.hidden = true; $("cancel").hidden = true; }
  }
  const next = mine.pending;
  mine.pending = null;
  if (next && mine === run) await next();
}

function cancel() {
  if (run && run.xhr) run.xhr.abort();
}

function labelText(entry) {
  return entry.probability === null ? entry.label : `${entry.label} ${entry.probability.toFixed(2)}`;
}

function fileCard(doc) {
  const card = document.createElement("article");
  card.className = "file";
  const title = document.createElement("h2");
  title.textContent = `${doc.path} (${doc.duration_s.toFixed(1)} s)`;
  const heard = document.createElement("p");
  heard.className = "detected";
  const most = doc.detected.slice(0, 8).map((d) => `${d.label} ×${d.detections} (${d.seconds.toFixed(0)} s, best ${d.best.toFixed(2)})`);
  if (doc.detected.length > most.length) most.push(`and ${doc.detected.length - most.length} more classes (table below)`);
  heard.textContent = most.length ? `Detected: ${most.join(", ")}`
    : `Nothing detected at confidence ${Number($("min-confidence").value).toFixed(2)} or more.`;
  const summary = document.createElement("ul");
  summary.className = "summary";
  summary.setAttribute("aria-label", "mean over the whole file");
  for (const entry of doc.summary) {
    const li = document.createElement("li");
    li.textContent = labelText(entry);
    if (entry.probability === null) li.className = "unknown";
    summary.append(li);
  }
  const meanNote = document.createElement("span");
  meanNote.className = "muted";
  meanNote.textContent = "mean over the file:";
  summary.prepend(meanNote);
  card.append(title, heard, summary);
  let timeline = null;
  if (doc.timeline_png) {
    timeline = document.createElement("div");
    timeline.className = "timeline-box";
    timeline.dataset.axes = JSON.stringify(doc.timeline_axes || null);
    const img = document.createElement("img");
    img.className = "timeline";
    img.src = `data:image/png;base64,${doc.timeline_png}`;
    img.alt = `label timeline over the spectrogram of ${doc.path}; choose a moment to play from it`;
    const cursor = document.createElement("div");
    cursor.className = "cursor";
    cursor.hidden = true;
    timeline.append(img, cursor);
    card.append(timeline);
  }
  const hint = document.createElement("p");
  hint.className = "muted";
  hint.textContent = "Windows: choose one to see what the model listened to";
  const why = document.createElement("select");
  why.className = "why";
  why.setAttribute("aria-label", "explain which label");
  why.append(new Option("for its top label", ""), ...labels.map((l) => new Option(`for “${l}” (why not?)`, l)));
  hint.append(" ", why, ".");
  const windows = document.createElement("div");
  windows.className = "windows";
  const explanation = document.createElement("div");
  explanation.className = "explanation";
  explanation.setAttribute("aria-live", "polite");
  const mine = run;
  const file = mine.files.findIndex((f) => f.name === doc.path);
  const player = document.createElement("audio");
  player.controls = true;
  player.preload = "metadata";
  if (file >= 0) player.src = URL.createObjectURL(mine.files[file]);
  const explainAt = (w, button) => explain(mine, file, w, button, card, explanation, why.value);
  if (timeline && doc.timeline_axes) {
    followPlayer(timeline, player);
    if (file >= 0 && mine.result) timeline.after(zoomControls(timeline, doc, file, player));
  }
  card.append(player, detectionsTable(doc, player, explainAt));
  if (doc.windows.length > MAX_WINDOW_BUTTONS) {  // a long recording: its detections stand for its windows
    hint.textContent = `${doc.windows.length} windows with a label: choose a detection to hear or explain it`;
    hint.append(" ", why, ".");
    card.append(explanation, hint);  // the explanation right under the table whose row asked for it
    return card;
  }
  for (const w of doc.windows) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `${w.start_s.toFixed(1)}–${w.end_s.toFixed(1)} s: ${w.top.length ? labelText(w.top[0]) : "–"}`;
    if (w.top.length && w.top[0].probability === null) {
      b.className = "unknown";
      if (w.top[1]) b.textContent += ` (${labelText(w.top[1])}?)`;
    }
    b.addEventListener("click", () => explainAt(w, b));
    windows.append(b);
  }
  card.append(hint, windows, explanation);
  return card;
}

const MAX_WINDOW_BUTTONS = 24;  // more windows than this are not each a button: the detections are
const ROWS_PER_PAGE = 20;

// A recording's detections (each label's consecutive windows joined, as --merge-consecutive): sortable by
// any column, filtered by class, a page at a time; each row plays its stretch and explains its first window.
function detectionsTable(doc, player, explainAt) {
  const box = document.createElement("div");
  box.className = "detections";
  const classes = document.createElement("select");
  classes.setAttribute("aria-label", "show the detections of");
  classes.append(new Option(`all classes (${doc.detections.length})`, ""),
                 ...doc.detected.map((d) => new Option(`${d.label} (${d.detections})`, d.label)));
  const table = document.createElement("table");
  const columns = [["label", "label"], ["start_s", "start (s)"], ["end_s", "end (s)"], ["confidence", "confidence"]];
  const head = table.createTHead().insertRow();
  const body = table.createTBody();
  const pager = document.createElement("div");
  pager.className = "pager";
  let order = { key: "start_s", descending: false }, page = 0;
  const draw = () => {
    const shown = doc.detections.filter((d) => !classes.value || d.label === classes.value);
    shown.sort((a, b) => (a[order.key] < b[order.key] ? -1 : a[order.key] > b[order.key] ? 1 : 0) * (order.descending ? -1 : 1));
    const pages = Math.max(1, Math.ceil(shown.length / ROWS_PER_PAGE));
    page = Math.min(page, pages - 1);
    body.replaceChildren(...shown.slice(page * ROWS_PER_PAGE, (page + 1) * ROWS_PER_PAGE).map((d) => {
      const row = body.insertRow();
      for (const text of [d.label, d.start_s.toFixed(1), d.end_s.toFixed(1), d.confidence.toFixed(2)]) row.insertCell().textContent = text;
      const actions = row.insertCell();
      const play = document.createElement("button");
      play.type = "button"; play.textContent = "▶"; play.setAttribute("aria-label", `play ${d.label} at ${d.start_s.toFixed(1)} s`);
      play.addEventListener("click", () => playStretch(player, d.start_s, d.end_s));
      const why = document.createElement("button");
      why.type = "button"; why.textContent = "why?"; why.setAttribute("aria-label", `explain ${d.label} at ${d.start_s.toFixed(1)} s`);
      why.addEventListener("click", () => explainAt({ start_s: d.start_s, end_s: Math.min(d.end_s, d.start_s + doc.windows[0].end_s - doc.windows[0].start_s) }, why));
      actions.append(play, why);
      return row;
    }));
    for (const cell of head.cells) cell.setAttribute("aria-sort", cell.dataset.key === order.key ? (order.descending ? "descending" : "ascending") : "none");
    pager.replaceChildren();
    if (pages > 1) {
      const back = document.createElement("button"), next = document.createElement("button");
      back.type = next.type = "button"; back.textContent = "‹ earlier"; next.textContent = "later ›";
      back.disabled = page === 0; next.disabled = page === pages - 1;
      back.addEventListener("click", () => { page -= 1; draw(); });
      next.addEventListener("click", () => { page += 1; draw(); });
      pager.append(back, ` page ${page + 1} of ${pages} `, next);
    }
  };
  for (const [key, text] of columns) {
    const cell = document.createElement("th");
    const sort = document.createElement("button");
    sort.type = "button"; sort.textContent = text;
    sort.addEventListener("click", () => { order = { key, descending: order.key === key ? !order.descending : key === "confidence" }; draw(); });
    cell.dataset.key = key;
    cell.append(sort);
    head.append(cell);
  }
  head.append(document.createElement("th"));
  classes.addEventListener("change", () => { page = 0; draw(); });
  draw();
  box.append(classes, table, pager);
  return box;
}

// The timeline and the player, joined: a click on the picture plays from that moment, and a cursor
// on it follows the playback. The picture says where its time axis lies (`data-axes`: left and right as
// shares of its width, the seconds at either end), which changes as it is zoomed.
function followPlayer(box, player) {
  const img = box.querySelector("img"), cursor = box.querySelector(".cursor");
  const axes = () => JSON.parse(box.dataset.axes);
  const place = () => {
    const a = axes(), start = a.start ?? 0, end = a.end ?? a.seconds;
    const share = (player.currentTime - start) / (end - start);
    cursor.hidden = share < 0 || share > 1;
    cursor.style.left = `${((a.left + (a.right - a.left) * Math.min(1, Math.max(0, share))) * 100).toFixed(3)}%`;
  };
  img.addEventListener("click", (e) => {
    const a = axes(), start = a.start ?? 0, end = a.end ?? a.seconds;
    const share = (e.offsetX / img.clientWidth - a.left) / (a.right - a.left);
    if (share < 0 || share > 1 || !player.src) return;
    player.currentTime = start + share * (end - start);
    player.play().catch(() => {});
    place();
  });
  player.addEventListener("timeupdate", place);
  player.addEventListener("seeked", place);
  box.addEventListener("redrawn", place);
}

// Zoom buttons under a kept recording's timeline: each asks the server to draw the stretch again in
// detail (GET v1/results/ID/timeline: decoded again, not classified again), centred on the playback
// when it is in view. "Whole file" puts back the picture the page was given first.
function zoomControls(box, doc, file, player) {
  const whole = { src: box.querySelector("img").src, axes: box.dataset.axes };
  const row = document.createElement("div");
  row.className = "row zoom";
  const shown = document.createElement("span");
  shown.className = "muted";
  const button = (text, label, act) => {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = text; b.setAttribute("aria-label", label);
    b.addEventListener("click", act);
    row.append(b);
    return b;
  };
  const length = JSON.parse(whole.axes).seconds;
  const view = () => {
    if (wanted) return wanted;
    const a = JSON.parse(box.dataset.axes);
    return [a.start ?? 0, a.end ?? a.seconds];
  };
  const mine = run;
  let asked = 0, wanted = null;  // the newest request, and the stretch it asks for (the next click starts there)
  const draw = async (start, end) => {
    if (!mine.result || mine !== run) { showError("this result is no longer shown: classify it again"); return; }
    const span = Math.max(1, end - start);
    start = Math.max(0, Math.min(start, length - span));
    end = Math.min(length, start + span);
    if (start <= 0 && end >= length) { reset(); return; }
    shown.textContent = `drawing ${start.toFixed(1)}–${end.toFixed(1)} s…`;
    const q = new URLSearchParams({ file: String(file), start: start.toFixed(3), end: end.toFixed(3),
                                    width: String(Math.max(320, Math.min(2400, Math.round(box.clientWidth)))) });
    const ticket = ++asked;
    wanted = [start, end];
    let r;
    try { r = await send(`v1/results/${mine.result}/timeline?${q}`, null, "json", null, "GET"); }
    catch (err) { if (ticket === asked) { showError(err.message); shown.textContent = ""; wanted = null; } return; }
    if (ticket !== asked) return;  // a newer zoom was asked meanwhile: its picture is the one shown
    wanted = null;
    if (r.status !== 200) { showError(await errorText(r)); shown.textContent = ""; return; }
    box.querySelector("img").src = `data:image/png;base64,${r.body.timeline_png}`;
    box.dataset.axes = JSON.stringify(r.body.timeline_axes);
    shown.textContent = `${r.body.timeline_axes.start.toFixed(1)}–${r.body.timeline_axes.end.toFixed(1)} s of ${length.toFixed(1)} s`;
    box.dispatchEvent(new Event("redrawn"));
  };
  const reset = () => {
    asked += 1; wanted = null;  // an answer still on its way is not shown over the whole file
    box.querySelector("img").src = whole.src; box.dataset.axes = whole.axes; shown.textContent = "whole file";
    box.dispatchEvent(new Event("redrawn"));
  };
  const centre = () => {
    const [start, end] = view();
    return player.currentTime > start && player.currentTime < end ? player.currentTime : (start + end) / 2;
  };
  button("+ zoom in", "zoom in: half the time, around the playback", () => {
    const [start, end] = view(), half = (end - start) / 4;
    draw(centre() - half, centre() + half);
  });
  button("- zoom out", "zoom out: twice the time", () => { const [start, end] = view(), span = end - start; draw(start - span / 2, end + span / 2); });
  button("‹ earlier", "show earlier", () => { const [start, end] = view(), step = (end - start) / 2; draw(start - step, end - step); });
  button("later ›", "show later", () => { const [start, end] = view(), step = (end - start) / 2; draw(start + step, end + step); });
  button("whole file", "show the whole file", reset);
  shown.textContent = "whole file";
  row.append(shown);
  return row;
}

// Play one stretch of the recording the page still holds (nothing is fetched), stopping at its end.
function playStretch(player, start, end) {
  if (!player.src) return;
  player.currentTime = start;
  const stop = () => { if (player.currentTime >= end) { player.pause(); player.removeEventListener("timeupdate", stop); } };
  player.addEventListener("timeupdate", stop);
  player.play().catch(() => {});
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

// The kept recording's window explained where it was chosen, with a note there while it is made.
async function explain(mine, file, w, button, card, target, label) {
  if (mine !== run || !mine.result || file < 0) { showError("this result is no longer shown: classify it again"); return; }
  for (const other of card.querySelectorAll("[aria-current]")) other.removeAttribute("aria-current");
  button.setAttribute("aria-current", "true");
  const waiting = document.createElement("p");
  waiting.className = "working";
  waiting.append(document.createElement("progress"),
                 ` explaining ${w.start_s.toFixed(1)}–${w.end_s.toFixed(1)} s of ${mine.files[file].name} (a few seconds)…`);
  target.replaceChildren(waiting);
  status(waiting.textContent.trim());
  const q = new URLSearchParams({ file: String(file), start: String(w.start_s), method: "both" });
  if (label) q.set("target", label);
  try {
    const r = await send(`v1/results/${mine.result}/explain?${q}`, null, "blob");
    if (target.firstChild === waiting) target.replaceChildren();
    if (r.status !== 200) { showError(await errorText(r)); status(""); return; }
    const img = document.createElement("img");
    img.src = URL.createObjectURL(r.body);
    img.alt = `why the model heard “${r.xhr.getResponseHeader("X-Audiocnn-Label")}” at ${w.start_s.toFixed(1)} s`;
    target.append(img);
    status(`explained: ${r.xhr.getResponseHeader("X-Audiocnn-Label")} at ${w.start_s.toFixed(1)} s`);
  } catch (err) { showError(err.message); status(""); }
}

// A kept result in another format: written by the server from what it kept, nothing sent again.
async function download(format) {
  if (!run || !run.result) return;
  status(`preparing ${format}…`);
  const r = await send(`v1/results/${run.result}?${outputOptions(format)}`, null, "blob", null, "GET");
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
    const meter = $("level");
    processor.onaudioprocess = (e) => {
      const samples = new Float32Array(e.inputBuffer.getChannelData(0));
      chunks.push(samples);
      // the level heard now, in dBFS (RMS, 0 = a full-scale sine): is the microphone on, and not clipping?
      const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length) * Math.SQRT2;
      meter.value = Math.max(-90, 20 * Math.log10(rms || 1e-9));
      meter.title = `${meter.value.toFixed(0)} dBFS`;
      meter.dataset.peak = String(Math.max(Number(meter.dataset.peak || -90), meter.value));
    };
    source.connect(processor); processor.connect(context.destination);
    meter.hidden = false; meter.dataset.peak = "-90";
    const started = Date.now();
    const timer = setInterval(() => { $("record-time").textContent = `recording… ${((Date.now() - started) / 1000).toFixed(0)} s, ${meter.title}`; }, 250);
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
  $("level").hidden = true;
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
  labels = [...m.labels].sort();
  $("model").textContent = `model ${m.name}: ${m.labels.length} classes, ${m.window_seconds} s windows, ` +
    `${m.sample_rate / 1000} kHz`;
}

$("files").addEventListener("change", (e) => {
  const files = Array.from(e.target.files);
  e.target.value = "";  // choosing the same file again is a change too
  classify(files);
});
$("cancel").addEventListener("click", () => { cancel(); });
$("top-k").addEventListener("change", reread);
$("min-confidence").addEventListener("change", reread);
$("min-confidence").addEventListener("input", () => { $("min-confidence-value").textContent = Number($("min-confidence").value).toFixed(2); });
$("denoise").addEventListener("change", rerun);
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); classify(e.dataTransfer.files); });
$("record").addEventListener("click", toggleRecording);
$("api-key").addEventListener("change", (e) => { sessionStorage.setItem("audiocnn-key", e.target.value); loadModel(); });
for (const b of document.querySelectorAll("#downloads button")) b.addEventListener("click", () => download(b.dataset.format));
const modelLoaded = loadModel();  // review.js opens the saved reviews once the model is known
