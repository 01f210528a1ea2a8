// The live page: state once from /api/state, then every change pushed by /events (SSE).
"use strict";
const $ = (id) => document.getElementById(id);
window.verdictTimes = [];
let state = { history: [], counts: { taps: 0, NORMAL: 0, ANOMALOUS: 0 }, threshold: null };
// the station's clock less this browser's (ms): verdicts carry the station's times, and a note
// the page times itself (NOT LIVE since …) is told in the same clock, not a tablet's wrong one
let clockOffset = 0;
const stationNow = () => new Date(Date.now() + clockOffset);

// Score and threshold with four decimals, or more until two different values read different
// (as the command line prints them: with a small threshold, 0.0013 and 0.0013 hid the verdict).
function scorePair(score, threshold) {
  let d = 4, a, b;
  do {
    a = score.toFixed(d);
    b = threshold.toFixed(d);
  } while (a === b && score !== threshold && ++d <= 12);
  return [a, b];
}

function showVerdict(item) {
  const v = $("verdict");
  v.textContent = item.verdict;
  v.className = item.verdict;
  v.dataset.count = state.counts.taps;
  const when = new Date(item.time).toLocaleTimeString();
  const [score, threshold] = scorePair(item.score, item.threshold);
  $("detail").textContent = `${when} · score ${score} · threshold ${threshold}`;
  // why this verdict may be off (a louder room, clipping, a second knock): beside it
  const warned = item.warnings || [];
  $("warnings").textContent = warned.map((w) => `⚠ ${w}`).join("\n");
  $("warnings").hidden = warned.length === 0;
}

// a tap heard and not judged (clipped): in the verdict's place, for the operator to tap again
function showRefused(r) {
  const v = $("verdict");
  v.textContent = "TAP AGAIN";
  v.className = "REFUSED";
  $("detail").textContent = `${new Date(r.time).toLocaleTimeString()} · not judged`;
  $("warnings").textContent = `⚠ ${r.text}`;
  $("warnings").hidden = false;
}

// The event stream lost: the station stopped, crashed or lost its microphone. The last verdict
// stayed on screen in its colours, "reconnecting…" small in a corner, and an operator tapping
// the next board read it as that board's (QA): the page says it is not live until the station's
// state is loaded again.
function showLost() {
  const v = $("verdict");
  if (v.className === "LOST") return;  // since the first error: keep when it stopped
  v.textContent = "NOT LIVE";
  v.className = "LOST";
  $("detail").textContent = `no answer from the station since ${stationNow().toLocaleTimeString()}` +
    " — the verdicts before are not of the board in hand; check the station's terminal";
  $("warnings").hidden = true;
  $("board").className = "";
  $("status").textContent = "station not answering: reconnecting…";
  $("status").classList.add("failed");
}

function showWaiting() {
  const v = $("verdict");
  v.textContent = "WAITING";
  v.className = "";
  $("detail").textContent = "tap the board";
  $("warnings").hidden = true;
}

function showCounts() {
  const c = state.counts;
  $("counts").innerHTML =
    `<b id="n-taps">${c.taps}</b> taps · <b id="n-normal">${c.NORMAL}</b> normal · ` +
    `<b id="n-anomalous">${c.ANOMALOUS}</b> anomalous`;
  if (state.board !== null && state.board !== undefined) {
    // the server's board verdict by the model's rule (most taps decide), as `judge --board`
    // prints it: "any tap anomalous" failed a sound board on one odd tap
    const b = state.board_verdict;
    $("board").textContent = b ? b.line : `board ${state.board}: not tapped yet`;
    $("board").className = b ? b.verdict : "";
  }
}

function drawChart() {
  const svg = $("chart"), h = state.history, W = 600, H = 200, pad = 30;
  const top = Math.max(state.threshold * 2, ...h.map((x) => x.score)) || 1;
  const y = (s) => H - pad + (pad - H + 10) * Math.min(s, top) / top;
  const x = (i) => pad + i * (W - pad - 10) / 49;
  let out = `<line x1="${pad}" x2="${W - 10}" y1="${y(state.threshold)}" ` +
    `y2="${y(state.threshold)}" stroke="#c62828" stroke-dasharray="5 4"/>` +
    `<text x="${pad + 2}" y="${y(state.threshold) - 4}">threshold</text>` +
    `<line x1="${pad}" x2="${pad}" y1="10" y2="${H - pad}" stroke="#999"/>` +
    `<text x="2" y="14">${top.toPrecision(2)}</text><text x="12" y="${H - pad}">0</text>`;
  out += h.map((p, i) => `<circle cx="${x(i)}" cy="${y(p.score)}" r="4" ` +
    `fill="${p.verdict === "ANOMALOUS" ? "#c62828" : "#2e9d4f"}"/>`).join("");
  svg.innerHTML = out;
}

