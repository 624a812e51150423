// Tells the reader when the page has changed, without reloading it under their eyes (WCAG 2.2.1).
"use strict";
(function () {
  var region = document.querySelector(".refresh");
  if (!region || !window.fetch) return;
  var first = null;
  function check() {
    fetch(window.location.href, { method: "HEAD", cache: "no-cache", credentials: "same-origin" })
      .then(function (response) {
        var tag = response.headers.get("ETag");
        if (!tag) return;
        if (first === null) { first = tag; return; }
        if (tag !== first && !region.firstChild) {
          var link = document.createElement("a");
          link.href = window.location.href;
          link.textContent = region.getAttribute("data-label");
          region.appendChild(link);
        }
      })
      .catch(function () {});
  }
  check();
  window.setInterval(check, 60000);
})();
