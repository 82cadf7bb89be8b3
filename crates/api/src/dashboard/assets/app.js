// llmflow dashboard: refreshes the parts marked data-live from the server every few seconds
// while the tab is visible, and pauses when it is hidden.
(function () {
  "use strict";
  const PERIOD_MS = 2500;
  const parts = Array.from(document.querySelectorAll("[data-live]"));
  const status = document.getElementById("live-status");
  let timer = null;
  if (status && !parts.length) status.hidden = true;

  async function refresh() {
    for (const part of parts) {
      const url = part.getAttribute("data-live");
      if (!url) continue;
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { "X-Fragment": "1" } });
        if (response.status === 401) { window.location.assign("/dashboard/login"); return; }
        if (!response.ok) continue;
        const html = await response.text();
        // Keep open <details> open across refreshes.
        const open = Array.from(part.querySelectorAll("details[open][id]")).map((d) => d.id);
        part.innerHTML = html;
        for (const id of open) { const d = document.getElementById(id); if (d) d.open = true; }
        const stop = part.querySelector("[data-live-stop]");
        if (stop) part.removeAttribute("data-live");
      } catch (_) { /* the next tick tries again */ }
    }
  }

  function schedule() {
    clearInterval(timer);
    timer = null;
    if (status) status.classList.toggle("paused", document.hidden);
    if (!document.hidden && parts.length) {
      timer = setInterval(refresh, PERIOD_MS);
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
    schedule();
  });
  schedule();
})();
