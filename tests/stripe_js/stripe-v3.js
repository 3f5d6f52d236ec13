/*
 * TEST DOUBLE of Stripe.js v3 (https://js.stripe.com/v3/), for the browser tests only.
 *
 * Stripe.js cannot load on the test machines, so tests/stripe_double.py serves this file at
 * Stripe's own URL (the shop's Content-Security-Policy applies to it as to the real one). It
 * is the documented API the shop calls, and nothing more: Stripe(key), elements({clientSecret}),
 * elements.create("payment" | "address", options), element.mount, element.on, address.getValue,
 * elements.submit() and stripe.confirmPayment({elements, confirmParams, redirect}). The fields
 * live in frames served from https://js.stripe.com, as Stripe's do; the calls go to
 * https://api.stripe.com, which the tests hand to localstripe (a stateful Stripe stand-in).
 *
 * It reaches every origin of Stripe's published CSP list, so that the shop's policy is checked
 * against all of them: the payment frame from a subdomain of js.stripe.com (https://*.js.stripe.com),
 * the address frame from js.stripe.com, and the Address Element's autocomplete from Google Maps
 * (a script and a request to https://maps.googleapis.com, answered by the tests).
 *
 * What it cannot stand in for: Stripe's own frames (their fields, formatting, wallets, Link),
 * Radar's fraud checks, and 3-D Secure as banks run it. It behaves as Stripe documents
 * confirmPayment: a declined card resolves with {error} and no redirect. A card that needs
 * authentication shows the bank's challenge in a frame over the page (Stripe's 3DS dialog);
 * with redirect: "if_required" (the shop's setting) a card payment never leaves the page: a
 * completed challenge resolves with {paymentIntent}, a failed one with {error} whose code is
 * payment_intent_authentication_failure. Only with the default redirect: "always" does the
 * browser go on to return_url with payment_intent, payment_intent_client_secret and
 * redirect_status. An intent created with capture_method=manual (a draw's entry) resolves with its
 * status requires_capture: authorised, to be captured by the server later.
 */
