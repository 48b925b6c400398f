// The account page's health chart: uPlot, with the scorecard's bands as zones.
(function () {
  "use strict";
  // Legends show values under the cursor, or nothing: uPlot writes "--" where the
  // cursor is on no point (and before it has been on the chart at all).
  function blankLegend(u) {
    u.root.querySelectorAll(".u-legend .u-value").forEach(function (cell) {
      if (cell.textContent === "--") cell.textContent = "";
    });
  }
  var quietLegend = { hooks: { setLegend: [blankLegend], ready: [blankLegend] } };
  function draw() {
    var holder = document.getElementById("health-chart");
    var source = document.getElementById("health-data");
    if (!holder || !source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    var zones = data.zones;
    var bands = {
      hooks: {
        drawClear: [function (u) {
          var ctx = u.ctx, left = u.bbox.left, width = u.bbox.width;
          function zone(from, to, colour) {
            var top = u.valToPos(to, "y", true), bottom = u.valToPos(from, "y", true);
            ctx.fillStyle = colour;
            ctx.fillRect(left, top, width, bottom - top);
          }
          zone(0, zones.yellow_at, "rgba(220, 53, 69, 0.10)");
          zone(zones.yellow_at, zones.green_at, "rgba(255, 193, 7, 0.14)");
          zone(zones.green_at, 100, "rgba(40, 167, 69, 0.10)");
        }],
      },
    };
    var began = performance.now();
    var chart = new uPlot({
      width: Math.max(320, holder.clientWidth || 800),
      height: 260,
      plugins: [bands, quietLegend],
      scales: { y: { range: [0, 100] } },
      // A score holds until its next material change: steps, not slopes.
      series: [{}, {
        label: "health", stroke: "#1f4e79", width: 2,
        paths: uPlot.paths.stepped({ align: 1 }),
        points: { show: data.series.t.length < 200 },
      }],
      axes: [{}, { values: function (u, ticks) { return ticks.map(String); } }],
    }, [data.series.t, data.series.health], holder);
    holder.dataset.points = String(data.series.t.length);
    holder.dataset.drawMs = (performance.now() - began).toFixed(1);  // read by make screenshots
    holder.dataset.drawn = "true";
    window.addEventListener("resize", function () {
      chart.setSize({ width: Math.max(320, holder.clientWidth || 800), height: 260 });
    });
  }
  var PALETTE = ["#1f4e79", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d"];
  function drawComponents() {
    var holder = document.getElementById("components-chart");
    var source = document.getElementById("components-data");
    if (!holder || !source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    var names = Object.keys(data.components);
    var series = [{}].concat(names.map(function (name, i) {
      return { label: name, stroke: PALETTE[i % PALETTE.length], width: 1.5,
               paths: uPlot.paths.stepped({ align: 1 }), spanGaps: false };
    }));
    var width = function () { return Math.max(320, holder.clientWidth || 800); };
    var chart = new uPlot({ width: width(), height: 200, scales: { y: { range: [0, 100] } }, series: series,
                            plugins: [quietLegend] },
      [data.t].concat(names.map(function (n) { return data.components[n]; })), holder);
    holder.dataset.series = String(names.length);
    holder.dataset.drawn = "true";
    window.addEventListener("resize", function () { chart.setSize({ width: width(), height: 200 }); });
  }
  // Risk (left axis) and tier (right axis) as steps between their named levels.
  function drawStanding() {
    var holder = document.getElementById("standing-chart");
    var source = document.getElementById("standing-data");
    if (!holder || !source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    function named(levels) {
      return function (u, ticks) { return ticks.map(function (v) { return levels[v] || ""; }); };
    }
    function every(levels) {
      return function () { return levels.map(function (_, i) { return i; }); };
    }
    var stepped = uPlot.paths.stepped({ align: 1 });
    var width = function () { return Math.max(320, holder.clientWidth || 800); };
    var chart = new uPlot({
      width: width(), height: 160, plugins: [quietLegend],
      scales: { risk: { range: [-0.3, data.risks.length - 0.7] },
                tier: { range: [-0.3, data.tiers.length - 0.7] } },
      series: [{},
        { label: "risk", scale: "risk", stroke: "#c0392b", width: 2, paths: stepped, spanGaps: false,
          value: function (u, v) { return v == null ? "" : data.risks[v]; } },
        { label: "tier", scale: "tier", stroke: "#1f4e79", width: 2, paths: stepped, spanGaps: false,
          value: function (u, v) { return v == null ? "" : data.tiers[v]; } }],
      axes: [{},
        { scale: "risk", values: named(data.risks), splits: every(data.risks), size: 70 },
        { scale: "tier", side: 1, values: named(data.tiers), splits: every(data.tiers), grid: { show: false } }],
    }, [data.t, data.risk, data.tier], holder);
    var last = data.t.length - 1;  // what the chart ends on, for readers of the page
    holder.dataset.risk = last < 0 || data.risk[last] == null ? "" : data.risks[data.risk[last]];
    holder.dataset.tier = last < 0 || data.tier[last] == null ? "" : data.tiers[data.tier[last]];
    holder.dataset.drawn = "true";
    window.addEventListener("resize", function () { chart.setSize({ width: width(), height: 160 }); });
  }
  function start() { draw(); drawComponents(); drawStanding(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
