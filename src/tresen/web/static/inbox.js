// Small glue for the inbox: CSRF header on htmx requests, auto-submitting selects, typing hints.
document.addEventListener("htmx:configRequest", (event) => {
  event.detail.headers["x-csrftoken"] = document.body.dataset.csrf || "";
});
document.addEventListener("change", (event) => {
  const el = event.target;
  if (el instanceof HTMLSelectElement && el.hasAttribute("data-autosubmit") && el.form) {
    el.form.requestSubmit();
  }
});

// While an agent types a web chat reply, tell the customer (at most every 3 s; off after 5 s idle).
let typingSentAt = 0;
let typingTimer = 0;
function sendTyping(url, on) {
  const body = new URLSearchParams({ typing: on ? "1" : "0" });
  fetch(url, { method: "POST", body, headers: { "x-csrftoken": document.body.dataset.csrf || "" } })
    .catch(() => {});
}
document.addEventListener("input", (event) => {
  const url = event.target instanceof HTMLElement && event.target.dataset.typingUrl;
  if (!url) return;
  if (Date.now() - typingSentAt > 3000) {
    typingSentAt = Date.now();
    sendTyping(url, true);
  }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => { typingSentAt = 0; sendTyping(url, false); }, 5000);
});
document.addEventListener("submit", () => { clearTimeout(typingTimer); typingSentAt = 0; });

// A live refresh re-renders the open conversation; keep what the agent is typing (reply, note).
let drafts = null;
document.addEventListener("htmx:beforeSwap", (event) => {
  const section = event.detail.target.querySelector("section[id^='conv-']");
  if (!section) { drafts = null; return; }
  const fields = Array.from(section.querySelectorAll("textarea[id], input[type=text][id]"));
  drafts = {
    section: section.id,
    fields: fields.filter((el) => el.value).map((el) => ({
      id: el.id, value: el.value, start: el.selectionStart, end: el.selectionEnd,
      focused: el === document.activeElement,
    })),
    // Lists the agent opened (canned replies, templates) stay open.
    open: Array.from(section.querySelectorAll("details[open][class]")).map((el) => el.className),
  };
});
document.addEventListener("htmx:afterSwap", (event) => {
  const saved = drafts;
  drafts = null;
  if (!saved || !event.detail.target.querySelector(`section#${CSS.escape(saved.section)}`)) return;
  for (const name of saved.open) {
    const details = event.detail.target.querySelector(`details.${CSS.escape(name.split(" ")[0])}`);
    if (details) details.open = true;
  }
  for (const draft of saved.fields) {
    const el = document.getElementById(draft.id);
    if (!el || el.value || el.disabled) continue;
    el.value = draft.value;
    if (draft.focused) {
      el.focus();
      el.setSelectionRange(draft.start, draft.end);
    }
  }
});

// Danger actions ask first: a form with data-confirm is sent only after the person agrees.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);

// Copy buttons: <button data-copy="#id"> copies the text of that element.
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element && event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    button.dataset.copied = "1";
    button.textContent = button.dataset.copiedLabel || button.textContent;
  }).catch(() => {});
});

// Our own file pickers show the chosen file's name in the page's language.
document.addEventListener("change", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || input.type !== "file") return;
  const name = input.closest(".file-picker")?.querySelector(".file-name");
  if (name && input.files && input.files.length) name.textContent = input.files[0].name;
});

// A live update that arrives while the conversation is being re-rendered is queued by htmx on the
// section the response then replaces, and so dropped: fetch once more after such a swap.
let conversationLoading = false;
let conversationMissed = false;
const isConversation = (el) => el instanceof Element && el.matches("section[id^='conv-']");
document.addEventListener("htmx:beforeRequest", (event) => {
  if (!isConversation(event.detail.elt)) return;
  conversationLoading = true;
  conversationMissed = false;
});
document.addEventListener("htmx:afterRequest", (event) => {
  if (isConversation(event.detail.elt) && !event.detail.successful) conversationLoading = false;
});
document.addEventListener("htmx:sseMessage", (event) => {
  if (conversationLoading && isConversation(event.target)) conversationMissed = true;
});
document.addEventListener("htmx:afterSettle", (event) => {
  if (!(event.detail.target instanceof Element) || event.detail.target.id !== "conversation") return;
  conversationLoading = false;
  if (!conversationMissed) return;
  conversationMissed = false;
  const section = event.detail.target.querySelector("section[id^='conv-']");
  const url = section && section.getAttribute("hx-get");
  if (url) htmx.ajax("GET", url, { source: section, target: "#conversation", swap: "innerHTML" });
});
