// Draws each [data-chart] element from the JSON block it names, with plotly.js served by Kizuna (no CDN).
// The numbers are also in the table beside each chart, so the page reads without this script.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  if (!window.Plotly) return;
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source) return;
    var spec = JSON.parse(source.textContent);
    window.Plotly.newPlot(el, spec.data, spec.layout, { displaylogo: false, displayModeBar: false, responsive: true }).then(function () {
      el.setAttribute("data-drawn", "true");
    });
  });
});
