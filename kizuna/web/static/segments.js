// Segment builder: rows of conditions (field, condition, value) written into the rule's JSON text area, and a
// live count with a few sample customers from POST /segments/preview (the form's CSRF token goes with it).
"use strict";

(function () {
  var form = document.querySelector("[data-preview]");
  var dataTag = document.getElementById("segment-builder");
  if (!form || !dataTag) return;
  var builder = JSON.parse(dataTag.textContent);
  var list = form.querySelector("[data-conditions]");
  var ruleBox = form.querySelector("[data-rule]");
  var match = form.querySelector("[name=match]");
  var countBox = form.querySelector("[data-count]");
  var errorBox = form.querySelector("[data-preview-error]");
  var sampleBox = form.querySelector("[data-sample]");
  var kinds = {};
  var choices = {};  // a choice, multi-choice or user custom field: its values to pick from
  builder.fields.forEach(function (f) {
    kinds[f.value] = f.kind;
    if (f.choices) choices[f.value] = f.choices;
  });
  // Kinds whose value is picked from a list rather than typed.
  var picked = { rfm: true, choice: true, multi: true };
  var timer = null;
  var serial = 0;
  var rowId = 0;

  function option(value, label) {
    var o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    return o;
  }

  function labelled(text, control) {
    var label = document.createElement("label");
    label.className = "segment-cell";
    var span = document.createElement("span");
    span.className = "visually-hidden";
    span.textContent = text;
    label.appendChild(span);
    label.appendChild(control);
    return label;
  }

  function fillOps(row) {
    var kind = kinds[row.field.value];
    row.op.textContent = "";
    builder.ops[kind].forEach(function (o) { row.op.appendChild(option(o.value, o.label)); });
    row.choice.textContent = "";
    (kind === "rfm" ? builder.rfm : choices[row.field.value] || []).forEach(function (o) {
      row.choice.appendChild(option(o.value, o.label));
    });
    var numeric = kind === "number" || kind === "days";
    row.value.type = numeric ? "number" : kind === "date" ? "date" : "text";
    row.value.step = kind === "number" ? "any" : "1";
    row.days.hidden = !(kind === "event" || kind === "bought");
    row.daysLabel.hidden = row.days.hidden;
    showValue(row);
  }

  function showValue(row) {
    var kind = kinds[row.field.value];
    var none = row.op.value === "is_empty" || row.op.value === "is_not_empty" || kind === "consent";
    row.value.hidden = none || !!picked[kind];
    row.valueLabel.hidden = row.value.hidden;
    row.choiceLabel.hidden = none || !picked[kind];
  }

  function addRow(field) {
    rowId += 1;
    var el = document.createElement("div");
    el.className = "segment-condition";
    el.setAttribute("data-testid", "condition");
    var row = { el: el };
    row.field = document.createElement("select");
    row.field.setAttribute("data-testid", "condition-field");
    builder.fields.forEach(function (f) { row.field.appendChild(option(f.value, f.label)); });
    if (field) row.field.value = field;
    row.op = document.createElement("select");
    row.op.setAttribute("data-testid", "condition-op");
    row.value = document.createElement("input");
    row.value.setAttribute("data-testid", "condition-value");
    row.choice = document.createElement("select");
    row.choice.setAttribute("data-testid", "condition-choice");
    builder.rfm.forEach(function (o) { row.choice.appendChild(option(o.value, o.label)); });
    row.days = document.createElement("input");
    row.days.type = "number";
    row.days.min = "1";
    row.days.setAttribute("data-testid", "condition-days");
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "button";
    remove.textContent = builder.text.remove;
    el.appendChild(labelled(builder.text.field, row.field));
    el.appendChild(labelled(builder.text.op, row.op));
    row.valueLabel = labelled(builder.text.value, row.value);
    el.appendChild(row.valueLabel);
    row.choiceLabel = labelled(builder.text.value, row.choice);
    el.appendChild(row.choiceLabel);
    row.daysLabel = labelled(builder.text.days, row.days);
    el.appendChild(row.daysLabel);
    el.appendChild(remove);
    row.field.addEventListener("change", function () { fillOps(row); changed(); });
    row.op.addEventListener("change", function () { showValue(row); changed(); });
    row.value.addEventListener("input", changed);
    row.days.addEventListener("input", changed);
    row.choice.addEventListener("change", changed);
    remove.addEventListener("click", function () {
      rows.splice(rows.indexOf(row), 1);
      el.remove();
      changed();
    });
    list.appendChild(el);
    rows.push(row);
    fillOps(row);
    return row;
  }

  var rows = [];

  function number(text) {
    var n = Number(text);
    return text === "" || isNaN(n) ? text : n;
  }

  function condition(row) {
    var parts = row.field.value.split(":");
    var kind = kinds[row.field.value];
    var op = row.op.value;
    var value = row.value.value.trim();
    var days = parseInt(row.days.value, 10);
    var c;
    if (kind === "tag") {
      c = { tag: value };
      return op === "has_not" ? { not: c } : c;
    }
    if (kind === "consent") {
      c = { consent: { channel: parts[1] } };
      return op === "has_not" ? { not: c } : c;
    }
    if (kind === "event") {
      c = { event: value };
      if (days > 0) c.within_days = days;
      if (op === "did_not") c.negate = true;
      return c;
    }
    if (kind === "bought") {
      var spec = {};
      spec[parts[1]] = value;
      if (days > 0) spec.within_days = days;
      return op === "did_not" ? { not: { bought: spec } } : { bought: spec };
    }
    // Custom fields: dates compare as ISO dates, a multi-choice field "has" one of its choices.
    var ops = { on_or_after: "gte", on_or_before: "lte", has: "eq", has_not: "ne" };
    var cmp = { op: ops[op] || op };
    if (op === "is_empty" || op === "is_not_empty") {
      // no value
    } else if (kind === "rfm" || kind === "choice" || kind === "multi") {
      // The option's own value: a user is an id (a number), a choice stays text even when it looks like one.
      var options = kind === "rfm" ? builder.rfm : choices[row.field.value] || [];
      var chosen = options.filter(function (o) { return String(o.value) === row.choice.value; })[0];
      cmp.value = chosen ? chosen.value : row.choice.value;
    } else if (kind === "days") {
      cmp.op = op === "within" ? "gte" : "lt";
      cmp.value = { days_ago: parseInt(value, 10) || 0 };
    } else {
      cmp.value = kind === "number" ? number(value) : value;
    }
    if (parts[0] === "orders") return { orders: Object.assign({ metric: parts[1] }, cmp) };
    if (parts[0] === "metric") return Object.assign({ metric: parts[1] }, cmp);
    return Object.assign({ attribute: parts[1] }, cmp);
  }

  function rule() {
    if (!rows.length) return null;
    var all = rows.map(condition);
    var r = {};
    r[match.value] = all;
    return r;
  }

  function changed() {
    var r = rule();
    if (r) ruleBox.value = JSON.stringify(r);
    window.clearTimeout(timer);
    timer = window.setTimeout(preview, 300);
  }

  function preview() {
    if (!ruleBox.value.trim()) return;
    serial += 1;
    var mine = serial;
    var body = new FormData();
    body.append("csrf_token", form.querySelector("[name=csrf_token]").value);
    body.append("rule", ruleBox.value);
    fetch(form.getAttribute("data-preview"), { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (found) {
        if (mine !== serial) return;  // an older answer arriving after a newer one
        sampleBox.textContent = "";
        if (found.error) {
          errorBox.textContent = found.error;
          errorBox.hidden = false;
          countBox.textContent = "–";
          return;
        }
        errorBox.hidden = true;
        countBox.textContent = found.count.toLocaleString();
        found.sample.forEach(function (c) {
          var li = document.createElement("li");
          var a = document.createElement("a");
          a.href = "/customers/" + c.id;
          a.textContent = c.name;
          li.appendChild(a);
          sampleBox.appendChild(li);
        });
      })
      .catch(function () {
        errorBox.textContent = builder.text.error;
        errorBox.hidden = false;
      });
  }

  form.querySelector("[data-add-condition]").addEventListener("click", function () {
    addRow();
    changed();
  });
  match.addEventListener("change", changed);
  ruleBox.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(preview, 300);
  });
  if (ruleBox.value.trim()) preview();
  else addRow();
})();
