/* tresen web chat widget: <script src="https://tresen.example/widget.js" data-channel="ID" defer></script>
   No dependencies, no third-party requests, DOM in a closed shadow root, text only via textContent. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.fetch || !document.body.attachShadow) return;
  var channel = script.getAttribute("data-channel") || "";
  var api = new URL(script.src).origin + "/chat/" + encodeURIComponent(channel);
  var KEY = "tresen-webchat:" + channel;
  // German or English: the browser's until the session names the business's language.
  var L = { de: {
    open: "Chat öffnen", close: "Chat schließen", log: "Nachrichten", input: "Ihre Nachricht",
    send: "Senden", file: "Datei anhängen", typing: "Wir schreiben gerade …", ok: "Verstanden",
    offline: "Nachricht per E-Mail hinterlassen", name: "Name", email: "E-Mail",
    message: "Nachricht", submit: "Absenden", back: "Zurück zum Chat", you: "Sie", agent: "Team",
    thanks: "Danke! Wir antworten per E-Mail.", big: "Die Datei ist zu groß (höchstens ",
    type: "Dieser Dateityp wird nicht angenommen.", fail: "Senden fehlgeschlagen. Bitte erneut versuchen."
  }, en: {
    open: "Open chat", close: "Close chat", log: "Messages", input: "Your message",
    send: "Send", file: "Attach a file", typing: "We are typing …", ok: "Got it",
    offline: "Leave a message by e-mail", name: "Name", email: "E-mail",
    message: "Message", submit: "Send", back: "Back to chat", you: "You", agent: "Team",
    thanks: "Thank you! We will answer by e-mail.", big: "The file is too large (at most ",
    type: "This file type is not accepted.", fail: "Sending failed. Please try again."
  } };
  var T = L[/^de\b/i.test(navigator.language || "") ? "de" : "en"];
  var labels = [];
  function tr(node, key, attr) { labels.push([node, key, attr]); put(node, key, attr); return node; }
  function put(node, key, attr) { if (attr) node.setAttribute(attr, T[key]); else node.textContent = T[key]; }
  var COLOUR = "#1d4ed8";
  function css(c) { return CSS.split(COLOUR).join(c); }
  var CSS = ":host{all:initial}*{box-sizing:border-box;font:14px/1.4 system-ui,sans-serif}" +
    ".l,.p{position:fixed;right:16px;bottom:16px;z-index:2147483000}" +
    ".l{border:0;border-radius:24px;padding:12px 18px;background:#1d4ed8;color:#fff;cursor:pointer}" +
    ".p{width:min(360px,calc(100vw - 32px));height:min(520px,calc(100vh - 32px));display:flex;" +
    "flex-direction:column;background:#fff;color:#111;border:1px solid #999;border-radius:8px;" +
    "box-shadow:0 4px 24px rgba(0,0,0,.2)}[hidden]{display:none!important}" +
    "header{display:flex;align-items:center;padding:8px 12px;background:#1d4ed8;color:#fff;" +
    "border-radius:8px 8px 0 0}h2{flex:1;margin:0;font-weight:600}header button{background:none;" +
    "border:0;color:#fff;font-size:20px;cursor:pointer}.n{margin:8px 12px;color:#444}" +
    ".v{margin:8px 12px;padding:8px;background:#f1f5f9;border-radius:6px}.v p{margin:0 0 6px}" +
    ".v a{display:inline-block;margin:0 0 8px;color:#1d4ed8}" +
    ".g{flex:1;overflow-y:auto;padding:8px 12px}.m{margin:6px 0;padding:6px 10px;border-radius:8px;" +
    "max-width:85%;white-space:pre-wrap;overflow-wrap:anywhere}.me{margin-left:auto;background:#dbeafe}" +
    ".ag{background:#eee}.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}" +
    ".t{margin:0 12px;color:#555;font-style:italic}.e{margin:4px 12px;color:#b91c1c}" +
    "form{display:flex;gap:6px;padding:8px 12px;border-top:1px solid #ddd;flex-wrap:wrap}" +
    "textarea,input{flex:1;min-width:0;padding:6px;border:1px solid #888;border-radius:4px}" +
    "textarea{resize:none;height:40px}.o{flex-direction:column}.o textarea{height:80px}" +
    "button{padding:6px 10px;border:1px solid #1d4ed8;border-radius:4px;background:#1d4ed8;" +
    "color:#fff;cursor:pointer}.k{background:#fff;color:#1d4ed8}input.f{flex:0 1 100%;border:0;padding:0}" +
    ":focus-visible{outline:3px solid #f59e0b;outline-offset:2px}";

  var token = null, cfg = null, seen = {}, abort = null, retry = 1000, uid = 0;
  function store(k, v) { try { if (v === undefined) return localStorage.getItem(KEY + k); localStorage.setItem(KEY + k, v); } catch (e) { return null; } }
  function el(tag, attrs, text, parent) {
    var n = document.createElement(tag);
    for (var a in attrs || {}) n.setAttribute(a, attrs[a]);
    if (text) n.textContent = text;
    if (parent) parent.appendChild(n);
    return n;
  }
  function id() { uid += 1; return "tw" + uid; }
  function rnd() {
    var b = new Uint8Array(16); crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  var host = el("div", { "data-tresen-webchat": "" });
  document.body.appendChild(host);
  var root = host.attachShadow({ mode: "closed" });
  try {
    var sheet = new CSSStyleSheet(); sheet.replaceSync(CSS); root.adoptedStyleSheets = [sheet];
  } catch (e) { sheet = null; var styleEl = el("style", {}, CSS, root); }
  function paint(c) {
    if (!/^#[0-9a-f]{6}$/i.test(c || "")) return;
    if (sheet) sheet.replaceSync(css(c)); else styleEl.textContent = css(c);
  }
  var launcher = tr(el("button", { type: "button", "class": "l", "aria-expanded": "false" }, "", root), "open");
  var panel = el("div", { "class": "p", role: "dialog", id: id() }, "", root);
  panel.hidden = true;
  launcher.setAttribute("aria-controls", panel.id);
  var header = el("header", {}, "", panel);
  var title = el("h2", { id: id() }, "Chat", header);
  panel.setAttribute("aria-labelledby", title.id);
  var closer = tr(el("button", { type: "button" }, "×", header), "close", "aria-label");
  var hours = el("p", { "class": "n" }, "", panel);
  var notice = el("div", { "class": "v" }, "", panel);
  var log = tr(el("div", { "class": "g", role: "log", "aria-live": "polite", tabindex: "0" }, "", panel), "log", "aria-label");
  var typing = el("p", { "class": "t", "aria-live": "polite" }, "", panel);
  var err = el("p", { "class": "e", role: "alert" }, "", panel);
  var form = el("form", {}, "", panel);
  var inputId = id();
  tr(el("label", { "for": inputId, "class": "sr" }, "", form), "input");
  var input = el("textarea", { id: inputId, maxlength: "4000", rows: "1" }, "", form);
  var fileId = id();
  // The browser's own file control would speak the browser's language: a button of ours opens it.
  var file = el("input", { id: fileId, type: "file", "class": "f", hidden: "", tabindex: "-1", "aria-hidden": "true" }, "", form);
  var attach = tr(el("button", { type: "button", "class": "k" }, "", form), "file");
  attach.addEventListener("click", function () { file.click(); });
  tr(el("button", { type: "submit" }, "", form), "send");
  var offlineBtn = tr(el("button", { type: "button", "class": "k" }, "", panel), "offline");
  var off = el("form", { "class": "o" }, "", panel);
  off.hidden = true;
  var fields = {};
  [["name", "text"], ["email", "email"], ["message", ""]].forEach(function (f) {
    var fid = id();
    tr(el("label", { "for": fid }, "", off), f[0]);
    fields[f[0]] = el(f[1] ? "input" : "textarea", f[1] ? { id: fid, type: f[1], required: "" } : { id: fid, required: "" }, "", off);
  });
  tr(el("button", { type: "submit" }, "", off), "submit");
  var backBtn = tr(el("button", { type: "button", "class": "k" }, "", off), "back");

  function call(path, body, headers) {
    var h = headers || { "Content-Type": "application/json" };
    if (token) h["X-Tresen-Visitor"] = token;
    return fetch(api + path, { method: "POST", headers: h, body: body, credentials: "omit", mode: "cors" })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (!r.ok) throw new Error((j.error && j.error.message) || T.fail);
          return j;
        });
      });
  }
  function showError(msg) { err.textContent = msg || ""; }

  function session() {
    return call("/session", JSON.stringify({ token: store(":token") || null })).then(function (j) {
      token = j.token; cfg = j; store(":token", token);
      if (j.privacy_accepted === false) store(":privacy", "0");
      if (L[j.language]) { T = L[j.language]; labels.forEach(function (x) { put(x[0], x[1], x[2]); }); }
      paint(j.colour);
      title.textContent = j.title; launcher.textContent = j.title;
      launcher.setAttribute("aria-label", T.open + ": " + j.title);
      hours.textContent = j.opening_hours_note || ""; hours.hidden = !j.opening_hours_note;
      file.setAttribute("accept", (j.allowed_upload_types || []).join(","));
      attach.hidden = !j.max_upload_bytes;
      renderNotice();
    });
  }
  function accepted() { return !cfg || !cfg.privacy_notice || store(":privacy") === "1"; }
  function renderNotice() {
    notice.textContent = "";
    notice.hidden = accepted();
    input.disabled = !accepted(); attach.disabled = !accepted(); offlineBtn.disabled = !accepted();
    if (notice.hidden) return;
    el("p", {}, cfg.privacy_notice, notice);
    if (/^https?:\/\//.test(cfg.privacy_link || "")) {
      el("a", { href: cfg.privacy_link, target: "_blank", rel: "noopener noreferrer" }, cfg.privacy_link_text || cfg.privacy_link, notice);
      el("br", {}, "", notice);
    }
    var ok = el("button", { type: "button" }, cfg.privacy_accept || T.ok, notice);
    ok.addEventListener("click", function () { store(":privacy", "1"); renderNotice(); input.focus(); });
  }

  function add(m) {
    if (seen[m.id]) return;
    seen[m.id] = 1;
    var mine = m.from === "visitor";
    var row = el("div", { "class": "m " + (mine ? "me" : "ag") }, "", log);
    el("span", { "class": "sr" }, (mine ? T.you : T.agent) + ": ", row);
    var f = m.file;
    if (f && /^files\/[\w-]+\?[\w=&]+$/.test(f.url || "")) {
      el("a", { href: api + "/" + f.url, target: "_blank", rel: "noopener noreferrer" }, "📎 " + (f.name || T.file), row);
    } else if (f) el("span", {}, "📎 " + (f.name || ""), row);
    if (m.text) row.appendChild(document.createTextNode((f ? " " : "") + m.text));
    if (!mine) typing.textContent = "";
    log.scrollTop = log.scrollHeight;
  }
  function onEvent(name, data) {
    if (name === "message") add(data);
    else if (name === "typing") typing.textContent = data.typing ? T.typing : "";
  }
  function listen() {
    if (abort || !token) return;
    abort = new AbortController();
    fetch(api + "/events", { headers: { "X-Tresen-Visitor": token }, signal: abort.signal, credentials: "omit", mode: "cors" })
      .then(function (r) {
        if (!r.ok || !r.body) throw new Error(String(r.status));
        retry = 1000;
        var reader = r.body.getReader(), dec = new TextDecoder(), buf = "";
        function pump() {
          return reader.read().then(function (x) {
            if (x.done) throw new Error("closed");
            buf += dec.decode(x.value, { stream: true });
            var parts = buf.split("\n\n");
            buf = parts.pop();
            parts.forEach(function (chunk) {
              var ev = "message", data = "";
              chunk.split("\n").forEach(function (line) {
                if (line.indexOf("event: ") === 0) ev = line.slice(7);
                else if (line.indexOf("data: ") === 0) data += line.slice(6);
              });
              if (data) { try { onEvent(ev, JSON.parse(data)); } catch (e) { /* ignore a bad event */ } }
            });
            return pump();
          });
        }
        return pump();
      })
      .catch(function () {
        var stopped = abort && abort.signal.aborted;
        abort = null;
        if (!stopped) { setTimeout(listen, retry); retry = Math.min(retry * 2, 30000); }
      });
  }

  function open() {
    panel.hidden = false; launcher.hidden = true; launcher.setAttribute("aria-expanded", "true");
    store(":open", "1");
    (token ? Promise.resolve() : session()).then(function () {
      listen();
      (accepted() ? input : notice.querySelector("button") || input).focus();
    }).catch(function (e) { showError(e.message); });
  }
  function close() {
    panel.hidden = true; launcher.hidden = false; launcher.setAttribute("aria-expanded", "false");
    store(":open", "0");
    launcher.focus();
  }
  function send() {
    var text = input.value.trim();
    if (!text || !token || !accepted()) return;
    showError("");
    // Accepting the notice above is the visitor's consent; the server records it as such.
    var msg = { id: rnd(), text: text };
    if (cfg && cfg.privacy_notice) msg.consent = true;
    call("/messages", JSON.stringify(msg))
      .then(function () { input.value = ""; })
      .catch(function (e) { showError(e.message); });
  }

  launcher.addEventListener("click", open);
  closer.addEventListener("click", close);
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") close(); });
  form.addEventListener("submit", function (e) { e.preventDefault(); send(); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  file.addEventListener("change", function () {
    var f = file.files && file.files[0];
    file.value = "";
    if (!f || !cfg) return;
    showError("");
    if (cfg.allowed_upload_types.indexOf(f.type) < 0) return showError(T.type);
    if (f.size > cfg.max_upload_bytes) return showError(T.big + Math.floor(cfg.max_upload_bytes / 1024) + " KB).");
    call("/upload" + (cfg.privacy_notice ? "?consent=1" : ""), f, { "Content-Type": f.type, "X-File-Name": encodeURIComponent(f.name) })
      .catch(function (e) { showError(e.message); });
  });
  function showOffline(on) {
    off.hidden = !on; form.hidden = on; log.hidden = on; offlineBtn.hidden = on;
    (on ? fields.name : input).focus();
  }
  offlineBtn.addEventListener("click", function () { showOffline(true); });
  backBtn.addEventListener("click", function () { showOffline(false); });
  off.addEventListener("submit", function (e) {
    e.preventDefault();
    var entry = { name: fields.name.value, email: fields.email.value, message: fields.message.value };
    if (cfg && cfg.privacy_notice) entry.consent = true;
    call("/offline", JSON.stringify(entry))
      .then(function () { off.reset(); showOffline(false); showError(""); typing.textContent = T.thanks; })
      .catch(function (er) { showError(er.message); });
  });
  // A click-to-chat link (?tresen_text=START%20ticker) opens the chat with the text filled in;
  // the visitor still sends it themselves.
  var prefill = null;
  try { prefill = new URL(window.location.href).searchParams.get("tresen_text"); } catch (e) { prefill = null; }
  if (prefill) { input.value = prefill.slice(0, 200); open(); }
  else if (store(":open") === "1") open();
})();
