/* Client-side search over /search.json: entries {t: title, u: url, e: excerpt, d: date, k: [terms]}.
   Every word of the query must match (case- and accent-insensitive); title hits rank first.
   The query lives in ?q= so results can be linked and survive a reload. Results are built as DOM
   nodes with textContent only: nothing from the index is ever parsed as HTML. */
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  var input = document.getElementById("search-input");
  var status = document.getElementById("search-status");
  var list = document.getElementById("search-results");
  if (!form || !input || !status || !list) return;

  var MAX = 50;
  var entries = null;
  var loading = null;
  var timer = 0;
  var lastShown = null;

  function fold(text) {
    return String(text == null ? "" : text)
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .replace(/ß/g, "ss")
      .toLowerCase();
  }

  function words(query) {
    return fold(query).split(/[\s,;:!?"'()[\]{}]+/).filter(Boolean);
  }

  function load() {
    if (!loading) {
      loading = fetch("/search.json", { credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          entries = (Array.isArray(data) ? data : []).map(function (entry) {
            var terms = Array.isArray(entry.k) ? entry.k.join(" ") : "";
            return {
              entry: entry,
              title: fold(entry.t),
              text: fold([entry.t, entry.e, terms, String(entry.u || "").replace(/[\/-]+/g, " ")].join(" "))
            };
          });
          return entries;
        });
      loading.catch(function () { loading = null; });
    }
    return loading;
  }

  function say(message) {
    status.textContent = message;
  }

  function clear() {
    while (list.firstChild) list.removeChild(list.firstChild);
  }

  function search(query) {
    var needles = words(query);
    if (!needles.length) return [];
    var hits = [];
    entries.forEach(function (item) {
      var score = 0;
      for (var i = 0; i < needles.length; i++) {
        if (item.text.indexOf(needles[i]) === -1) return;
        if (item.title.indexOf(needles[i]) !== -1) score += 2;
      }
      hits.push({ item: item, score: score });
    });
    hits.sort(function (a, b) {
      if (b.score !== a.score) return b.score - a.score;
      var da = a.item.entry.d || "", db = b.item.entry.d || "";
      return da < db ? 1 : da > db ? -1 : 0;
    });
    return hits.map(function (hit) { return hit.item.entry; });
  }

  function render(query, results) {
    clear();
    results.slice(0, MAX).forEach(function (entry) {
      var li = document.createElement("li");
      var link = document.createElement("a");
      link.href = entry.u;
      link.textContent = entry.t || entry.u;
      var heading = document.createElement("h2");
      heading.className = "search-title";
      heading.appendChild(link);
      li.appendChild(heading);
      if (entry.d) {
        var time = document.createElement("time");
        time.dateTime = entry.d;
        time.className = "meta";
        time.textContent = entry.d;
        li.appendChild(time);
      }
      if (entry.e) {
        var excerpt = document.createElement("p");
        excerpt.textContent = entry.e;
        li.appendChild(excerpt);
      }
      list.appendChild(li);
    });
    var n = results.length;
    if (!n) say("No results for “" + query + "”.");
    else if (n > MAX) say(n + " results for “" + query + "”; showing the first " + MAX + ".");
    else say(n + (n === 1 ? " result" : " results") + " for “" + query + "”.");
  }

  function writeUrl(query) {
    if (!window.history || !window.history.replaceState) return;
    var url = new URL(window.location.href);
    if (query) url.searchParams.set("q", query);
    else url.searchParams.delete("q");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }

  function run(query) {
    query = query.trim();
    writeUrl(query);
    if (query === lastShown) return;
    if (!query) {
      lastShown = query;
      clear();
      say("");
      return;
    }
    if (!entries) say("Loading the search index…");
    load().then(function () {
      if (input.value.trim() !== query) return; /* a newer query is on its way */
      lastShown = query;
      render(query, search(query));
    }, function () {
      say("The search index could not be loaded. Please try again later.");
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    window.clearTimeout(timer);
    lastShown = null;
    run(input.value);
  });
  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () { run(input.value); }, 200);
  });

  var initial = new URLSearchParams(window.location.search).get("q") || "";
  if (initial) {
    input.value = initial;
    run(initial);
  }
  input.addEventListener("focus", load, { once: true });
})();
