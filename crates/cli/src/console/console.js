// Sparklines: every <svg data-poll="URL" data-field="F" data-mode="rate|value"> polls its URL
// every two seconds and draws the last minute of the JSON field F, either as it is ("value")
// or as its growth per second ("rate"). Nothing else on the pages needs script.
"use strict";
(function () {
  const PERIOD_MS = 2000;
  const POINTS = 30;
  for (const svg of document.querySelectorAll("svg[data-poll]")) {
    const label = svg.parentElement.querySelector(".spark-label");
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    svg.appendChild(line);
    const points = [];
    let previous = null;
    async function sample() {
      try {
        const response = await fetch(svg.dataset.poll, { credentials: "same-origin" });
        if (!response.ok) throw new Error(response.status + " " + response.statusText);
        const value = (await response.json())[svg.dataset.field];
        const now = performance.now();
        let shown = value;
        if (svg.dataset.mode === "rate") {
          shown = previous ? ((value - previous.value) * 1000) / (now - previous.at) : null;
          previous = { value: value, at: now };
        }
        if (shown !== null) {
          points.push(Math.max(0, shown));
          if (points.length > POINTS) points.shift();
          draw();
          label.textContent = Math.round(shown).toLocaleString() + " " + svg.dataset.unit;
        }
      } catch (error) {
        label.textContent = "no reading: " + error.message;
      }
    }
    // The newest reading at the right edge; a lone reading is drawn as a short flat line.
    function draw() {
      const width = svg.width.baseVal.value, height = svg.height.baseVal.value;
      const top = Math.max(1, ...points);
      const step = width / (POINTS - 1);
      const shown = points.length === 1 ? [points[0], points[0]] : points;
      line.setAttribute("points", shown
        .map((p, i) => (width - (shown.length - 1 - i) * step).toFixed(1) + "," +
          (height - 2 - (p / top) * (height - 4)).toFixed(1))
        .join(" "));
    }
    sample();
    setInterval(sample, PERIOD_MS);
  }
})();
