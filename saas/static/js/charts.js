// Dashboard charts: draw every element with a data-chart plotly spec (figure JSON: data + layout).
// Loaded only on dashboard pages, after plotly.js; no inline script (the CSP forbids it).
(function () {
  "use strict";

  function draw(box) {
    var spec;
    try { spec = JSON.parse(box.getAttribute("data-chart")); } catch (e) { return; }
    if (!window.Plotly) { return; }
    window.Plotly.newPlot(box, spec.data || [], spec.layout || {}, {
      displaylogo: false, responsive: true,
      modeBarButtonsToRemove: ["select2d", "lasso2d"]
    });
  }

  function drawAll() {
    document.querySelectorAll("[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
