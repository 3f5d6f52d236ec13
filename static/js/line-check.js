// "Check the line" and "Check the draw": recompute a drop's order in the reader's browser from what the shop
// publishes (the seed's hash before, the seed and every place or entry after), with Web Crypto. Says whether
// the order holds and where the reader's own entry stands. Nothing here trusts the shop's own ranking. The
// same HMAC ranks both (inventory/queue.py's rank_key): a line's places by position, a draw's entries by rank.
(function () {
  "use strict";

  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function bytes(hexText) {
    var out = new Uint8Array(hexText.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(hexText.substr(i * 2, 2), 16);
    return out;
  }
  var HEADERS = { line: "position,entry_id,joined", draw: "rank,entry_id,outcome,product_id" };
  function parseCsv(text, kind) {
    var lines = text.trim().split(/\r?\n/);
    if (lines.shift() !== HEADERS[kind]) throw new Error("the list's header is not " + HEADERS[kind]);
    return lines.filter(function (line) { return line; }).map(function (line) {
      var cells = line.split(",");
      return kind === "draw"
        ? { position: parseInt(cells[0], 10), entryId: cells[1], outcome: cells[2], productId: cells[3], joined: "before" }
        : { position: parseInt(cells[0], 10), entryId: cells[1], joined: cells[2] };
    });
  }

  async function check(root) {
    var verdict = root.querySelector("[data-verdict]");
    var steps = root.querySelector(".line-check-steps");
    function step(ok, text) {
      var item = document.createElement("li");
      item.dataset.ok = ok ? "yes" : "no";
      item.textContent = (ok ? "✓ " : "✗ ") + text;
      steps.appendChild(item);
      return ok;
    }
    if (!window.crypto || !window.crypto.subtle) {
      verdict.dataset.verdict = "unavailable";
      verdict.textContent = "This browser cannot compute HMACs here (Web Crypto needs HTTPS): use scripts/check_line.py.";
      return;
    }
    var kind = root.dataset.lineCheck === "draw" ? "draw" : "line";
    var standing = await (await fetch(root.dataset.standingUrl, { headers: { Accept: "application/json" } })).json();
    if (!standing.seed) {
      verdict.dataset.verdict = "not_started";
      verdict.textContent = kind === "draw" ? "The seed is revealed at the draw; the ranking can be checked from then on."
        : "The seed is revealed at the start; the order can be checked from then on.";
      return;
    }
    var listAnswer = await fetch(root.dataset.listUrl);
    var places = parseCsv(await listAnswer.text(), kind);
    var ok = true;
    var seed = bytes(standing.seed);
    var seedHash = hex(await crypto.subtle.digest("SHA-256", seed));
    ok = step(seedHash === standing.seedHash, "The seed's SHA-256 is the hash published before anyone " +
      (kind === "draw" ? "entered" : "joined") + " (" + standing.seedHash.slice(0, 16) + "…).") && ok;
    var key = await crypto.subtle.importKey("raw", seed, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    var encoder = new TextEncoder();
    var before = places.filter(function (p) { return p.joined === "before"; });
    for (var i = 0; i < before.length; i++) {
      before[i].rank = hex(await crypto.subtle.sign("HMAC", key, encoder.encode(before[i].entryId)));
    }
    var byRank = before.slice().sort(function (a, b) { return a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0; });
    var ranked = byRank.every(function (p, i) { return p.position === i + 1; });
    if (kind === "draw") {
      ok = step(ranked, before.length + " entries are ranked in the order of HMAC-SHA256(seed, entry id), lowest first.") && ok;
      var count = function (outcome) { return places.filter(function (p) { return p.outcome === outcome; }).length; };
      var known = places.every(function (p) { return ["won", "lost", "forfeited"].indexOf(p.outcome) !== -1; });
      ok = step(known, count("won") + " won, " + count("forfeited") + " forfeited (a capture that failed passed the unit on), " +
        count("lost") + " lost.") && ok;
      ok = step(count("won") <= standing.units, "No more winners than the " + standing.units + " units the draw had.") && ok;
    } else {
      ok = step(ranked, before.length + " places that joined before the start are in the order of HMAC-SHA256(seed, entry id), lowest first.") && ok;
      var after = places.filter(function (p) { return p.joined !== "before"; });
      var behind = after.every(function (p, i) { return p.position === before.length + i + 1; });
      ok = step(behind, after.length + " later places follow them, one after another.") && ok;
    }
    var ids = new Set(places.map(function (p) { return p.entryId; }));
    ok = step(ids.size === places.length, "No entry id appears twice.") && ok;
    verdict.dataset.verdict = ok ? "holds" : "broken";
    verdict.textContent = ok ? (kind === "draw" ? "The draw holds: every entry is ranked where the seed puts it." : "The order holds: every place is where the seed puts it.") : "The order does NOT hold: see below.";

    var visitor = document.documentElement.dataset.visitorId;
    var mineNote = root.querySelector("[data-mine]");
    async function showMine(visitorId) {
      var answer = await fetch(root.dataset.mineUrl, { headers: { "X-Visitor-Id": visitorId, Accept: "application/json" } });
      if (!answer.ok) return;
      var mine = await answer.json();
      var listed = places.find(function (p) { return p.entryId === mine.entryId; });
      mineNote.hidden = false;
      mineNote.dataset.position = listed ? String(listed.position) : "";
      var noun = kind === "draw" ? "rank " : "place ";
      mineNote.textContent = listed
        ? "Your entry " + mine.entryId + " is " + noun + listed.position + " of " + places.length + " in the list, as the seed puts it" +
          (listed.outcome ? ": " + listed.outcome + "." : ".")
        : "Your entry " + mine.entryId + " is not in the published list" + (kind === "draw" ? " (it was not authorised by the close)." : " yet.");
    }
    if (visitor) showMine(visitor);
    else document.body.addEventListener("visitor-ready", function (event) { showMine(event.detail.visitorId); }, { once: true });
  }

  function start() {
    var root = document.querySelector("[data-line-check]");
    if (root) check(root).catch(function (error) {
      var verdict = root.querySelector("[data-verdict]");
      verdict.dataset.verdict = "error";
      verdict.textContent = "The check could not run: " + error.message;
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
