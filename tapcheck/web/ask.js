// ask(url, options): a request to the station whose failure the page can show. A plain-text
// 401 (a stale token), a network error or a stopped station threw inside a click handler and
// the page said nothing: a mark seemed made that was not (QA).
"use strict";
async function ask(url, options) {
  let resp, text;
  try {
    resp = await fetch(url, options);
    text = await resp.text();  // a connection dropped mid-answer rejects here
  } catch (e) {
    return { ok: false, error: `the station did not answer (${e.message}): is it still running?` };
  }
  let body = null;
  try { body = JSON.parse(text); } catch (e) { body = null; }
  if (!resp.ok) {
    return { ok: false, error: (body && body.error) || text.trim() || `${resp.status} ${resp.statusText}` };
  }
  if (body === null) return { ok: false, error: "the station's answer was not JSON" };
  return { ok: true, body };
}
