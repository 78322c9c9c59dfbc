/* Kizuna website chat widget. One tag on the site, no build step:
 *   <script src="https://crm.example/js/kizuna-chat.js" data-lang="ja" defer></script>
 * Attributes: data-kizuna (Kizuna's base URL; default: where this script came from), data-lang (ja | en),
 * data-title (the panel's heading), data-poll (seconds between checks for an agent's reply; default 3).
 * The site's origin must be allowed in Kizuna (Chats > Sites). The chat's id and secret are kept in the
 * tab's sessionStorage, so a reload continues the conversation. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__kizunaChat) return;
  window.__kizunaChat = true;
  var base = (script.getAttribute("data-kizuna") || new URL(script.src).origin).replace(/\/+$/, "");
  var lang = script.getAttribute("data-lang") === "en" ? "en" : "ja";
  var pollSeconds = Math.max(1, parseFloat(script.getAttribute("data-poll") || "3"));
  var T = {
    ja: { open: "チャットで質問", title: "お問い合わせチャット", close: "閉じる", label: "メッセージ",
          send: "送信", person: "担当者と話す", you: "あなた", bot: "ボット", agent: "担当者",
          sources: "参考記事", sending: "送信中…", failed: "送信できませんでした: ",
          email: "返信先メールアドレス（任意）", save: "登録", saved: "メールアドレスを登録しました。" },
    en: { open: "Chat with us", title: "Chat", close: "Close", label: "Message",
          send: "Send", person: "Talk to a person", you: "You", bot: "Bot", agent: "Agent",
          sources: "Articles", sending: "Sending…", failed: "Could not send: ",
          email: "Your e-mail for our reply (optional)", save: "Save", saved: "Thank you, we will reply there too." }
  }[lang];
  var title = script.getAttribute("data-title") || T.title;
  var KEY = "kizuna-chat:" + base;
  var state = JSON.parse(sessionStorage.getItem(KEY) || "null");
  var lastId = 0, timer = null, seen = {}, starting = false;

  var css = ".kz-chat-launch{position:fixed;right:16px;bottom:16px;z-index:2147483000;padding:12px 16px;border-radius:24px;border:0;background:#1f4e79;color:#fff;font:600 15px system-ui,sans-serif;cursor:pointer}" +
    ".kz-chat-panel{position:fixed;right:16px;bottom:72px;z-index:2147483000;width:min(360px,calc(100vw - 32px));max-height:min(560px,calc(100vh - 96px));display:flex;flex-direction:column;background:#fff;color:#1a1a1a;border:1px solid #8a8a8a;border-radius:8px;box-shadow:0 4px 24px rgba(0,0,0,.2);font:15px/1.5 system-ui,sans-serif}" +
    ".kz-chat-panel[hidden],.kz-chat-panel [hidden]{display:none!important}.kz-chat-head{display:flex;justify-content:space-between;align-items:center;padding:8px 12px;border-bottom:1px solid #ddd}" +
    ".kz-chat-head h2{font-size:16px;margin:0}.kz-chat-log{list-style:none;margin:0;padding:8px 12px;overflow-y:auto;flex:1}" +
    ".kz-chat-log li{margin:6px 0;padding:6px 8px;border-radius:6px;background:#f1f3f5}.kz-chat-log li.kz-customer{background:#e3effa;margin-left:24px}" +
    ".kz-chat-log li.kz-agent{background:#fff4d6}.kz-who{font-size:12px;font-weight:600;display:block}.kz-chat-log a{color:#0b5394}" +
    ".kz-chat-form{display:flex;gap:6px;padding:8px 12px;border-top:1px solid #ddd}.kz-chat-form textarea{flex:1;min-height:40px;font:inherit;padding:6px}" +
    ".kz-chat-btn{border:1px solid #1f4e79;background:#1f4e79;color:#fff;border-radius:4px;padding:6px 10px;font:inherit;cursor:pointer}" +
    ".kz-chat-alt{background:#fff;color:#1f4e79}.kz-chat-err{color:#a4000f;padding:0 12px;font-size:13px}" +
    ".kz-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}";
  var style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text) node.textContent = text;
    return node;
  }
  var launch = el("button", { type: "button", "class": "kz-chat-launch", "aria-expanded": "false",
                              "aria-controls": "kz-chat-panel", "data-testid": "kz-chat-open" }, T.open);
  var panel = el("section", { id: "kz-chat-panel", "class": "kz-chat-panel", role: "dialog",
                              "aria-labelledby": "kz-chat-title", lang: lang, hidden: "" });
  var head = el("div", { "class": "kz-chat-head" });
  head.appendChild(el("h2", { id: "kz-chat-title" }, title));
  var closer = el("button", { type: "button", "class": "kz-chat-btn kz-chat-alt" }, T.close);
  head.appendChild(closer);
  var log = el("ol", { "class": "kz-chat-log", "aria-live": "polite", "aria-label": title, "data-testid": "kz-chat-log" });
  var error = el("p", { "class": "kz-chat-err", role: "alert", "data-testid": "kz-chat-error" });
  var form = el("form", { "class": "kz-chat-form" });
  var label = el("label", { "for": "kz-chat-input", "class": "kz-sr" }, T.label);
  var input = el("textarea", { id: "kz-chat-input", rows: "2", maxlength: "4000", "data-testid": "kz-chat-input" });
  var send = el("button", { type: "submit", "class": "kz-chat-btn", "data-testid": "kz-chat-send" }, T.send);
  form.appendChild(label); form.appendChild(input); form.appendChild(send);
  var person = el("button", { type: "button", "class": "kz-chat-btn kz-chat-alt", "data-testid": "kz-chat-person",
                              style: "margin:0 12px 8px" }, T.person);
  // Once a person is asked for, the visitor may leave an e-mail address so the team can answer there too.
  var contact = el("form", { "class": "kz-chat-form", hidden: "", "data-testid": "kz-chat-contact" });
  var emailLabel = el("label", { "for": "kz-chat-email" }, T.email);
  var email = el("input", { id: "kz-chat-email", type: "email", autocomplete: "email", "data-testid": "kz-chat-email" });
  var save = el("button", { type: "submit", "class": "kz-chat-btn" }, T.save);
  var emailBox = el("div", { style: "flex:1;display:flex;flex-direction:column" });
  emailBox.appendChild(emailLabel); emailBox.appendChild(email);
  contact.appendChild(emailBox); contact.appendChild(save);
  panel.appendChild(head); panel.appendChild(log); panel.appendChild(error); panel.appendChild(form);
  panel.appendChild(contact); panel.appendChild(person);
  document.body.appendChild(launch);
  document.body.appendChild(panel);

  function call(method, path, body) {
    var headers = { "Content-Type": "application/json" };
    if (state) headers["X-Chat-Secret"] = state.secret;
    return fetch(base + "/chat/v1" + path, { method: method, headers: headers,
                 body: body ? JSON.stringify(body) : undefined, credentials: "omit" })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (!r.ok) throw new Error((data.error && data.error.message) || ("HTTP " + r.status));
          return data;
        });
      });
  }

  function show(messages) {
    messages.forEach(function (m) {
      if (seen[m.id]) return;
      seen[m.id] = true;
      lastId = Math.max(lastId, m.id);
      var item = el("li", { "class": "kz-" + m.author, "data-author": m.author });
      item.appendChild(el("span", { "class": "kz-who" }, m.author === "customer" ? T.you : T[m.author]));
      item.appendChild(el("span", {}, m.text));
      if (m.sources && m.sources.length) {
        var list = el("ul", { "aria-label": T.sources, "data-testid": "kz-chat-sources" });
        m.sources.forEach(function (s) {
          var li = el("li");
          var a = el("a", { href: s.url, target: "_blank", rel: "noopener" }, s.title);
          li.appendChild(a);
          if (s.snippet) li.appendChild(el("div", { "class": "kz-snippet" }, s.snippet));
          list.appendChild(li);
        });
        item.appendChild(list);
      }
      log.appendChild(item);
    });
    log.scrollTop = log.scrollHeight;
  }

  function status(value) {
    var withPerson = value === "waiting_agent" || value === "live";
    person.hidden = value !== "bot";
    if (withPerson && !state.contactGiven) contact.hidden = false;
  }

  function poll() {
    if (!state) {
      // The chat could not start (the network, a busy server): try again on each tick rather than leave the
      // visitor with an error until they reopen the panel.
      if (!starting) begin();
      return;
    }
    call("GET", "/sessions/" + state.id + "/messages?after=" + lastId).then(function (data) {
      show(data.messages);
      status(data.status);
    }).catch(function () { /* a missed poll is retried on the next tick */ });
  }

  function start() {
    if (state) {
      return call("GET", "/sessions/" + state.id + "/messages").then(function (data) {
        show(data.messages); status(data.status);
      })
        .catch(function () { state = null; sessionStorage.removeItem(KEY); return start(); });
    }
    return call("POST", "/sessions", { language: lang }).then(function (data) {
      state = { id: data.id, secret: data.secret };
      sessionStorage.setItem(KEY, JSON.stringify(state));
      show(data.messages);
    });
  }

  function begin() {
    starting = true;
    return start().then(function () { error.textContent = ""; input.focus(); })
      .catch(function (e) { error.textContent = T.failed + e.message; })
      .then(function () { starting = false; });
  }

  function toggle(open) {
    panel.hidden = !open;
    launch.setAttribute("aria-expanded", String(open));
    if (open) {
      begin();
      if (!timer) timer = setInterval(poll, pollSeconds * 1000);
    } else {
      clearInterval(timer); timer = null; launch.focus();
    }
  }
  launch.addEventListener("click", function () { toggle(panel.hidden); });
  closer.addEventListener("click", function () { toggle(false); });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") toggle(false); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text || !state) return;
    error.textContent = "";
    send.disabled = true;
    call("POST", "/sessions/" + state.id + "/messages", { text: text }).then(function (data) {
      input.value = "";
      show(data.messages);
      status(data.status);
    }).catch(function (err) { error.textContent = T.failed + err.message; })
      .then(function () { send.disabled = false; input.focus(); });
  });
  contact.addEventListener("submit", function (e) {
    e.preventDefault();
    if (!state || !email.value.trim()) return;
    error.textContent = "";
    call("POST", "/sessions/" + state.id + "/contact", { email: email.value.trim() }).then(function () {
      state.contactGiven = true;
      sessionStorage.setItem(KEY, JSON.stringify(state));
      contact.hidden = true;
      error.textContent = T.saved;
    }).catch(function (err) { error.textContent = T.failed + err.message; });
  });
  person.addEventListener("click", function () {
    if (!state) return;
    call("POST", "/sessions/" + state.id + "/handover", {}).then(function (data) {
      show(data.messages); status(data.status);
    })
      .catch(function (err) { error.textContent = T.failed + err.message; });
  });
})();
