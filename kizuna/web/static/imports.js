// Import job page: follow a queued or running import by polling its progress, then show the result.
"use strict";

(function () {
  var box = document.querySelector("[data-follow]");
  if (!box) return;
  var url = box.getAttribute("data-follow");
  var bar = box.querySelector("progress");
  var percent = box.querySelector("[data-testid=progress-percent]");
  var done = box.querySelector("[data-testid=rows-done]");
  var total = box.querySelector("[data-testid=rows-total]");
  var delay = 500;

  function show(job) {
    bar.value = job.percent;
    bar.textContent = job.percent + "%";
    percent.textContent = job.percent;
    done.textContent = job.rows_done.toLocaleString();
    total.textContent = job.rows_total.toLocaleString();
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (job) {
        show(job);
        if (job.status === "done" || job.status === "failed") {
          // The server renders the counts and the reject report link.
          window.location.reload();
          return;
        }
        delay = Math.min(delay * 1.5, 3000);
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        window.setTimeout(poll, 5000);
      });
  }

  window.setTimeout(poll, delay);
})();
