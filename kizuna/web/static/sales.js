// The kanban board: drag a card to another column, or use its "Move" menu (a plain form, which works without
// this script and from the keyboard). A drop posts the card's own form (CSRF token and version included) and
// asks for JSON; a refused move (stale version, missing lost reason) shows the server's message and puts the
// card back as it is stored now.
(function () {
  "use strict";
  var board = document.querySelector("[data-testid=board]");
  if (!board) return;
  var message = document.getElementById("board-message");
  var dragged = null;

  function say(text) {
    message.textContent = text || "";
    message.hidden = !text;
  }

  function columnOf(stageId) {
    return board.querySelector('.board-column[data-stage="' + stageId + '"]');
  }

  function place(html, stageId, old) {
    var holder = document.createElement("ol");
    holder.innerHTML = html;
    var card = holder.firstElementChild;
    if (old && old.parentNode) old.parentNode.removeChild(old);
    var column = columnOf(stageId);
    if (card && column) column.querySelector(".cards").insertBefore(card, column.querySelector(".cards").firstChild);
    return card;
  }

  function move(card, column) {
    var form = card.querySelector("form.move-form");
    if (!form) return;
    var data = new FormData(form);
    data.set("stage_id", column.dataset.stage);
    if (column.dataset.kind === "lost") {
      var reason = window.prompt(board.dataset.lostPrompt, "");
      if (!reason) return;
      data.set("lost_reason", reason);
    }
    var target = column.querySelector(".cards");
    target.insertBefore(card, target.firstChild);
    card.classList.add("saving");
    fetch(form.action, { method: "POST", body: data, headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        var body = result.body;
        place(body.card, body.stage_id, card);
        if (result.ok) {
          say("");
          Object.keys(body.columns || {}).forEach(function (id) {
            var col = columnOf(id);
            if (!col) return;
            col.querySelector(".col-count").textContent = body.columns[id].count;
            col.querySelector(".col-total").textContent = body.columns[id].total;
          });
        } else {
          say(body.message);
        }
      })
      .catch(function () {
        say(board.dataset.failed);
        card.classList.remove("saving");
      });
  }

  board.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest(".deal-card[draggable=true]");
    if (!card) return;
    dragged = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.deal);
  });
  board.addEventListener("dragend", function () {
    dragged = null;
    board.querySelectorAll(".drop-target").forEach(function (c) { c.classList.remove("drop-target"); });
  });
  board.addEventListener("dragover", function (event) {
    var column = event.target.closest && event.target.closest(".board-column");
    if (!dragged || !column) return;
    event.preventDefault();
    column.classList.add("drop-target");
  });
  board.addEventListener("dragleave", function (event) {
    var column = event.target.closest && event.target.closest(".board-column");
    if (column && !column.contains(event.relatedTarget)) column.classList.remove("drop-target");
  });
  board.addEventListener("drop", function (event) {
    var column = event.target.closest && event.target.closest(".board-column");
    if (!dragged || !column) return;
    event.preventDefault();
    column.classList.remove("drop-target");
    var card = dragged;
    dragged = null;
    if (card.closest(".board-column") === column) return;
    move(card, column);
  });
})();
