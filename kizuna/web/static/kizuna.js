// Kizuna UI: small progressive enhancements only; every page works without this file.
"use strict";

document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("click", function (event) {
  var button = event.target.closest && event.target.closest("[data-copy]");
  if (!button) return;
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field) return;
  field.select();
  if (navigator.clipboard) {
    navigator.clipboard.writeText(field.value).catch(function () {});
  }
  button.classList.add("copied");
});

// Close the user menu when clicking elsewhere.
document.addEventListener("click", function (event) {
  document.querySelectorAll("details.user-menu[open]").forEach(function (menu) {
    if (!menu.contains(event.target)) menu.removeAttribute("open");
  });
});

// === bulk selection on lists: "select all" and the count of checked rows ===
(function () {
  function update(form) {
    var boxes = document.querySelectorAll('input[type=checkbox][name=ids][form="' + form.id + '"]');
    var checked = 0;
    boxes.forEach(function (b) { if (b.checked) checked += 1; });
    var count = form.querySelector("[data-bulk-count]");
    if (count) count.textContent = count.getAttribute("data-template").replace("{n}", String(checked));
    var all = document.querySelector('[data-select-all="' + form.id + '"]');
    if (all) {
      all.checked = checked > 0 && checked === boxes.length;
      all.indeterminate = checked > 0 && checked < boxes.length;
    }
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    var formId = target.getAttribute && (target.getAttribute("data-select-all") || (target.name === "ids" && target.getAttribute("form")));
    if (!formId) return;
    var form = document.getElementById(formId);
    if (!form) return;
    if (target.hasAttribute("data-select-all")) {
      document.querySelectorAll('input[type=checkbox][name=ids][form="' + formId + '"]').forEach(function (b) { b.checked = target.checked; });
    }
    update(form);
  });
})();
