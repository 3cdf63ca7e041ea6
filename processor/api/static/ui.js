// The web UI's only script: refresh the live part of a page while something is in flight,
// keep ticked rows ticked across refreshes, select-all, and ask before destructive actions.
// Pages work without it (forms post normally); no inline scripts (see the CSP header).
"use strict";

function liveRegion() { return document.getElementById("live"); }

function busy(live) {
  const active = document.activeElement;
  return active && live.contains(active) && active.matches("select, input[type=text], input:not([type])");
}

async function refresh() {
  const live = liveRegion();
  if (!live || !live.dataset.refreshMs || busy(live)) return schedule();
  try {
    const response = await fetch(location.href, { headers: { "X-Requested-With": "refresh" } });
    if (response.ok) {
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const next = doc.getElementById("live");
      if (next && !busy(live)) {
        const ticked = new Set([...live.querySelectorAll("input[name=id]:checked")].map((x) => x.value));
        const chosen = {};
        live.querySelectorAll("select[name]").forEach((s) => { chosen[s.name] = s.value; });
        next.querySelectorAll("input[name=id]").forEach((x) => { x.checked = ticked.has(x.value); });
        next.querySelectorAll("select[name]").forEach((s) => {
          if (chosen[s.name] && [...s.options].some((o) => o.value === chosen[s.name] && !o.disabled)) s.value = chosen[s.name];
        });
        live.replaceWith(document.adoptNode(next));
        wire();
      }
    }
  } catch (err) {
    // The daemon may be restarting: try again at the next tick.
  }
  schedule();
}

let timer = null;
function schedule(delayMs) {
  clearTimeout(timer);
  const live = liveRegion();
  if (live && live.dataset.refreshMs) timer = setTimeout(refresh, delayMs || Number(live.dataset.refreshMs));
}

function updateSelection() {
  const boxes = [...document.querySelectorAll("input[name=id][form=bulk]")];
  const ticked = boxes.filter((b) => b.checked);
  const label = document.getElementById("selection");
  const all = document.getElementById("select-all");
  if (all) all.checked = boxes.length > 0 && ticked.length === boxes.length;
  if (!label) return;
  if (ticked.length === 0) {
    label.textContent = "Tick invocations below to act on several at once.";
  } else {
    const byStatus = {};
    ticked.forEach((b) => { byStatus[b.dataset.status] = (byStatus[b.dataset.status] || 0) + 1; });
    const parts = Object.entries(byStatus).map(([s, n]) => `${n} ${s}`);
    label.textContent = `${ticked.length} selected (${parts.join(", ")})`;
  }
  document.querySelectorAll("#bulk button[data-verb]").forEach((b) => { b.disabled = ticked.length === 0; });
}

function wire() {
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", () => {
      document.querySelectorAll("input[name=id][form=bulk]").forEach((b) => { b.checked = all.checked; });
      updateSelection();
    });
  }
  document.querySelectorAll("input[name=id][form=bulk]").forEach((b) => b.addEventListener("change", updateSelection));
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  updateSelection();
}

// Right after an action (the page shows its answer) the status usually moves on quickly: look sooner.
const AFTER_ACTION_MS = 400;
document.addEventListener("DOMContentLoaded", () => {
  wire();
  schedule(document.getElementById("flash") ? AFTER_ACTION_MS : 0);
});
