// The log page: rows from /api/inspections, marks posted to /api/inspections/ID/mark.
"use strict";
const MARKS = ["false alarm", "confirmed defect"];
const rows = document.getElementById("rows");

function query() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(document.getElementById("filter"))) if (v) params.set(k, v);
  return params.toString();
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function markCell(r) {
  const td = document.createElement("td");
  for (const m of [...MARKS, "cleared"]) {
    const b = document.createElement("button");
    b.textContent = m === "cleared" ? "clear" : m;
    b.dataset.mark = m;
    if (r.mark === m) b.classList.add("active");
    b.onclick = async () => {
      const answer = await ask(`/api/inspections/${r.id}/mark`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ mark: m }) });
      showStatus(answer.ok ? `tap ${r.id}: ${answer.body.mark || "no mark"}`
        : `tap ${r.id} not marked: ${answer.error}`, !answer.ok);
      if (answer.ok) load();
    };
    td.append(b, " ");
  }
  return td;
}

async function load() {
  const q = query();
  document.getElementById("export").href = "/api/export.csv" + (q ? "?" + q : "");
  const answer = await ask("/api/inspections" + (q ? "?" + q : ""));
  if (!answer.ok) { showStatus(answer.error, true); return; }
  const body = answer.body;
  rows.replaceChildren(...body.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.id = r.id;
    tr.dataset.mark = r.mark || "";
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = `/clips/${r.id}.wav`;
    const clip = document.createElement("td");
    clip.append(audio);
    const why = document.createElement("td");
    if (r.picture) {
      const a = document.createElement("a");
      a.href = r.picture;
      a.textContent = "picture";
      why.append(a);
    }
    // what was said beside the verdict (clipped, two strikes, a louder room): it may be off
    for (const w of r.warnings || []) {
      const note = document.createElement("div");
      note.className = "warned";
      note.textContent = "\u26a0 " + w;
      why.append(note);
    }
    tr.append(cell(new Date(r.time).toLocaleString()), cell(r.board ?? ""),
      cell(r.verdict, r.verdict), cell(r.score.toFixed(4)), clip, why, markCell(r));
    return tr;
  }));
  showStatus(`${body.length} inspection(s)`, false);
}

function showStatus(text, failed) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("failed", failed);
}

// a filtered view has an address of its own: /log?board=10 showed every board (QA)
const filter = document.getElementById("filter");
for (const [k, v] of new URLSearchParams(location.search)) {
  // namedItem: elements[k] is also the collection's own length or item (?length=1 threw)
  const field = filter.elements.namedItem(k);
  if (field && field.name === k) field.value = v;
}
filter.onsubmit = (ev) => {
  ev.preventDefault();
  const q = query();
  history.replaceState(null, "", location.pathname + (q ? "?" + q : ""));
  load();
};
load();
