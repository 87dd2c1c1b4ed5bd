// ponder view: live rows on a run page. The server renders (and escapes) every row; this script only asks for
// the rows after the last line it has and appends them. No record text is ever put into the page by script.
"use strict";
(function () {
  const table = document.querySelector("table#episodes[data-live='1']");
  if (!table) return;
  const body = table.tBodies[0];
  const count = document.getElementById("count");
  const shown = document.getElementById("shown");
  const badge = document.getElementById("live-badge");
  const poll = Math.max(200, parseInt(table.dataset.poll || "2000", 10));
  let after = parseInt(table.dataset.after || "0", 10);
  let stopped = false;
  let failures = 0;

  function url() {
    const src = new URL(table.dataset.src, window.location.href);
    src.searchParams.set("after", String(after));
    return src.toString();
  }

  async function tick() {
    if (stopped) return;
    try {
      const response = await fetch(url(), {headers: {"Accept": "text/html"}, cache: "no-store"});
      if (!response.ok) throw new Error("HTTP " + response.status);
      const html = await response.text();
      const last = parseInt(response.headers.get("X-Last-Line") || String(after), 10);
      if (html.trim()) {
        const template = document.createElement("template");
        template.innerHTML = html;  // server-rendered, escaped rows
        for (const row of Array.from(template.content.querySelectorAll("tr.episode"))) {
          const old = body.querySelector("tr.episode[data-line='" + row.dataset.line + "']");
          row.classList.add("new");
          if (!old) body.appendChild(row);
          else if (old.classList.contains("problem")) old.replaceWith(row);  // a torn line, now complete
        }
      }
      after = Math.max(after, last);
      const total = response.headers.get("X-Total");
      if (total !== null) {
        if (shown) shown.textContent = total + (total === "1" ? " match" : " matches") + " (live)";
        const episodes = response.headers.get("X-Count");
        if (count && episodes !== null) count.textContent = episodes;
      }
      failures = 0;
      if (response.headers.get("X-Live") === "0" && badge) { badge.textContent = "finished"; badge.classList.remove("live"); }
    } catch (err) {
      failures += 1;
      if (badge) badge.textContent = "live (server unreachable, retrying)";
    }
    window.setTimeout(tick, failures ? Math.min(poll * 2 ** failures, 30000) : poll);
  }
  window.setTimeout(tick, poll);
  window.addEventListener("pagehide", function () { stopped = true; });
})();
