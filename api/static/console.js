// GridLink console: live SLA countdowns, one submission per form, and the desk's live queue.
"use strict";
const skew = (Date.parse(document.body.dataset.now || "") || Date.now()) - Date.now();
const now = () => Date.now() + skew;

function remaining(ms) {
  const s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  const text = d ? `${d}天 ${h}h` : h ? `${h}h ${String(m).padStart(2, "0")}m`
                                    : `${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  return ms < 0 ? `超期 ${text}` : `剩 ${text}`;
}

function tick() {  // every deadline on the page counts down; yellow at its warning mark, red once past
  for (const node of document.querySelectorAll(".clock[data-due]")) {
    const due = Date.parse(node.dataset.due), at = now();
    if (isNaN(due)) continue;
    const start = Date.parse(node.dataset.start || ""), warnAt = Date.parse(node.dataset.warn || "");
    const warn = !isNaN(warnAt) ? warnAt : !isNaN(start) ? start + (due - start) * 0.8 : NaN;
    node.textContent = remaining(due - at);
    node.classList.toggle("red", at >= due || node.dataset.red === "1");
    node.classList.toggle("yellow", at < due && node.dataset.red !== "1" && (at >= warn || node.dataset.yellow === "1"));
  }
}
setInterval(tick, 1000);
tick();

// a form goes once: its buttons wait for the answer (the idempotency key covers retries)
document.addEventListener("submit", event => {
  const form = event.target;
  if (form.dataset.sent) { event.preventDefault(); return; }
  form.dataset.sent = "1";
  for (const button of form.querySelectorAll("button")) setTimeout(() => { button.disabled = true; }, 0);
});

// the desk: new assignments appear without a reload (the board's server-sent events)
const desk = document.getElementById("desk-rows");
if (desk) {
  const live = document.getElementById("live");
  let pending = Promise.resolve();
  const refresh = (caseId, seq) => {
    pending = pending.then(async () => {
      const params = new URLSearchParams(location.search);
      if (caseId) { params.set("case", caseId); params.set("seq", seq); }
      const response = await fetch("/console/desk/rows?" + params, { credentials: "same-origin" });
      if (response.status === 401) { location.reload(); return; }
      if (!response.ok) return;
      const before = new Set([...desk.querySelectorAll("tr[data-row]")].map(r => r.dataset.row));
      desk.innerHTML = await response.text();
      for (const row of desk.querySelectorAll("tr[data-row]")) {
        if (!before.has(row.dataset.row)) row.classList.add("fresh");
      }
      const count = document.getElementById("desk-count");
      if (count) count.textContent = desk.querySelectorAll("tr[data-row]").length;
      tick();
    }).catch(() => {});
  };
  const source = new EventSource("/board/events");
  source.addEventListener("ready", () => { live.className = "on"; live.textContent = "实时 · live"; });
  source.addEventListener("status", e => { const u = JSON.parse(e.data); refresh(u.case_id, u.seq); });
  source.addEventListener("case", e => { const u = JSON.parse(e.data); refresh(u.case_id, u.seq); });
  source.onerror = () => { live.className = ""; live.textContent = "重连中 · reconnecting"; };
}
