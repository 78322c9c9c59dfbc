/* The live-chat pages keep themselves current: every few seconds the page is fetched again and the parts
   marked data-live (the chat's messages, the queue) are replaced when they changed. Nothing the agent is
   typing is touched. */
(function () {
  "use strict";
  var parts = document.querySelectorAll("[data-live]");
  if (!parts.length) return;
  var seconds = parseFloat(parts[0].getAttribute("data-live")) || 3;
  function refresh() {
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        parts.forEach(function (node) {
          var other = node.id && fresh.getElementById(node.id);
          if (other && other.innerHTML !== node.innerHTML) node.innerHTML = other.innerHTML;
        });
      })
      .catch(function () { /* the next tick tries again */ });
  }
  setInterval(refresh, seconds * 1000);
})();
