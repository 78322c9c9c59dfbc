/* Kizuna website snippet: page views, identify on form submit, consent first when the site asks for it.
 *
 *   <script>window.kizuna=window.kizuna||function(){(kizuna.q=kizuna.q||[]).push(arguments)}</script>
 *   <script src="https://crm.example.com/js/kizuna.js" data-write-key="kzw_..." data-require-consent defer></script>
 *   ... after the visitor agrees:  kizuna('consent', true)
 *
 * Calls: kizuna('page' [, name, properties]), kizuna('track', event [, properties]),
 * kizuna('identify' [, userId], traits), kizuna('consent', true|false), kizuna('reset').
 * Forms with a data-kizuna-identify attribute identify the visitor on submit with their e-mail and name fields
 * (never passwords). With data-require-consent nothing is sent and nothing is stored in the browser until
 * kizuna('consent', true); calls made before it wait in memory and are dropped on kizuna('consent', false).
 * Sent with fetch keepalive and a text/plain body (the write key inside), so no CORS preflight is needed.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var host = new URL(script.src, location.href).origin;
  var writeKey = script.getAttribute("data-write-key") || "";
  var needsConsent = script.hasAttribute("data-require-consent");
  var autoPage = script.getAttribute("data-auto-page") !== "false";
  var STORE = { anon: "kizuna_anonymous_id", user: "kizuna_user_id", consent: "kizuna_consent" };
  var TRAITS = ["email", "name", "firstName", "lastName", "first_name", "last_name", "phone"];
  var waiting = [];

  function read(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }
  function write(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch (e) { /* storage blocked: ids then live for this page only */ }
  }
  var memory = {};
  function id(key) {
    var value = read(key) || memory[key];
    if (!value && key === STORE.anon) {
      value = window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
      memory[key] = value;
      write(key, value);
    }
    return value || null;
  }
  function consented() {
    return !needsConsent || read(STORE.consent) === "granted" || memory.consent === "granted";
  }
  function uuid() {
    return window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
  }
  function context() {
    return {
      library: { name: "kizuna.js", version: "1" },
      page: { url: location.href, path: location.pathname, title: document.title, referrer: document.referrer },
      userAgent: navigator.userAgent,
      locale: navigator.language
    };
  }
  function send(call, fields) {
    var now = new Date().toISOString();
    var body = Object.assign({ messageId: uuid(), timestamp: now, sentAt: now, context: context() }, fields);
    body.writeKey = writeKey;
    body.anonymousId = id(STORE.anon);
    var user = id(STORE.user);
    if (user && !body.userId) body.userId = user;
    return fetch(host + "/v1/" + call, {
      method: "POST",
      keepalive: true,
      headers: { "Content-Type": "text/plain" },
      body: JSON.stringify(body)
    }).catch(function () { /* a lost page view is not worth an error on the site */ });
  }
  function later(call, fields) {
    if (consented()) return send(call, fields);
    if (waiting.length < 100) waiting.push([call, fields]);
  }

  var commands = {
    page: function (name, properties) {
      later("page", { name: name || document.title, properties: properties || {} });
    },
    track: function (event, properties) {
      if (event) later("track", { event: String(event), properties: properties || {} });
    },
    identify: function (userId, traits) {
      if (typeof userId === "object" && userId !== null) { traits = userId; userId = null; }
      if (userId && consented()) write(STORE.user, String(userId));
      later("identify", userId ? { userId: String(userId), traits: traits || {} } : { traits: traits || {} });
    },
    consent: function (granted) {
      var value = granted ? "granted" : "denied";
      memory.consent = value;
      if (granted) {
        write(STORE.consent, value);
        var queued = waiting;
        waiting = [];
        queued.forEach(function (item) { send(item[0], item[1]); });
      } else {
        waiting = [];
        write(STORE.consent, null);
        write(STORE.anon, null);
        write(STORE.user, null);
      }
    },
    reset: function () {
      write(STORE.anon, null);
      write(STORE.user, null);
      memory = { consent: memory.consent };
    }
  };

  function run(args) {
    var command = commands[args[0]];
    if (command) command.apply(null, Array.prototype.slice.call(args, 1));
  }
  var stub = window.kizuna;
  window.kizuna = function () { run(arguments); };
  var early = (stub && stub.q) || [];
  // A consent given before the snippet loaded counts before the page view it guards.
  early.filter(function (a) { return a[0] === "consent"; }).forEach(run);
  if (autoPage) commands.page();
  early.filter(function (a) { return a[0] !== "consent"; }).forEach(run);

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || !form.hasAttribute || !form.hasAttribute("data-kizuna-identify")) return;
    var traits = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      var name = field.getAttribute("data-kizuna-trait") || field.name;
      if (field.type === "password" || !name || TRAITS.indexOf(name) < 0 || !field.value) return;
      traits[name] = field.value;
    });
    if (Object.keys(traits).length) commands.identify(traits);
  }, true);
})();