function showExplained(e) {
  if (!e) return;
  // by the tap's time, as its verdict shows it (an id the verdict never showed, beside a later
  // verdict, read as that one's why: QA)
  $("sentence").textContent = `tap of ${new Date(e.time).toLocaleTimeString()}: ${e.sentence}`;
  const img = $("picture");
  img.src = e.picture;
  img.alt = e.sentence;
  img.hidden = false;
}

// a new anomalous tap: the last one's why is not this one's, and its own takes a moment
function showExplaining(item) {
  $("sentence").textContent =
    `explaining the tap of ${new Date(item.time).toLocaleTimeString()}…`;
  $("picture").hidden = true;
}

// an anomalous tap that could not be explained: said in the card, without another tap's picture
function showUnexplained(u) {
  $("sentence").textContent =
    `the tap of ${new Date(u.time).toLocaleTimeString()} not explained: ${u.text}`;
  $("picture").hidden = true;
}

// The whole state: at the start, and again after the event stream was lost (the station
// restarted, or ended the stream of a page too slow to read): events sent meanwhile are missed.
async function loadState() {
  const answer = await ask("/api/state");
  if (!answer.ok) {
    $("status").textContent = answer.error;
    $("status").classList.add("failed");
    return false;
  }
  $("status").classList.remove("failed");
  state = answer.body;
  clockOffset = state.now * 1000 - Date.now();  // a fresh answer (a verdict may come late)
  $("model").textContent = `${state.model} · threshold ${state.threshold.toFixed(4)}`;
  if (state.note) $("sentence").textContent = state.note;
  const last = state.history[state.history.length - 1];
  if (last) showVerdict(last);
  else showWaiting();  // not "NOT LIVE" of a stream lost before the first tap
  if (state.refused) showRefused(state.refused);  // after the verdict: it came later
  showCounts();
  drawChart();
  // the later of the last explanation and the last tap not explained (ISO times, both UTC)
  const told = [state.explained, state.unexplained].filter(Boolean)
    .sort((a, b) => (a.time < b.time ? -1 : 1)).pop();
  if (told === state.unexplained) showUnexplained(told);
  else showExplained(told);
  // the last tap's explanation still to come
  if (state.explains && last && last.verdict === "ANOMALOUS" && (!told || told.time !== last.time))
    showExplaining(last);
  return true;
}

async function start() {
  if (!await loadState()) {  // said on the page; tried again, as the event stream would be
    setTimeout(start, 5000);
    return;
  }
  listen();
}

// The event stream. A browser reconnects it by itself after a dropped connection, but never
// after an answer that is no stream (a 401 from a station restarted with another token): the
// page then read "reconnecting…" for good, and stayed NOT LIVE when the station came back
// (QA). Such a stream is closed here and the page starts again, saying why it cannot.
function listen() {
  const events = new EventSource("/events");
  let lost = false;
  events.onopen = async () => {
    if (lost && !await loadState()) return;  // still lost: the next reconnect tries again
    lost = false;
    $("status").textContent = "live";
  };
  events.onerror = () => {
    lost = true;
    showLost();
    if (events.readyState !== EventSource.CLOSED) return;
    events.close();
    setTimeout(start, 5000);
  };
  events.addEventListener("verdict", (ev) => {
    const item = JSON.parse(ev.data);
    state.counts = item.counts;
    state.board_verdict = item.board_verdict;
    state.history.push(item);
    if (state.history.length > 50) state.history.shift();
    showVerdict(item);
    if (state.explains && item.verdict === "ANOMALOUS") showExplaining(item);
    showCounts();
    drawChart();
    // when the new verdict was painted, for tests/station_latency.py (same clock as the server)
    requestAnimationFrame(() => window.verdictTimes.push({ sent: item.sent, shown: Date.now() / 1000 }));
  });
  events.addEventListener("refused", (ev) => showRefused(JSON.parse(ev.data)));
  // a later strike judged with the last verdict's tap: said under that verdict
  events.addEventListener("joined", (ev) => {
    const last = state.history[state.history.length - 1];
    if (!last) return;
    last.warnings = [...(last.warnings || []), JSON.parse(ev.data).text];
    if ($("verdict").className !== "REFUSED") showVerdict(last);
  });
  events.addEventListener("explained", (ev) => showExplained(JSON.parse(ev.data)));
  events.addEventListener("unexplained", (ev) => showUnexplained(JSON.parse(ev.data)));
}
start();
