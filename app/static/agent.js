// The agent view follows the session live: while the status can change it asks status.json every
// two seconds and reloads the page when the status or the attempt count moves, so the server renders
// the new facts and the buttons that still apply. No card data is ever in what it reads.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;

  function start() {
    var view = document.getElementById("agent-view");
    if (!view || !view.dataset.statusUrl) {
      return;
    }
    var url = view.dataset.statusUrl;
    var status = view.dataset.status;
    var attempts = view.dataset.attempts;

    function check() {
      fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (state) {
          if (state && (state.status !== status || String(state.attempts) !== attempts)) {
            window.location.replace(window.location.href.replace(/([?&])notice=[^&]*&?/, "$1"));
            return;
          }
          if (!state || state.live) {
            window.setTimeout(check, INTERVAL_MS);
          }
        })
        .catch(function () { window.setTimeout(check, INTERVAL_MS); });
    }
    window.setTimeout(check, INTERVAL_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
