/* Agents see waiting chats without reloading: every few seconds (data-every, 10 by default) the number of
   chats waiting for a person is fetched from a small JSON endpoint (data-url); the badges marked
   data-chat-waiting show it and the page title starts with it, "(2) ...", so a background tab shows it too.
   When the number grows and the browser already allows this site's notifications, a desktop notification
   says so; permission is only ever asked for by the agent's own click (the button marked data-chat-notify). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var url = script.getAttribute("data-url");
  var every = parseFloat(script.getAttribute("data-every")) || 10;
  var notifyText = script.getAttribute("data-notify") || "{n}";
  var baseTitle = document.title;
  var last = null;

  function show(n) {
    document.querySelectorAll("[data-chat-waiting]").forEach(function (badge) {
      badge.textContent = String(n);
      badge.hidden = n === 0;
    });
    document.title = n > 0 ? "(" + n + ") " + baseTitle : baseTitle;
    if (last !== null && n > last && "Notification" in window && Notification.permission === "granted") {
      try { new Notification(notifyText.replace("{n}", String(n)), { tag: "kizuna-chats" }); } catch (e) { /* some browsers allow it only from a service worker */ }
    }
    last = n;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data && typeof data.waiting === "number") show(data.waiting); })
      .catch(function () { /* the next tick tries again */ });
  }

  function offerNotifications() {
    if (!("Notification" in window) || Notification.permission !== "default") return;
    document.querySelectorAll("[data-chat-notify]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        Notification.requestPermission().then(function () { button.hidden = true; });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { offerNotifications(); poll(); });
  setInterval(poll, every * 1000);
})();
