// The page's review of detections (issue 32), loaded after app.js, whose helpers it uses (send, errorText,
// showError, status, and the current run's kept result).
"use strict";

// ---- review: listen to a queue of detections and accept, reject or relabel each; every verdict is saved
// on the server as it is given (a reload or a restart keeps it), and the reviewed set downloads as
// Raven tables beside their recordings, which `audiocnn train` reads as its annotations dataset.
let review = null;  // {data: the review as the server keeps it, at: the detection shown}
const VERDICT_TEXT = { accepted: "✓ accepted", rejected: "✗ rejected", relabelled: "relabelled" };

// Each of these asks the server something; one it cannot reach is one line on the page, not a stuck note.
function guarded(action) {
  return (...args) => action(...args).catch((err) => { showError(err.message); status(""); });
}

async function startReview() {
  if (!run || !run.result) return;
  const q = new URLSearchParams({ queue: $("queue").value, per_label: $("per-label").value || "5", top_k: "1",
                                  min_confidence: $("min-confidence").value });
  if ($("queue").value === "uncertain") {  // around the slider's threshold: just above it, and just below
    const at = Number($("min-confidence").value);
    q.set("threshold", String(at)); q.set("min_confidence", String(Math.max(0.05, at - 0.25)));
  }
  status("choosing the detections to review…");
  const r = await send(`v1/results/${run.result}/review?${q}`, null, "json");
  if (r.status !== 201) { showError(await errorText(r)); status(""); return; }
  showReview(r.body);
}

function showReview(data) {
  showError("");
  localStorage.setItem("audiocnn-review", data.id);
  const next = data.items.findIndex((item) => !item.verdict);
  review = { data, at: next < 0 ? 0 : next };
  $("label-list").replaceChildren(...[...data.labels].sort().map((l) => new Option(l)));
  $("review-title").textContent = `Review of ${data.recordings.length} recording${data.recordings.length > 1 ? "s" : ""} ` +
    `(${data.queue.queue}, ${data.queue.per_label} per label, confidence ≥ ${data.queue.min_confidence})`;
  $("review").hidden = false;
  drawQueue();
  showItem(review.at, false);
  $("review").focus();
  status(`reviewing: ${data.items.length} detections`);
}

function drawQueue() {
  const { data } = review;
  $("review-items").replaceChildren(...data.items.map((item, i) => {
    const li = document.createElement("li");
    const go = document.createElement("button");
    go.type = "button";
    go.textContent = `${item.label} ${item.start_s.toFixed(1)}–${item.end_s.toFixed(1)} s · ` +
      `${data.recordings[item.recording].name} · ${item.confidence.toFixed(2)}`;
    go.addEventListener("click", () => showItem(i));
    const said = document.createElement("span");
    said.className = `verdict ${item.verdict || ""}`;
    said.textContent = item.verdict === "relabelled" ? `→ ${item.new_label}` : VERDICT_TEXT[item.verdict] || "";
    li.append(go, " ", said);
    if (i === review.at) li.setAttribute("aria-current", "true");
    return li;
  }));
  const done = data.items.filter((item) => item.verdict).length;
  $("review-progress").textContent = `${done} of ${data.items.length} reviewed`;
  $("export-review").disabled = done === 0;
  // a recording's clips stay in one fold, and the epoch is chosen on recordings kept apart: 2 reviewed recordings at least
  const reviewed = new Set(data.items.filter((item) => item.verdict).map((item) => item.recording)).size;
  $("train-command").textContent = `unzip review-${data.id.slice(0, 8)}.zip && audiocnn train recipes/cpu.yaml ` +
    "--set data.dataset=annotations" + (reviewed < 5 ? ` --set data.folds=${Math.max(2, reviewed)}` : "") +
    " --data-root reviewed --all-data --out reviewed-model";
  $("train-note").hidden = reviewed !== 1;
}

// Show detection `i` and play it (with a second of context either side), fetched from the saved review.
async function showItem(i, play = true) {
  const { data } = review;
  review.at = Math.max(0, Math.min(data.items.length - 1, i));
  const item = data.items[review.at];
  $("review-what").textContent = `${review.at + 1}/${data.items.length}: “${item.label}” at ` +
    `${item.start_s.toFixed(1)}–${item.end_s.toFixed(1)} s of ${data.recordings[item.recording].name}, ` +
    `confidence ${item.confidence.toFixed(2)}` + (item.verdict ? ` — ${item.verdict === "relabelled" ? `relabelled “${item.new_label}”` : item.verdict}` : "");
  $("relabel-to").value = item.new_label || "";
  for (const li of $("review-items").children) li.removeAttribute("aria-current");
  const current = $("review-items").children[review.at];
  if (current) { current.setAttribute("aria-current", "true"); current.scrollIntoView({ block: "nearest" }); }
  const mine = review;
  const r = await send(`v1/reviews/${data.id}/items/${review.at}/audio?pad=1`, null, "blob", null, "GET");
  if (mine !== review || data.items[review.at] !== item) return;  // another detection was chosen meanwhile
  if (r.status !== 200) { showError(await errorText(r)); return; }
  const player = $("review-audio");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(r.body);
  if (play) player.play().catch(() => {});
}

