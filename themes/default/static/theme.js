/* Light/dark toggle. The default follows prefers-color-scheme; a click stores an explicit
   choice in localStorage ("theme") and sets data-theme on <html>. An inline snippet in <head>
   applies the stored choice before the first paint, so there is no flash. */
(function () {
  "use strict";
  var root = document.documentElement;
  var button = document.getElementById("theme-toggle");
  if (!button) return;
  var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function current() {
    var chosen = root.getAttribute("data-theme");
    if (chosen === "light" || chosen === "dark") return chosen;
    return media && media.matches ? "dark" : "light";
  }
  function sync() {
    button.setAttribute("aria-pressed", current() === "dark" ? "true" : "false");
  }

  button.addEventListener("click", function () {
    var next = current() === "dark" ? "light" : "dark";
    root.setAttribute("data-theme", next);
    try { localStorage.setItem("theme", next); } catch (e) { /* private mode: this page only */ }
    sync();
  });
  if (media && media.addEventListener) media.addEventListener("change", sync);
  button.hidden = false;
  sync();
})();
