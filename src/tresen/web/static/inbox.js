// Small glue for the inbox: CSRF header on htmx requests, auto-submitting selects.
document.addEventListener("htmx:configRequest", (event) => {
  event.detail.headers["x-csrftoken"] = document.body.dataset.csrf || "";
});
document.addEventListener("change", (event) => {
  const el = event.target;
  if (el instanceof HTMLSelectElement && el.hasAttribute("data-autosubmit") && el.form) {
    el.form.requestSubmit();
  }
});
