// evstore pages: the only script. Times in the browser's zone (UTC stays in the title),
// and a brief highlight of the mode when it changes, as the seed's pages do.
(function () {
  "use strict";
  document.querySelectorAll("time[datetime]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d.getTime())) {
      t.title = t.getAttribute("datetime") + " (UTC)";
      t.textContent = d.toLocaleString();
    }
  });
  var mode = document.body.getAttribute("data-mode");
  var label = document.getElementById("mode-label");
  if (mode && label) {
    var last = window.sessionStorage.getItem("evstore-mode");
    if (last && last !== mode) { label.classList.add("flash-mode"); }
    window.sessionStorage.setItem("evstore-mode", mode);
  }
})();