(function () {
  "use strict";
  var API = "https://api.stripe.com";
  var FRAMES = { payment: "https://b.js.stripe.com/v3/elements-inner.html",
                 address: "https://js.stripe.com/v3/elements-inner.html" };
  var MAPS = "https://maps.googleapis.com/maps/api";
  var CHALLENGE = "https://hooks.stripe.com/3d_secure_2/authenticate";
  var frameCount = 0;

  function form(values) {
    return Object.keys(values).filter(function (k) { return values[k] !== undefined && values[k] !== ""; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(values[k]); }).join("&");
  }

  function post(path, values) {
    return fetch(API + path, {
      method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: form(values)
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    });
  }

  // One element: a frame from js.stripe.com holding its fields, asked for them by postMessage.
  function Element(type, options) {
    this.type = type;
    this.options = options || {};
    this.frame = null;
    this.handlers = {};
  }
  Element.prototype.mount = function (target) {
    var node = typeof target === "string" ? document.querySelector(target) : target;
    var frame = document.createElement("iframe");
    frame.name = "__privateStripeFrame" + (++frameCount);
    frame.title = this.type === "payment" ? "Secure payment input frame" : "Secure address input frame";
    frame.src = FRAMES[this.type] + "#type=" + this.type + "&mode=" + (this.options.mode || "");
    if (this.type === "address") {
      // Address autocomplete: Google's Places library, then a first prediction request.
      var maps = document.createElement("script");
      maps.src = MAPS + "/js?libraries=places";
      maps.addEventListener("load", function () { fetch(MAPS + "/place/autocomplete/json?input=").catch(function () {}); });
      document.head.appendChild(maps);
    }
    frame.setAttribute("frameborder", "0");
    frame.style.width = "100%";
    frame.style.border = "0";
    frame.style.height = this.type === "payment" ? "150px" : "330px";
    var element = this;
    frame.addEventListener("load", function () { element._emit("ready", { elementType: element.type }); });
    node.appendChild(frame);
    this.frame = frame;
  };
  Element.prototype.on = function (name, handler) {
    (this.handlers[name] = this.handlers[name] || []).push(handler);
    return this;
  };
  Element.prototype._emit = function (name, detail) {
    (this.handlers[name] || []).forEach(function (handler) { handler(detail); });
  };
  Element.prototype._ask = function (question) {
    var frame = this.frame;
    return new Promise(function (resolve, reject) {
      if (!frame || !frame.contentWindow) { reject(new Error("element not mounted")); return; }
      var id = Math.random().toString(36).slice(2);
      function answer(event) {
        if (!/^https:\/\/([a-z0-9-]+\.)?js\.stripe\.com$/.test(event.origin) || !event.data || event.data.id !== id) return;
        window.removeEventListener("message", answer);
        resolve(event.data);
      }
      window.addEventListener("message", answer);
      frame.contentWindow.postMessage({ id: id, question: question }, new URL(frame.src).origin);
    });
  };
  // Address Element: {complete, isNewAddress, value: {name, address: {line1, ..., country}}}.
  Element.prototype.getValue = function () {
    return this._ask("value").then(function (reply) {
      return { complete: reply.complete, isNewAddress: true, value: reply.value };
    });
  };

  function Elements(stripe, options) {
    this.stripe = stripe;
    this.clientSecret = (options || {}).clientSecret;
    this.byType = {};
  }
  Elements.prototype.create = function (type, options) {
    if (type !== "payment" && type !== "address") throw new Error("this double has no " + type + " element");
    return (this.byType[type] = new Element(type, options));
  };
  Elements.prototype.getElement = function (type) { return this.byType[type] || null; };
  // Validates every mounted element; {error} names the first incomplete field, as Stripe's does.
  Elements.prototype.submit = function () {
    var elements = Object.keys(this.byType).map(function (type) { return this.byType[type]; }, this);
    return Promise.all(elements.map(function (element) { return element._ask("value"); })).then(function (replies) {
      for (var i = 0; i < replies.length; i++) {
        if (!replies[i].complete) {
          return { error: { type: "validation_error", message: replies[i].problem || "Your details are incomplete." } };
        }
      }
      return {};
    });
  };

  function Stripe(publishableKey) {
    if (!(this instanceof Stripe)) return new Stripe(publishableKey);
    if (!/^pk_(test|live)_/.test(publishableKey || "")) throw new Error("Invalid publishable key: " + publishableKey);
    this.key = publishableKey;
    window.__stripeDoubleInstances = (window.__stripeDoubleInstances || 0) + 1;
  }
  Stripe.prototype.elements = function (options) { return new Elements(this, options); };
  Stripe.prototype.confirmPayment = function (options) {
    var stripe = this, elements = options.elements, params = options.confirmParams || {};
    var secret = elements.clientSecret, intentId = secret.split("_secret_")[0];
    var payment = elements.getElement("payment");
    return payment._ask("value").then(function (card) {
      return post("/v1/payment_methods", {
        key: stripe.key, type: "card", "card[number]": card.value.number, "card[exp_month]": card.value.expMonth,
        "card[exp_year]": card.value.expYear, "card[cvc]": card.value.cvc
      });
    }).then(function (created) {
      if (!created.ok) return created;
      return post("/v1/payment_intents/" + intentId + "/confirm", {
        key: stripe.key, client_secret: secret, payment_method: created.body.id, return_url: params.return_url,
        receipt_email: params.receipt_email
      });
    }).then(function (confirmed) {
      if (!confirmed.ok) {
        var error = confirmed.body.error || {};
        return { error: { type: error.type || "card_error", code: error.code, message: error.message } };
      }
      var intent = confirmed.body;
      var back = params.return_url + (params.return_url.indexOf("?") < 0 ? "?" : "&") +
        "payment_intent=" + encodeURIComponent(intent.id) +
        "&payment_intent_client_secret=" + encodeURIComponent(secret);
      var authenticated = intent.status === "requires_action" ? challenge(stripe.key, secret) : Promise.resolve(intent);
      return authenticated.then(function (settled) {
        // An intent with capture_method=manual is authorised, not paid: requires_capture is a success too.
        var ok = settled.status === "succeeded" || settled.status === "processing" || settled.status === "requires_capture";
        if (options.redirect !== "if_required") {
          window.location.assign(back + "&redirect_status=" + (ok ? "succeeded" : "failed"));
          return new Promise(function () {});
        }
        if (!ok) {
          return { error: { type: "invalid_request_error", code: "payment_intent_authentication_failure",
            message: "We are unable to authenticate your payment method. Please choose a different payment method and try again." } };
        }
        return { paymentIntent: { id: settled.id, status: settled.status, amount: settled.amount, currency: settled.currency } };
      });
    });
  };

  // The bank's 3-D Secure challenge in a frame over the page, as Stripe's dialog shows it; resolves
  // with the intent once the bank has answered (the challenge page posts it back).
  function challenge(key, secret) {
    return new Promise(function (resolve) {
      var frame = document.createElement("iframe");
      frame.src = CHALLENGE + "?" + form({ key: key, client_secret: secret });
      frame.title = "3D Secure authentication";
      frame.className = "stripe-double-3ds";
      frame.style.cssText = "position:fixed;inset:10%;width:80%;height:80%;z-index:2147483647;background:#fff;border:1px solid";
      function answered(event) {
        if (event.source !== frame.contentWindow || !event.data || event.data.type !== "3ds-result") return;
        window.removeEventListener("message", answered);
        frame.remove();
        resolve(event.data.intent);
      }
      window.addEventListener("message", answered);
      document.body.appendChild(frame);
    });
  }

  window.Stripe = Stripe;
})();
