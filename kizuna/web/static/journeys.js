// Journey builder: the draft drawn as boxes and arrows in SVG. Add steps from the toolbar, drag them, connect an
// output (the dot on a box's right edge) to another box, edit the selected step in the side panel (which also
// offers every connection as a list, for the keyboard), then save, validate or publish: the definition goes to the
// server as JSON with the form's CSRF token, and the problems it finds are shown at their steps. Each box shows its
// live counts, polled from the server. Without this script the page still shows the steps and the JSON form.
"use strict";

(function () {
  var dataTag = document.getElementById("journey-data");
  var root = document.querySelector("[data-builder]");
  if (!dataTag || !root) return;
  var data = JSON.parse(dataTag.textContent);
  var T = data.text;
  var def = data.definition;
  def.layout = def.layout || {};
  var counts = data.counts || {};
  var problems = [];
  var selected = "__trigger";
  var canvas = root.querySelector("[data-canvas]");
  var panel = root.querySelector("[data-panel]");
  var problemBox = root.querySelector("[data-problems]");
  var statusBox = root.querySelector("[data-status]");
  var jsonBox = document.querySelector("[data-definition-json]");
  var csrf = root.querySelector("input[name=csrf_token]").value;
  var NS = "http://www.w3.org/2000/svg";
  var W = 200, H = 70, TRIGGER = "__trigger";
  var connecting = null;
  var drag = null;

  root.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });
  root.classList.add("js-ready");

  // --- the definition ---------------------------------------------------------------------------------------

  function step(id) {
    for (var i = 0; i < def.steps.length; i++) if (def.steps[i].id === id) return def.steps[i];
    return null;
  }

  function ports(s) {
    if (s.type === "exit") return [];
    if (s.type === "branch") return [{ field: "yes", label: T.yes, target: s.yes }, { field: "no", label: T.no, target: s.no }];
    if (s.type === "split") {
      return (s.variants || []).map(function (v, i) { return { field: "variants." + i, label: v.name, target: v.next }; });
    }
    return [{ field: "next", label: T.next, target: s.next }];
  }

  function connect(s, field, target) {
    if (field.indexOf("variants.") === 0) {
      var v = s.variants[Number(field.split(".")[1])];
      if (target) v.next = target; else delete v.next;
    } else if (target) {
      s[field] = target;
    } else {
      delete s[field];
    }
  }

  function position(id, index) {
    if (!def.layout[id]) {
      def.layout[id] = id === TRIGGER ? { x: 20, y: 40 } : { x: 260 + (index % 4) * 240, y: 40 + Math.floor(index / 4) * 110 };
    }
    return def.layout[id];
  }

  function freeSpot(x, y) {
    // Below the wanted place until no box is in the way.
    var taken = function () {
      return Object.keys(def.layout).some(function (k) {
        var p = def.layout[k];
        return Math.abs(p.x - x) < W + 20 && Math.abs(p.y - y) < H + 20;
      });
    };
    while (taken()) y += H + 40;
    return { x: x, y: y };
  }

  function freshId(type) {
    var n = 1;
    while (step(type + n)) n += 1;
    return type + n;
  }

  function defaults(type) {
    var email = (data.choices.templates || []).filter(function (t) { return t.channel === "email"; })[0];
    switch (type) {
      case "wait": return { duration: "P1D" };
      case "branch": return { condition: { tag: "VIP" } };
      case "split": return { variants: [{ name: "A", weight: 50 }, { name: "B", weight: 50 }], holdout: 0 };
      case "send": return { channel: "email", template: email ? email.name : "", kind: "marketing" };
      case "tag": return { add: ["journey"] };
      case "attribute": return { set: { stage: "nurtured" } };
      default: return {};
    }
  }

  function addStep(type) {
    var id = freshId(type);
    var s = Object.assign({ id: id, type: type }, defaults(type));
    var from = selected === TRIGGER ? null : step(selected);
    var first = ports(s)[0];
    var origin = def.layout[from ? from.id : TRIGGER] || { x: 20, y: 40 };
    var place = { x: origin.x + 240, y: origin.y };
    def.steps.push(s);
    // The new step goes right after the selected one (or the trigger): into its first free output, or between it
    // and the step its first output led to, which moves one column right with everything after it.
    var after = null;
    if (!from) {
      after = step(def.start) ? def.start : null;
      def.start = id;
    } else {
      var outs = ports(from);
      var free = outs.filter(function (p) { return !p.target; })[0];
      if (free) {
        connect(from, free.field, id);
      } else if (outs.length) {
        after = outs[0].target;
        connect(from, outs[0].field, id);
      }
    }
    if (after && first) {
      connect(s, first.field, after);
      shiftRight(after, place.x);
    }
    def.layout[id] = freeSpot(place.x, place.y);
    selected = id;
    changed(true);
  }

  function shiftRight(from, x) {
    var seen = {}, todo = [from];
    while (todo.length) {
      var id = todo.pop();
      if (seen[id] || !step(id)) continue;
      seen[id] = true;
      if (def.layout[id] && def.layout[id].x >= x - W / 2) def.layout[id].x += 240;
      ports(step(id)).forEach(function (p) { if (p.target) todo.push(p.target); });
    }
  }

  function tidy() {
    // Columns by distance from the start, rows in the order met; steps not reached go in a last column.
    var depth = {}, order = [];
    if (step(def.start)) { depth[def.start] = 0; order.push(def.start); }
    for (var i = 0; i < order.length; i++) {
      ports(step(order[i])).forEach(function (p) {
        if (p.target && step(p.target) && depth[p.target] === undefined) { depth[p.target] = depth[order[i]] + 1; order.push(p.target); }
      });
    }
    var last = order.length ? Math.max.apply(null, order.map(function (id) { return depth[id]; })) + 1 : 0;
    def.steps.forEach(function (s) { if (depth[s.id] === undefined) { depth[s.id] = last; order.push(s.id); } });
    var rows = {};
    def.layout[TRIGGER] = { x: 20, y: 40 };
    order.forEach(function (id) {
      var d = depth[id];
      rows[d] = (rows[d] || 0) + 1;
      def.layout[id] = { x: 260 + d * 240, y: 40 + (rows[d] - 1) * 100 };
    });
    changed(false);
  }

  function removeStep(id) {
    def.steps = def.steps.filter(function (s) { return s.id !== id; });
    def.steps.forEach(function (s) {
      ports(s).forEach(function (p) { if (p.target === id) connect(s, p.field, null); });
    });
    delete def.layout[id];
    if (def.start === id) def.start = def.steps.length ? def.steps[0].id : "";
    selected = TRIGGER;
    changed(true);
  }

  function renameStep(s, id) {
    if (!/^[A-Za-z0-9_\-]{1,64}$/.test(id) || step(id)) return false;
    var old = s.id;
    def.steps.forEach(function (other) {
      ports(other).forEach(function (p) { if (p.target === old) connect(other, p.field, id); });
    });
    if (def.start === old) def.start = id;
    def.layout[id] = def.layout[old];
    delete def.layout[old];
    s.id = id;
    selected = id;
    return true;
  }

  // --- drawing ----------------------------------------------------------------------------------------------

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, value, cls) {
    var node = el("text", { x: x, y: y, "class": cls || "" }, parent);
    node.textContent = value;
    return node;
  }

  function short(value, size) {
    value = String(value || "");
    return value.length > size ? value.slice(0, size - 1) + "…" : value;
  }

  function countLine(id) {
    var c = counts[id];
    if (!c) return T.entered + " 0";
    return [T.entered + " " + c.entered, T.waiting + " " + c.waiting, T.completed + " " + c.completed].join(" · ");
  }

  function sentLine(id) {
    var c = counts[id];
    return c && c.messages ? "✉ " + c.messages.sent : "";
  }

  function hasProblem(id) {
    return problems.some(function (p) { return p.step === id || (id === TRIGGER && !p.step); });
  }

  function edge(svg, from, to, label) {
    var x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2;
    var bend = Math.max(40, Math.abs(x2 - x1) / 2);
    el("path", { d: "M" + x1 + "," + y1 + " C" + (x1 + bend) + "," + y1 + " " + (x2 - bend) + "," + y2 + " " + x2 + "," + y2,
      "class": "edge", "marker-end": "url(#arrow)" }, svg);
    if (label) text(svg, (x1 + x2) / 2, (y1 + y2) / 2 - 4, short(label, 12), "edge-label");
  }

  function render() {
    var width = 640, height = 300;
    position(TRIGGER, 0);
    def.steps.forEach(function (s, i) {
      var p = position(s.id, i);
      width = Math.max(width, p.x + W + 140);
      height = Math.max(height, p.y + H + 60);
    });
    var svg = el("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height, "class": "journey-svg",
      role: "group", "aria-label": T.diagram_label });
    var defs = el("defs", {}, svg);
    var marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", "class": "arrow-head" }, marker);
    var trigger = def.layout[TRIGGER];
    if (step(def.start)) edge(svg, trigger, def.layout[def.start], "");
    def.steps.forEach(function (s) {
      var many = s.type === "branch" || s.type === "split";
      ports(s).forEach(function (p) {
        if (p.target && step(p.target)) edge(svg, def.layout[s.id], def.layout[p.target], many ? p.label : "");
      });
    });
    node(svg, TRIGGER, T.trigger, T["trigger_" + def.trigger.type] || def.trigger.type, "", []);
    def.steps.forEach(function (s) {
      node(svg, s.id, T["type_" + s.type] || s.type, s.label || s.id, countLine(s.id), ports(s), s);
    });
    canvas.textContent = "";
    canvas.appendChild(svg);
  }

  function node(svg, id, kind, title, line, outs, s) {
    var p = def.layout[id];
    var g = el("g", { transform: "translate(" + p.x + "," + p.y + ")", tabindex: "0", role: "button",
      "class": "node node-" + (s ? s.type : "trigger") + (selected === id ? " selected" : "") + (hasProblem(id) ? " problem" : "") +
        (def.start === id ? " start" : ""),
      "data-node": id, "data-testid": id === TRIGGER ? "node-trigger" : "node-" + id,
      "aria-label": kind + ": " + title + (line ? " (" + line + ")" : "") }, svg);
    el("rect", { width: W, height: H, rx: 6, ry: 6, "class": "box" }, g);
    text(g, 10, 18, short(kind, 24), "kind");
    text(g, 10, 38, short(title, 24), "title");
    if (line) {
      var c = text(g, 10, 58, short(line, 42), "counts");
      c.setAttribute("data-testid", "counts-" + id);
    }
    if (s && s.type === "send") {
      var sent = text(g, W - 12, 18, sentLine(id), "sent");
      sent.setAttribute("text-anchor", "end");
      sent.setAttribute("data-testid", "sent-" + id);
      el("title", {}, sent).textContent = T.sent;
    }
    if (id !== TRIGGER) el("circle", { cx: 0, cy: H / 2, r: 4, "class": "port-in" }, g);
    var outputs = id === TRIGGER ? [{ field: "start", label: T.start, target: def.start }] : outs;
    outputs.forEach(function (o, i) {
      var y = outputs.length === 1 ? H / 2 : 12 + i * ((H - 24) / Math.max(1, outputs.length - 1));
      var dot = el("circle", { cx: W, cy: y, r: 6, "class": "port" + (o.target ? " linked" : ""),
        "data-port": o.field, "data-testid": "port-" + (id === TRIGGER ? "trigger" : id) + "-" + o.field }, g);
      var tip = el("title", {}, dot);
      tip.textContent = o.label;
    });
    g.addEventListener("pointerdown", function (e) { startPointer(e, id); });
    g.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(id); }
      if (e.key === "Delete" && id !== TRIGGER && data.editable) removeStep(id);
    });
  }

  // --- pointer: drag boxes, drag from an output to a box to connect -----------------------------------------

  function svgPoint(e) {
    var svg = canvas.querySelector("svg");
    var box = svg.getBoundingClientRect();
    return { x: e.clientX - box.left, y: e.clientY - box.top };
  }

  function startPointer(e, id) {
    var port = e.target.getAttribute && e.target.getAttribute("data-port");
    if (port && data.editable) {
      e.preventDefault();
      connecting = { from: id, field: port };
      status(T.connect_hint);
      return;
    }
    if (connecting) {
      finishConnect(id);
      return;
    }
    var at = svgPoint(e);
    drag = { id: id, dx: at.x - def.layout[id].x, dy: at.y - def.layout[id].y, moved: false };
  }

  function finishConnect(target) {
    var c = connecting;
    connecting = null;
    status("");
    if (!c || target === TRIGGER || target === c.from) return;
    if (c.from === TRIGGER) def.start = target; else connect(step(c.from), c.field, target);
    changed(false);
  }

  document.addEventListener("pointermove", function (e) {
    if (!drag || !data.editable) return;
    var at = svgPoint(e);
    var x = Math.max(0, Math.round(at.x - drag.dx)), y = Math.max(0, Math.round(at.y - drag.dy));
    if (Math.abs(x - def.layout[drag.id].x) + Math.abs(y - def.layout[drag.id].y) < 3 && !drag.moved) return;
    drag.moved = true;
    def.layout[drag.id] = { x: x, y: y };
    render();
  });

  document.addEventListener("pointerup", function (e) {
    if (connecting) {
      var hit = document.elementFromPoint(e.clientX, e.clientY);
      var g = hit && hit.closest ? hit.closest("[data-node]") : null;
      if (g && g.getAttribute("data-node") !== connecting.from) finishConnect(g.getAttribute("data-node"));
      return;
    }
    if (!drag) return;
    var d = drag;
    drag = null;
    if (d.moved) changed(false); else select(d.id);
  });

  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && connecting) { connecting = null; status(""); }
  });

  // --- the side panel ---------------------------------------------------------------------------------------

  function select(id) {
    selected = id;
    render();
    fillPanel();
  }

  function field(labelText, control, testid) {
    var label = document.createElement("label");
    var span = document.createElement("span");
    span.textContent = labelText;
    label.appendChild(span);
    label.appendChild(control);
    if (testid) control.setAttribute("data-testid", testid);
    control.disabled = !data.editable;
    panel.appendChild(label);
    return control;
  }

  function input(value, type) {
    var i = document.createElement("input");
    i.type = type || "text";
    i.value = value === undefined || value === null ? "" : value;
    return i;
  }

  function choice(options, value) {
    var s = document.createElement("select");
    options.forEach(function (o) {
      var opt = document.createElement("option");
      opt.value = o[0];
      opt.textContent = o[1];
      s.appendChild(opt);
    });
    s.value = value === undefined || value === null ? "" : String(value);
    return s;
  }

  function area(value) {
    var a = document.createElement("textarea");
    a.rows = 4;
    a.value = value;
    return a;
  }

  function onChange(control, apply) {
    control.addEventListener("change", function () { apply(control); changed(false); });
  }

  function targets(exclude) {
    return [["", T.ends_here]].concat(def.steps.filter(function (s) { return s.id !== exclude; })
      .map(function (s) { return [s.id, (T["type_" + s.type] || s.type) + ": " + (s.label || s.id)]; }));
  }

  function heading(value) {
    var h = document.createElement("h2");
    h.textContent = value;
    panel.appendChild(h);
  }

  function fillPanel() {
    panel.textContent = "";
    if (selected === TRIGGER || !step(selected)) {
      selected = TRIGGER;
      triggerPanel();
    } else {
      stepPanel(step(selected));
    }
    var mine = problems.filter(function (p) { return p.step === selected || (selected === TRIGGER && !p.step); });
    mine.forEach(function (p) {
      var note = document.createElement("p");
      note.className = "alert alert-error step-problem";
      note.setAttribute("data-testid", "step-problem");
      note.textContent = p.message;
      panel.appendChild(note);
    });
  }

  function triggerPanel() {
    heading(T.settings + ": " + T.trigger);
    onChange(field(T.journey_name, input(def.name), "field-name"), function (c) { def.name = c.value.trim(); });
    onChange(field(T.description, input(def.description), "field-description"), function (c) { def.description = c.value; });
    var tr = def.trigger;
    var types = ["manual", "event", "segment_entered", "segment_exited", "date", "dormancy"];
    onChange(field(T.trigger, choice(types.map(function (k) { return [k, T["trigger_" + k]]; }), tr.type), "field-trigger-type"),
      function (c) { def.trigger = { type: c.value }; fillPanel(); });
    if (tr.type === "event") {
      onChange(field(T.event, input(tr.event), "field-event"), function (c) { tr.event = c.value.trim(); });
      jsonField(T.properties + " (" + T.properties_help + ")", tr.properties || {}, function (v) {
        if (v && Object.keys(v).length) tr.properties = v; else delete tr.properties;
      }, "field-properties");
      var back = input("", "checkbox");
      back.checked = !!tr.include_backfill;
      onChange(field(T.include_backfill, back, "field-backfill"), function (c) { tr.include_backfill = c.checked; });
    } else if (tr.type === "segment_entered" || tr.type === "segment_exited") {
      var segs = [["", T.none]].concat(data.choices.segments.map(function (s) { return [String(s.id), s.name]; }));
      onChange(field(T.segment, choice(segs, tr.segment), "field-segment"), function (c) { tr.segment = Number(c.value) || 0; });
      var initial = input("", "checkbox");
      initial.checked = !!tr.include_initial;
      onChange(field(T.include_initial, initial, "field-initial"), function (c) { tr.include_initial = c.checked; });
    } else if (tr.type === "date") {
      onChange(field(T.attribute, input(tr.attribute || "birth_date"), "field-attribute"), function (c) { tr.attribute = c.value.trim(); });
      tr.attribute = tr.attribute || "birth_date";
      onChange(field(T.offset_days, input(tr.offset_days || 0, "number"), "field-offset"), function (c) { tr.offset_days = Number(c.value) || 0; });
      onChange(field(T.at, input(tr.at || "09:00", "time"), "field-at"), function (c) { tr.at = c.value; });
    } else if (tr.type === "dormancy") {
      tr.days = tr.days || 90;
      onChange(field(T.dormant_days, input(tr.days, "number"), "field-days"), function (c) { tr.days = Number(c.value) || 1; });
    }
    onChange(field(T.reentry, choice([["never", T.reentry_never], ["after_exit", T.reentry_after_exit]], def.reentry || "never"), "field-reentry"),
      function (c) { def.reentry = c.value; });
    onChange(field(T.reentry_after_days, input(def.reentry_after_days || 0, "number"), "field-reentry-days"),
      function (c) { def.reentry_after_days = Number(c.value) || 0; });
    var goal = def.goal || {};
    onChange(field(T.goal_event, input(goal.event || ""), "field-goal"), function (c) {
      if (c.value.trim()) def.goal = { event: c.value.trim(), within_days: (def.goal && def.goal.within_days) || 30 };
      else delete def.goal;
    });
    onChange(field(T.goal_days, input(goal.within_days || 30, "number"), "field-goal-days"), function (c) {
      if (def.goal) def.goal.within_days = Number(c.value) || 30;
    });
    onChange(field(T.start, choice(targets(null).slice(1), def.start), "field-start"), function (c) { def.start = c.value; });
  }

  function jsonField(labelText, value, apply, testid) {
    var a = field(labelText, area(JSON.stringify(value, null, 1)), testid);
    a.addEventListener("change", function () {
      try {
        apply(JSON.parse(a.value || "{}"));
        a.setCustomValidity("");
        changed(false);
      } catch (err) {
        a.setCustomValidity(String(err.message));
        a.reportValidity();
      }
    });
  }

  function stepPanel(s) {
    heading(T.settings + ": " + (T["type_" + s.type] || s.type));
    var idBox = field(T.id, input(s.id), "field-id");
    idBox.addEventListener("change", function () {
      if (renameStep(s, idBox.value.trim())) changed(false); else idBox.value = s.id;
    });
    onChange(field(T.label, input(s.label || ""), "field-label"), function (c) {
      if (c.value.trim()) s.label = c.value.trim(); else delete s.label;
    });
    if (s.type === "wait") waitFields(s);
    if (s.type === "branch") {
      jsonField(T.condition + " (" + T.condition_help + ")", s.condition, function (v) { s.condition = v; }, "field-condition");
    }
    if (s.type === "split") splitFields(s);
    if (s.type === "send") sendFields(s);
    if (s.type === "tag") {
      onChange(field(T.tags_add + " (" + T.tags_help + ")", input((s.add || []).join(", ")), "field-add"), function (c) { s.add = list(c.value); });
      onChange(field(T.tags_remove, input((s.remove || []).join(", ")), "field-remove"), function (c) { s.remove = list(c.value); });
    }
    if (s.type === "attribute") {
      jsonField(T.attributes + " (" + T.attributes_help + ")", s.set || {}, function (v) { s.set = v; }, "field-set");
    }
    ports(s).forEach(function (p) {
      if (s.type === "split") return;
      onChange(field(p.field === "next" ? T.next : p.label, choice(targets(s.id), p.target), "field-" + p.field), function (c) {
        connect(s, p.field, c.value);
      });
    });
    if (!data.editable) return;
    var row = document.createElement("div");
    row.className = "panel-actions";
    if (def.start !== s.id) row.appendChild(button(T.make_start, "make-start", function () { def.start = s.id; changed(true); }));
    row.appendChild(button(T.delete_step, "delete-step", function () { removeStep(s.id); }, "danger"));
    panel.appendChild(row);
  }

  function button(label, testid, onClick, cls) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.className = "small " + (cls || "");
    b.setAttribute("data-testid", testid);
    b.addEventListener("click", onClick);
    return b;
  }

  function list(value) {
    return value.split(/[,、，\n]/).map(function (v) { return v.trim(); }).filter(Boolean);
  }

  function waitFields(s) {
    var mode = s.until ? "until" : "for";
    onChange(field(T.wait_mode, choice([["for", T.wait_for], ["until", T.wait_until]], mode), "field-wait-mode"), function (c) {
      if (c.value === "until") { delete s.duration; s.until = "09:00"; } else { delete s.until; s.duration = "P1D"; }
      fillPanel();
    });
    if (mode === "until") {
      onChange(field(T.until, input(s.until, "time"), "field-until"), function (c) { s.until = c.value; });
      return;
    }
    var parts = parseDuration(s.duration);
    ["days", "hours", "minutes"].forEach(function (name) {
      var box = field(T[name], input(parts[name], "number"), "field-" + name);
      box.min = "0";
      onChange(box, function () {
        var read = function (n) { return Math.max(0, Number(panel.querySelector("[data-testid=field-" + n + "]").value) || 0); };
        s.duration = { days: read("days"), hours: read("hours"), minutes: read("minutes") };
      });
    });
  }

  function parseDuration(d) {
    if (d && typeof d === "object") return { days: d.days || 0, hours: d.hours || 0, minutes: d.minutes || 0 };
    var m = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$/.exec(d || "") || [];
    return { days: (Number(m[1]) || 0) * 7 + (Number(m[2]) || 0), hours: Number(m[3]) || 0, minutes: Number(m[4]) || 0 };
  }

  function splitFields(s) {
    onChange(field(T.holdout, input(s.holdout || 0, "number"), "field-holdout"), function (c) { s.holdout = Number(c.value) || 0; });
    (s.variants || []).forEach(function (v, i) {
      var box = document.createElement("fieldset");
      var legend = document.createElement("legend");
      legend.textContent = T.variant + " " + (i + 1);
      box.appendChild(legend);
      panel.appendChild(box);
      onChange(field(T.name, input(v.name), "field-variant-name-" + i), function (c) { v.name = c.value.trim(); });
      onChange(field(T.weight, input(v.weight, "number"), "field-variant-weight-" + i), function (c) { v.weight = Number(c.value) || 1; });
      onChange(field(T.next, choice(targets(s.id), v.next), "field-variants." + i), function (c) { connect(s, "variants." + i, c.value); });
      if (data.editable && s.variants.length > 1) {
        panel.appendChild(button(T.remove, "remove-variant-" + i, function () { s.variants.splice(i, 1); changed(true); }));
      }
    });
    if (data.editable) {
      panel.appendChild(button(T.add_variant, "add-variant", function () {
        s.variants.push({ name: String.fromCharCode(65 + s.variants.length), weight: 50 });
        changed(true);
      }));
    }
  }

  function sendFields(s) {
    onChange(field(T.channel, choice([["email", "Email"], ["line", "LINE"], ["webhook", "Webhook"]], s.channel || "email"), "field-channel"),
      function (c) { s.channel = c.value; fillPanel(); });
    var names = data.choices.templates.filter(function (t) { return t.channel === (s.channel || "email"); })
      .map(function (t) { return [t.name, t.name]; });
    if (s.template && !names.some(function (n) { return n[0] === s.template; })) names.unshift([s.template, s.template]);
    if (!names.length) names = [["", T.no_template]];
    onChange(field(T.template, choice(names, s.template), "field-template"), function (c) { s.template = c.value; });
    onChange(field(T.kind, choice([["marketing", T.marketing], ["service", T.service]], s.kind || "marketing"), "field-kind"),
      function (c) { s.kind = c.value; });
  }

  // --- saving, validating, publishing -----------------------------------------------------------------------

  function changed(redrawPanel) {
    if (jsonBox) jsonBox.value = JSON.stringify(def, null, 2);
    render();
    if (redrawPanel) fillPanel();
  }

  function status(message, kind) {
    statusBox.textContent = message;
    statusBox.className = "journey-status" + (kind ? " " + kind : "");
  }

  function showProblems(found) {
    problems = found || [];
    problemBox.textContent = "";
    if (problems.length) {
      var title = document.createElement("p");
      title.textContent = T.problems;
      problemBox.appendChild(title);
      var ul = document.createElement("ul");
      problems.forEach(function (p) {
        var li = document.createElement("li");
        var b = document.createElement("button");
        b.type = "button";
        b.className = "linklike";
        b.textContent = (p.step ? p.step + ": " : "") + p.message;
        b.addEventListener("click", function () { select(p.step && step(p.step) ? p.step : TRIGGER); });
        li.appendChild(b);
        ul.appendChild(li);
      });
      problemBox.appendChild(ul);
    }
    problemBox.hidden = !problems.length;
    render();
    fillPanel();
  }

  function post(url) {
    var body = new URLSearchParams();
    body.set("csrf_token", csrf);
    body.set("definition", JSON.stringify(def));
    return fetch(url, { method: "POST", body: body, headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json().catch(function () { return { ok: false, problems: [{ message: T.save_failed }] }; }); });
  }

  function action(name, url, done) {
    var b = root.querySelector("[data-action=" + name + "]");
    if (!b) return;
    b.addEventListener("click", function () {
      b.disabled = true;
      post(url).then(function (answer) {
        b.disabled = false;
        showProblems(answer.problems);
        if (answer.ok) done(answer); else status(T.save_failed, "error");
      }, function () { b.disabled = false; status(T.save_failed, "error"); });
    });
  }

  action("save", data.urls.save, function () { status(T.saved, "ok"); });
  action("validate", data.urls.validate, function () { status(T.valid, "ok"); });
  action("publish", data.urls.publish, function () { status(T.published, "ok"); window.location.reload(); });
  var tidyButton = root.querySelector("[data-action=tidy]");
  if (tidyButton) tidyButton.addEventListener("click", tidy);
  root.querySelectorAll("[data-add]").forEach(function (b) {
    b.addEventListener("click", function () { addStep(b.getAttribute("data-add")); });
  });

  // --- live counts ------------------------------------------------------------------------------------------

  function refreshCounts() {
    if (document.hidden || drag || connecting) return;
    fetch(data.urls.counts, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (answer) {
        if (!answer) return;
        counts = answer.counts;
        Object.keys(counts).forEach(function (id) {
          var c = counts[id];
          var line = canvas.querySelector("[data-testid='counts-" + id + "']");
          if (line) line.textContent = short(countLine(id), 42);
          var sent = canvas.querySelector("[data-testid='sent-" + id + "']");
          if (sent) sent.textContent = sentLine(id);
          document.querySelectorAll("[data-step-row='" + id + "'] [data-count]").forEach(function (cell) {
            var k = cell.getAttribute("data-count");
            var v = k === "sent" ? (c.messages ? c.messages.sent : "") : c[k];
            cell.textContent = v === "" ? "" : Number(v).toLocaleString();
          });
        });
      }, function () {});
  }

  render();
  fillPanel();
  setInterval(refreshCounts, 4000);
})();
