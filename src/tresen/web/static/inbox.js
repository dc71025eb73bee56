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
  };
});
document.addEventListener("htmx:afterSwap", (event) => {
  const saved = drafts;
  drafts = null;
  if (!saved || !event.detail.target.querySelector(`section#${CSS.escape(saved.section)}`)) return;
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