// Verdicts are saved one after another: keys pressed faster than the server answers go to the detections
// that follow, in order, never twice to the same one.
let verdicts = Promise.resolve();
function judge(verdict) {
  const label = verdict === "relabelled" ? $("relabel-to").value.trim() : null;  // as typed when asked
  verdicts = verdicts.then(() => saveVerdict(verdict, label)).catch((err) => showError(err.message));
  return verdicts;
}

// Save a verdict on the shown detection, then go on to the next one not yet reviewed.
async function saveVerdict(verdict, label) {
  if (!review) return;
  const q = new URLSearchParams({ verdict });
  if (verdict === "relabelled") {
    if (!label) { showError("type or choose the label it should have, then Relabel"); $("relabel-to").focus(); return; }
    q.set("label", label);
  }
  const { data } = review, at = review.at;
  const r = await send(`v1/reviews/${data.id}/items/${at}?${q}`, null, "json", null, "PUT");
  if (r.status !== 200) { showError(await errorText(r)); return; }
  showError("");
  Object.assign(data.items[at], { verdict: r.body.verdict, new_label: r.body.new_label });
  drawQueue();
  const after = data.items.findIndex((item, i) => i > at && !item.verdict);
  const open = after >= 0 ? after : data.items.findIndex((item) => !item.verdict);
  if (open < 0) { status(`all ${data.items.length} detections reviewed: download the reviewed set`); showItem(at, false); return; }
  showItem(open);
}

async function exportReview() {
  if (!review) return;
  const q = new URLSearchParams({ rejected: $("rejected-as-background").checked ? "background" : "leave_out" });
  const r = await send(`v1/reviews/${review.data.id}/export?${q}`, null, "blob", null, "GET");
  if (r.status !== 200) { showError(await errorText(r)); return; }
  const a = document.createElement("a");
  a.href = URL.createObjectURL(r.body);
  a.download = `review-${review.data.id.slice(0, 8)}.zip`;
  document.body.append(a); a.click(); a.remove();
  status("reviewed set downloaded: unzip it and train (the command is below)");
}

// Saved reviews outlive the page and the server: the last one opens again, any other can be chosen.
async function loadReviews() {
  const r = await send("v1/reviews", null, "json", null, "GET").catch(() => null);
  if (!r || r.status !== 200 || !r.body.length) return;
  $("review-choice").replaceChildren(...r.body.map((s) => new Option(
    `${new Date(s.created * 1000).toLocaleString()}: ${s.reviewed} of ${s.items} reviewed, ${s.recordings} recording(s)`, s.id)));
  $("saved-reviews").hidden = false;
  const last = localStorage.getItem("audiocnn-review");
  if (last && r.body.some((s) => s.id === last)) { $("review-choice").value = last; await openReview(last); }
}

async function openReview(id) {
  if (!id) return;
  const r = await send(`v1/reviews/${encodeURIComponent(id)}`, null, "json", null, "GET");
  if (r.status !== 200) { showError(await errorText(r)); return; }
  showReview(r.body);
}

function reviewKeys(e) {
  if (!review || $("review").hidden || e.ctrlKey || e.metaKey || e.altKey) return;
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName);
  if (typing) {
    if (e.target.id === "relabel-to" && e.key === "Enter") { e.preventDefault(); judge("relabelled"); }
    return;
  }
  const act = { a: () => judge("accepted"), r: () => judge("rejected"), l: () => $("relabel-to").focus(),
                p: () => $("review-audio").play().catch(() => {}), ArrowLeft: () => guarded(showItem)(review.at - 1),
                ArrowRight: () => guarded(showItem)(review.at + 1) }[e.key.length === 1 ? e.key.toLowerCase() : e.key];
  if (act) { e.preventDefault(); act(); }
}

// ---- wiring
$("start-review").addEventListener("click", guarded(startReview));
$("continue-review").addEventListener("click", () => guarded(openReview)($("review-choice").value));
$("accept").addEventListener("click", () => judge("accepted"));
$("reject").addEventListener("click", () => judge("rejected"));
$("relabel").addEventListener("click", () => judge("relabelled"));
$("replay").addEventListener("click", () => $("review-audio").play().catch(() => {}));
$("previous").addEventListener("click", () => review && guarded(showItem)(review.at - 1));
$("next").addEventListener("click", () => review && guarded(showItem)(review.at + 1));
$("export-review").addEventListener("click", guarded(exportReview));
document.addEventListener("keydown", reviewKeys);
modelLoaded.then(guarded(loadReviews));
