/* Apply a saved light/dark choice before the first paint (no flash). Loaded without defer from
   <head>, so it runs before the body is drawn; a file rather than inline code, so pages work under
   a Content Security Policy without 'unsafe-inline' (cms serve's preview sends one). theme.js wires
   the button. */
try {
  var t = localStorage.getItem("theme");
  if (t === "light" || t === "dark") document.documentElement.setAttribute("data-theme", t);
} catch (e) { /* storage disabled: follow the system preference */ }
