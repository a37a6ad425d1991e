/* GreenKPI dashboard: draws each chart panel from its JSON endpoint after the page has loaded,
   so a slow panel never holds the others back. No framework; Plotly is vendored (no CDN). */
"use strict";

(function () {
  const config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  async function draw(panel) {
    const target = panel.querySelector(".chart");
    try {
      const response = await fetch(panel.dataset.figureUrl, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error("the server answered " + response.status);
      const figure = await response.json();
      target.replaceChildren();
      await window.Plotly.newPlot(target, figure.data, figure.layout, config);
      panel.dataset.traces = String(figure.data.length);
      panel.classList.add("is-ready");
    } catch (error) {
      target.replaceChildren();
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = "This chart could not be loaded (" + error.message + "). The CSV link still works.";
      target.append(p);
      panel.classList.add("is-failed");
    }
  }

  function start() {
    document.querySelectorAll("[data-figure-url]").forEach(draw);
    document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
      select.addEventListener("change", () => select.form.submit());
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
