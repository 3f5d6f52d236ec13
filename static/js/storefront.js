// Storefront in the browser: who the visitor is, and the hold countdowns.
// htmx does the rest from attributes in the templates.
(function () {
  "use strict";

  var FALLBACK_KEY = "storefront.visitorId";
  var FINGERPRINT_TIMEOUT_MS = 3000;
  var visitorId = null;

  // A random id kept in this browser: the fallback when FingerprintJS is blocked or fails.
  function storedRandomId() {
    var id = null;
    try { id = window.localStorage.getItem(FALLBACK_KEY); } catch (e) { /* storage off */ }
    if (!id || !/^[A-Za-z0-9_-]{8,128}$/.test(id)) {
      var bytes = new Uint8Array(16);
      window.crypto.getRandomValues(bytes);
      id = "r" + Array.prototype.map.call(bytes, function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
      try { window.localStorage.setItem(FALLBACK_KEY, id); } catch (e) { /* this visit only */ }
    }
    return id;
  }

  function fingerprint() {
    if (!window.FingerprintJS) return Promise.reject(new Error("FingerprintJS not loaded"));
    var timeout = new Promise(function (_, reject) {
      setTimeout(function () { reject(new Error("fingerprint timed out")); }, FINGERPRINT_TIMEOUT_MS);
    });
    // The open-source agent, with its usage monitoring off.
    var computed = window.FingerprintJS.load({ monitoring: false })
      .then(function (agent) { return agent.get(); })
      .then(function (result) { return result.visitorId; });
    return Promise.race([computed, timeout]);
  }

  // Deferred scripts run before DOMContentLoaded, and htmx wires its listeners then:
  // anything that needs htmx waits for that moment.
  var domReady = false;
  document.addEventListener("DOMContentLoaded", function () { domReady = true; });
  function whenLoaded(callback) {
    if (domReady || document.readyState === "complete") callback();
    else document.addEventListener("DOMContentLoaded", callback);
  }

  var visitorReady = fingerprint()
    .catch(function () { return storedRandomId(); })
    .then(function (id) {
      visitorId = /^[A-Za-z0-9_-]{8,128}$/.test(id || "") ? id : storedRandomId();
      document.documentElement.dataset.visitorId = visitorId;
      whenLoaded(function () {
        document.body.dispatchEvent(new CustomEvent("visitor-ready", { detail: { visitorId: visitorId } }));
      });
      return visitorId;
    });
  window.storefrontVisitor = visitorReady;

  // Every htmx request names the visitor; writes also carry it in the body, as the API asks.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    var needsVisitor = elt.closest && elt.closest("[data-needs-visitor]");
    if (!visitorId) {
      if (!needsVisitor) return;
      // Too early: send it again once the visitor is known.
      event.preventDefault();
      visitorReady.then(function () {
        if (elt.tagName === "FORM" && elt.requestSubmit) elt.requestSubmit();
        else htmx.trigger(elt, event.detail.triggeringEvent ? event.detail.triggeringEvent.type : "click");
      });
      return;
    }
    event.detail.headers["X-Visitor-Id"] = visitorId;
    if (event.detail.verb === "post") event.detail.parameters["userId"] = visitorId;
  });

  // The product page asks for the visitor's hold once it knows who they are. If Buy has
  // put a hold in the slot meanwhile, that answer is not swapped in over it: replacing the
  // form under the shopper's hand would lose their click.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var config = event.detail.requestConfig;
    if (target && target.classList && target.classList.contains("checkout-slot") &&
        config && config.verb === "get" && target.querySelector(".hold")) {
      event.detail.shouldSwap = false;
    }
  });

  // An element refreshing itself (a Buy button's stock poll) keeps its place while a request
  // sent from inside it (Buy) is still out: swapped out, the sender would be detached, and
  // htmx looks for its answer's out-of-band parts (the stock after the hold) in the sender's
  // own tree, finds nothing, and the button stays behind. The poll's answer is the older
  // news anyway; the next poll brings the stock again.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var config = event.detail.requestConfig;
    if (target && config && config.elt === target && target.querySelector(".htmx-request")) {
      event.detail.shouldSwap = false;
    }
  });

  // An error never replaces a live hold's payment form (or a draw entry's): it is said beside the form
  // that asked (or at the top of the slot), and the hold under the shopper's hands stays.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target, xhr = event.detail.xhr;
    if (!xhr || xhr.status < 400 || !target || !target.querySelector) return;
    // A draw entry's form is kept too: its fields are the shopper's typing.
    if (!target.querySelector('.hold[data-status="PENDING"]') && !(target.matches && target.matches(".draw-entry"))) return;
    var sender = event.detail.requestConfig && event.detail.requestConfig.elt;
    var form = sender && sender.closest && sender.closest("form");
    var box = form ? form.querySelector(".form-error") : target.querySelector(":scope > .slot-error");
    if (!box) {
      box = document.createElement("div");
      box.className = form ? "form-error" : "slot-error";
      box.setAttribute("role", "alert");
      if (form) form.appendChild(box); else target.insertBefore(box, target.firstChild);
    }
    event.detail.target = box;
    event.detail.swapOverride = "innerHTML";
  });

  // A form swapped in a moment ago may not have been wired by htmx yet (it does so as
  // the swap settles); a quick shopper's submit would then leave as a plain GET. Wire it
  // now, in the capture phase, so htmx's own listener takes this very submit.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (window.htmx && form.hasAttribute && (form.hasAttribute("hx-post") || form.hasAttribute("hx-get"))) {
      htmx.process(form);
    }
  }, true);

  // The shop's clock. Every page carries the shop's time as it left it (meta shop-clock); its
  // difference from this device's clock when the page's first byte arrived is added to the device's
  // clock from then on, so a device minutes wrong still counts a start down to the shop's second.
  var shopOffsetMs = 0;
  (function () {
    var meta = document.querySelector('meta[name="shop-clock"]');
    var sent = meta ? Number(meta.getAttribute("content")) : NaN;
    if (!sent) return;
    var arrived = Date.now();
    try {
      var navigation = window.performance.getEntriesByType("navigation")[0];
      if (navigation && navigation.responseStart > 0) arrived = window.performance.timeOrigin + navigation.responseStart;
    } catch (e) { /* the script's own start is near enough */ }
    shopOffsetMs = sent - arrived;
    document.documentElement.dataset.shopClockOffset = String(Math.round(shopOffsetMs));  // for a reader checking
  })();
  function shopNow() { return Date.now() + shopOffsetMs; }

  function clockText(left) {
    var text = Math.floor(left / 60) + ":" + ("0" + (left % 60)).slice(-2);
    if (left >= 3600) {  // hours away: h:mm:ss
      text = Math.floor(left / 3600) + ":" + ("0" + Math.floor((left % 3600) / 60)).slice(-2) + ":" + ("0" + (left % 60)).slice(-2);
    }
    return text;
  }

  // A page's live parts (a product's stock and Buy, a drop's line, the shopper's place: [data-live-url])
  // are asked for together and swapped together, every few seconds and at once when a moment they
  // wait for (data-before: a start, the line's opening) comes, so that they never contradict each
  // other. An answer still from before a moment this page has passed (a shared cache's second, a
  // clock a little behind) is not shown: the page asks again a moment later, and swaps all at once.
  var POLL_MS = 1000 * (Number((document.querySelector('meta[name="live-poll-seconds"]') || {}).content) || 5);
  var STALE_RETRY_MS = 250, STALE_RETRIES = 24;
  var refreshing = null, refreshAgain = false, staleRounds = 0, momentsSeen = {};

  function fetchPart(part) {
    var headers = { "HX-Request": "true" };
    if (part.hasAttribute("data-needs-visitor")) headers["X-Visitor-Id"] = visitorId;
    return fetch(part.getAttribute("data-live-url"), { credentials: "same-origin", headers: headers })
      .then(function (response) { return response.status === 200 ? response.text() : null; });
  }

  function elementOf(html) {
    var box = document.createElement("template");
    box.innerHTML = html.trim();
    return box.content.firstElementChild;
  }

  // Swaps every changed part, or none: false when it should ask again shortly.
  function swapTogether(parts, answers) {
    var shop = shopNow(), stale = false, admittedThrough = null, admittedAt = null;
    var fresh = answers.map(function (html) {
      var root = html && elementOf(html);
      var before = root ? Date.parse(root.getAttribute("data-before") || "") : NaN;
      if (!isNaN(before) && before <= shop) stale = true;
      if (root && root.hasAttribute("data-admitted-through")) admittedThrough = Number(root.getAttribute("data-admitted-through"));
      if (root && root.getAttribute("data-status") === "admitted") admittedAt = Number(root.getAttribute("data-position"));
      return root ? html : null;
    });
    // The line read a moment before the shopper's place was let in: it would say "up to place 0".
    if (admittedThrough !== null && admittedAt !== null && admittedThrough < admittedAt) stale = true;
    if (stale && staleRounds < STALE_RETRIES) { staleRounds += 1; return false; }
    staleRounds = 0;
    // Buy (or a join) is out from inside a part: its answer brings what changed; this round waits a moment.
    if (parts.some(function (part) { return part.isConnected && part.querySelector(".htmx-request"); })) return false;
    parts.forEach(function (part, i) {
      var html = fresh[i];
      if (!html || !part.isConnected || part.storefrontHtml === html) return;
      // A join form stays while the answer is a join form too: its proof of work would start again.
      if (part.querySelector("form.join-queue") && html.indexOf("join-queue") !== -1) return;
      var id = part.id;
      htmx.swap(part, html, { swapStyle: "outerHTML" });
      var swapped = id && document.getElementById(id);
      if (swapped) swapped.storefrontHtml = html;
    });
    tick();
    followBuy();
    return true;
  }

  // A place far back in a line that is letting people in need not ask the shop how it stands every
  // round: the line's shared answer (one a second for everyone, from a cache) says how many are let in,
  // which is all that moves it. Its "ahead" is counted here from that answer, and it asks for itself
  // once the line is one place away, when the line's state changes, and at least every QUIET_MAX_MS.
  // So a crowd's private polls scale with the places near the front, not with everyone waiting.
  var QUIET_MAX_MS = 60000, askedAt = {};

  function lineNow() {
    var line = document.querySelector("[data-admitted-through][data-state]");
    return line && { state: line.getAttribute("data-state"), through: Number(line.getAttribute("data-admitted-through")) };
  }

  // How many places are before this one and not yet let in, by the line's answer (the shop's own rule).
  function aheadOf(place, line) {
    return Number(place.getAttribute("data-position")) - line.through - 1;
  }

  function farBack(part) {
    var line = lineNow();
    if (!line || line.state !== "admitting" || part.getAttribute("data-status") !== "waiting" ||
        !part.hasAttribute("data-position")) return false;
    if (window.performance.now() - (askedAt[part.id] || -Infinity) > QUIET_MAX_MS) return false;
    return aheadOf(part, line) >= 1;
  }

  function countAhead() {
    var line = lineNow();
    if (!line) return;
    document.querySelectorAll("[data-status=waiting][data-position] [data-ahead]").forEach(function (shown) {
      var ahead = aheadOf(shown.closest("[data-position]"), line);
      if (ahead >= 1 && shown.textContent !== String(ahead)) shown.textContent = ahead;
    });
  }

  function refreshLive() {
    if (refreshing) { refreshAgain = true; return; }
    var all = Array.prototype.slice.call(document.querySelectorAll("[data-live-url]"));
    var skipped = all.filter(farBack);
    var parts = all.filter(function (part) { return skipped.indexOf(part) === -1; });
    if (!parts.length || !window.htmx) return;
    var needsVisitor = parts.some(function (part) { return part.hasAttribute("data-needs-visitor"); });
    var before = lineNow();
    parts.forEach(function (part) { if (part.id) askedAt[part.id] = window.performance.now(); });
    refreshing = (needsVisitor ? visitorReady : Promise.resolve())
      .then(function () { return Promise.all(parts.map(fetchPart)); })
      .then(function (answers) { return swapTogether(parts, answers); })
      .catch(function () { return true; })  // offline for a moment: the next round asks again
      .then(function (done) {
        refreshing = null;
        countAhead();
        // The line moved up to a place this round left alone, or changed state: ask for it now.
        var after = lineNow();
        var moved = skipped.some(function (part) { return part.isConnected && !farBack(part); }) ||
          (skipped.length > 0 && after && before && after.state !== before.state);
        if (!done) setTimeout(refreshLive, STALE_RETRY_MS);
        else if (refreshAgain || moved) { refreshAgain = false; refreshLive(); }
      });
  }

  setInterval(function () { if (!document.hidden) refreshLive(); }, POLL_MS);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refreshLive(); });
  whenLoaded(function () {  // both are fired at the body, and do not bubble
    document.body.addEventListener("stock-changed", refreshLive);
    document.body.addEventListener("visitor-ready", refreshLive);
  });

  // Countdowns. A start (time.countdown) counts down to its moment on the shop's clock; when a moment
  // a live part waits for comes, the page asks for its live parts (above). A hold's or a pass's time
  // (time[data-seconds-left]: the seconds the server gave it, in a private answer) counts down on this
  // page's monotonic clock. At 0:00 a hold asks the server whether it lapsed ("lapsed=1"): a 204
  // means not yet by the server's clock, and nothing is swapped (the payment form under the
  // shopper's hands stays), so it asks again a little later, less and less often.
  var LAPSE_RECHECK_MS = [2000, 4000, 8000, 15000];
  function tick() {
    var shop = shopNow();
    document.querySelectorAll("time.countdown[datetime]").forEach(function (el) {
      var moment = Date.parse(el.getAttribute("datetime"));
      if (isNaN(moment)) return;
      var text = clockText(Math.max(0, Math.ceil((moment - shop) / 1000)));
      if (el.textContent !== text) el.textContent = text;
      var line = el.closest(".counting-down");
      if (line && line.hidden) line.hidden = false;
    });
    document.querySelectorAll("[data-live-url][data-before]").forEach(function (part) {
      var moment = part.getAttribute("data-before"), wait = Date.parse(moment) - shop;
      if (momentsSeen[moment] || isNaN(wait)) return;
      if (wait <= 0) {
        momentsSeen[moment] = true;
        refreshLive();
      } else if (wait < 1000 && !momentsSeen[moment + "@"]) {  // the moment itself, not the next tick
        momentsSeen[moment + "@"] = true;
        setTimeout(tick, wait + 10);
      }
    });
    var now = window.performance.now();
    document.querySelectorAll("time[data-seconds-left]").forEach(function (el) {
      if (el.storefrontDeadline === undefined) {
        el.storefrontDeadline = now + 1000 * Number(el.dataset.secondsLeft || 0);
        el.storefrontChecks = 0;
        el.storefrontNextCheck = 0;
      }
      var left = Math.max(0, Math.ceil((el.storefrontDeadline - now) / 1000));
      var text = clockText(left);
      if (el.textContent !== text) el.textContent = text;
      if (left === 0 && now >= el.storefrontNextCheck) {
        var wait = LAPSE_RECHECK_MS[Math.min(el.storefrontChecks, LAPSE_RECHECK_MS.length - 1)];
        el.storefrontChecks += 1;
        el.storefrontNextCheck = now + wait;
        var hold = el.closest(".hold");
        if (hold) htmx.trigger(hold, "hold-lapsed");
        document.body.dispatchEvent(new CustomEvent("stock-changed"));
      }
    });
  }
  setInterval(tick, 250);
  document.addEventListener("htmx:afterSettle", tick);
  whenLoaded(tick);

  // A product's options: the chosen one's Buy and Add to cart show, the others' stock stays in view.
  function pickOptions() {
    document.querySelectorAll("[data-options]").forEach(function (picker) {
      picker.classList.add("picking");
      picker.querySelectorAll("input[name=option]").forEach(function (radio) {
        radio.addEventListener("change", function () {
          picker.querySelectorAll(".option").forEach(function (option) {
            option.classList.toggle("chosen", option.id === "option-" + radio.value);
          });
        });
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", pickOptions);
  else pickOptions();

  // Add to cart follows Buy: off while Buy is (before the start, sold out, paused); a drop's sizes
  // stop saying when they go on sale once none of them waits any more.
  function followBuy() {
    var waiting = document.querySelector('.stock[data-on-sale="false"]');
    document.querySelectorAll(".options-opens").forEach(function (line) { line.hidden = !waiting; });
    document.querySelectorAll(".stock[data-on-sale]").forEach(function (stock) {
      var form = document.querySelector('form.add-to-cart[data-product-id="' + stock.id.slice("stock-".length) + '"]');
      if (!form) return;
      var buy = stock.querySelector("button.buy-button");
      var off = !buy || buy.disabled;
      var button = form.querySelector("button");
      button.disabled = off;
      if (off) button.setAttribute("aria-disabled", "true");
      else button.removeAttribute("aria-disabled");
    });
  }
  document.addEventListener("htmx:afterSettle", followBuy);
  document.addEventListener("htmx:configRequest", function (event) {
    var trigger = event.detail.triggeringEvent;
    if (trigger && trigger.type === "hold-lapsed") event.detail.parameters.lapsed = "1";
  });

  // Stripe's Payment Element and Address Element, mounted in place in a hold's payment form.
  // On Pay: Stripe checks both, the delivery details go to the shop (which keeps them on the
  // order and puts them on the PaymentIntent), and only then is the payment confirmed. Every
  // failure says so in the form and gives Pay back (Stripe's rule for custom flows).
  var stripeClients = {};
  function stripeFor(publishableKey) {
    // One Stripe object per page (and key), as Stripe asks: not one per mounted form.
    if (!stripeClients[publishableKey]) stripeClients[publishableKey] = window.Stripe(publishableKey);
    return stripeClients[publishableKey];
  }

  function Stopped(message) { this.message = message; }

  function mountPayment(form) {
    if (form.dataset.mounted) return;
    form.dataset.mounted = "true";
    var email = form.querySelector("input[name=email]");
    var button = form.querySelector("button[type=submit]");
    var errorBox = form.querySelector(".payment-error");
    if (!window.Stripe) {
      errorBox.textContent = "The card form could not load. Check your connection and reload this page; your hold is kept.";
      return;
    }
    var stripe = stripeFor(form.dataset.publishableKey);
    var elements = stripe.elements({ clientSecret: form.dataset.clientSecret });
    // A draw entry's card is only authorised (data-authorise): its delivery details came with the entry.
    var authorising = form.hasAttribute("data-authorise");
    var address = authorising ? null : elements.create("address", { mode: "shipping" });
    if (address) address.mount(form.querySelector(".address-element"));
    elements.create("payment").mount(form.querySelector(".payment-element"));
    button.disabled = false;

    function stop(message) { throw new Stopped(message); }

    function sendDelivery() {
      return address.getValue().then(function (result) {
        var value = result.value || {}, where = value.address || {};
        return fetch(form.dataset.deliveryUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-Visitor-Id": visitorId || "" },
          body: JSON.stringify({
            userId: visitorId, email: email.value, name: value.name || "", line1: where.line1 || "",
            line2: where.line2 || "", city: where.city || "", state: where.state || "",
            postalCode: where.postal_code || "", country: where.country || ""
          })
        }).catch(function () {
          stop("Your delivery details could not be sent: check your connection and press Pay again.");
        });
      }).then(function (response) {
        // Read the answer to its end before moving on: a 3-D Secure redirect that followed at
        // once would abort its body, and the browser would report the request as failed.
        if (response.ok) return response.text().then(function () { return null; });
        return response.json().catch(function () { return {}; }).then(function (body) {
          stop(body.message || "Your delivery details could not be saved; try again.");
        });
      });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      errorBox.textContent = "";
      if (!email.checkValidity()) { email.reportValidity(); button.disabled = false; return; }
      elements.submit().then(function (checked) {
        if (checked.error) stop(checked.error.message || "Check the highlighted fields.");
        return authorising ? null : sendDelivery();
      }).then(function () {
        return stripe.confirmPayment({
          elements: elements,
          confirmParams: { return_url: form.dataset.returnUrl, receipt_email: email.value },
          redirect: "if_required"
        });
      }).then(function (result) {
        // Stripe's own words: declined card, wrong CVC, and so on. The hold stays.
        if (result.error) stop(result.error.message || "The payment did not go through.");
        // Authorised without leaving the page: ask for the entry naming its intent, so the shop
        // checks with Stripe (and the card's fingerprint) at once, before the webhook.
        var entry = form.closest(".draw-entry");
        if (entry) {
          var entryUrl = form.dataset.entryUrl;
          if (result.paymentIntent) entryUrl += "?payment_intent=" + encodeURIComponent(result.paymentIntent.id);
          htmx.ajax("GET", entryUrl, { target: entry, swap: "outerHTML", headers: { "X-Visitor-Id": visitorId || "" } });
          return;
        }
        // Paid without leaving the page: ask for the hold naming its intent, so the shop
        // checks with Stripe and settles it at once, as it does on Stripe's return_url.
        var hold = form.closest(".hold");
        if (hold) {
          var url = hold.getAttribute("hx-get").split("?")[0] + "?confirming=1";
          if (result.paymentIntent) url += "&payment_intent=" + encodeURIComponent(result.paymentIntent.id);
          htmx.ajax("GET", url, { target: hold, swap: "outerHTML" });
        }
      }).catch(function (error) {
        errorBox.textContent = error instanceof Stopped ? error.message
          : "Something went wrong before the payment was made: check your connection and press Pay again.";
        button.disabled = false;
      });
    });
  }

  // The browser's time zone, for dates written in the shopper's own time (storefront/formatting.py).
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && /^[A-Za-z0-9_+\/-]{1,64}$/.test(zone)) {
      document.cookie = "storefront_tz=" + zone + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* dates stay in UTC, and say so */ }

  // Start times in the reader's own language and zone, from their datetime: the server writes
  // UTC (or the zone the cookie above told it), and this page says it in the reader's own.
  var momentFormat = null;
  try {
    momentFormat = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric",
      hour: "numeric", minute: "2-digit", timeZoneName: "short" });
  } catch (e) { /* the server's words stay */ }
  function localTimes(root) {
    if (!momentFormat) return;
    (root.querySelectorAll ? root : document).querySelectorAll("time.starts-at[datetime]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (!isNaN(moment.getTime())) el.textContent = momentFormat.format(moment);
    });
  }
  document.addEventListener("htmx:load", function (event) { localTimes(event.detail.elt); });

  // Joining a drop's line: the button waits for the page's proof of work (ALTCHA's widget), then
  // sends its solution with the form. A failed or lapsed challenge is fetched and solved again.
  // The widget's events do not bubble: heard on their way down (the capture phase).
  document.addEventListener("statechange", function (event) {
    var widget = event.target;
    if (!widget || !widget.closest) return;
    var form = widget.closest("form.join-queue, form.enter-draw");
    var button = form && form.querySelector("button[data-waits-for-proof]");
    if (!button) return;
    var verified = event.detail && event.detail.state === "verified";
    button.disabled = !verified;
    if (verified) button.removeAttribute("aria-disabled");
    else button.setAttribute("aria-disabled", "true");
  }, true);

  // An owner's switch that changes a live sale asks first (a button with data-confirm).
  document.addEventListener("submit", function (event) {
    var button = event.submitter && event.submitter.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
  });

  // A line's entry id is drawn here, not by the shop: the shop cannot choose where anyone ranks.
  function drawEntryIds(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("input[data-draws-entry-id]").forEach(function (input) {
      if (!input.value && window.crypto && typeof window.crypto.randomUUID === "function") {
        input.value = window.crypto.randomUUID();
      }
    });
  }
  document.addEventListener("htmx:load", function (event) { drawEntryIds(event.detail.elt); });
  whenLoaded(function () { drawEntryIds(document); });

  function mountPayments(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("form[data-stripe-payment]").forEach(mountPayment);
  }
  document.addEventListener("htmx:load", function (event) { mountPayments(event.detail.elt.parentNode || document); });
  whenLoaded(function () { mountPayments(document); localTimes(document); });
})();
