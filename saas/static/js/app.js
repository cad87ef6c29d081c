// Quanyi back office behaviour. No inline scripts anywhere: the CSP forbids them.
(function () {
  "use strict";

  // On a phone the navigation is folded; the menu button opens and closes it, Escape closes it.
  var menuButton = document.querySelector("[data-menu-button]");
  function setMenu(open) {
    document.body.classList.toggle("menu-open", open);
    menuButton.setAttribute("aria-expanded", open ? "true" : "false");
  }
  if (menuButton) {
    menuButton.addEventListener("click", function () {
      setMenu(!document.body.classList.contains("menu-open"));
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && document.body.classList.contains("menu-open")) {
        setMenu(false);
        menuButton.focus();
      }
    });
  }

  // Forms with data-confirm ask before submitting.
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });

  // Elements with data-reveal-url fetch a secret on click and show it in place.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-reveal-url]");
    if (!button) { return; }
    event.preventDefault();
    var token = document.querySelector("meta[name=csrf-token]");
    fetch(button.getAttribute("data-reveal-url"), {
      method: "POST", credentials: "same-origin",
      headers: token ? { "X-CSRFToken": token.content } : {}
    }).then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        var target = document.getElementById(button.getAttribute("data-reveal-target"));
        if (target) { target.textContent = res.ok ? res.body.value : res.body.message; }
      });
  });

  // Elements with data-copy-url fetch the secret (audited, like a reveal) and copy it (一键复制).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-url]");
    if (!button) { return; }
    event.preventDefault();
    var token = document.querySelector("meta[name=csrf-token]");
    fetch(button.getAttribute("data-copy-url"), {
      method: "POST", credentials: "same-origin",
      headers: token ? { "X-CSRFToken": token.content } : {}
    }).then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        var target = document.getElementById(button.getAttribute("data-copy-target"));
        if (!res.ok) { if (target) { target.textContent = res.body.message; } return; }
        if (target) { target.textContent = res.body.value; }
        var done = function () { button.textContent = button.getAttribute("data-copied") || button.textContent; };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(res.body.value).then(done, done);
        } else { done(); }
      });
  });

  // Job progress components poll their status URL until the job finishes.
  function poll(box) {
    fetch(box.getAttribute("data-poll-url"), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        box.querySelector("progress").value = s.progress;
        box.querySelector(".job-percent").textContent = s.progress + "%";
        box.querySelector(".job-state").textContent = s.status_label || s.status;
        box.querySelector(".job-message").textContent = s.error || s.message || "";
        box.setAttribute("data-status", s.status);
        if (!s.finished) { setTimeout(function () { poll(box); }, 1000); }
        else if (box.closest("[data-done-url]")) { window.location = box.closest("[data-done-url]").getAttribute("data-done-url"); }
      })
      .catch(function () { setTimeout(function () { poll(box); }, 3000); });
  }
  // Live figures (a channel's inbox): every [data-field] takes the value of the same name, every 3 s.
  function refresh(box) {
    if (document.hidden) { setTimeout(function () { refresh(box); }, 3000); return; }
    fetch(box.getAttribute("data-progress-url"), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (figures) {
        box.querySelectorAll("[data-field]").forEach(function (cell) {
          var value = figures[cell.getAttribute("data-field")];
          if (value !== undefined && value !== null) { cell.textContent = value; }
        });
        setTimeout(function () { refresh(box); }, 3000);
      })
      .catch(function () { setTimeout(function () { refresh(box); }, 10000); });
  }
  document.querySelectorAll("[data-progress-url]").forEach(function (box) {
    setTimeout(function () { refresh(box); }, 3000);
  });
  document.querySelectorAll(".job-progress[data-poll-url]").forEach(function (box) {
    var status = box.getAttribute("data-status");
    if (status !== "succeeded" && status !== "failed") { poll(box); }
  });
})();
