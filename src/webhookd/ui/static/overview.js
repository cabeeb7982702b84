// webhookd console overview: draws the charts (uPlot, vendored) from /ui/overview/series.
(function () {
  var box = document.querySelector("[data-series]");
  if (!box || typeof uPlot === "undefined") { return; }
  var charts = {
    rates: [["events_per_second", "events/s", "#3867d6"], ["deliveries_per_second", "attempts/s", "#20bf6b"]],
    success: [["success_rate", "success rate", "#20bf6b"]],
    latency: [["p50_ms", "p50 ms", "#3867d6"], ["p99_ms", "p99 ms", "#eb3b5a"]],
    queues: [["backlog", "backlog", "#f7b731"], ["dead_letters", "dead letters", "#eb3b5a"]]
  };
  var drawn = [];
  function draw(columns) {
    drawn.forEach(function (plot) { plot.destroy(); });
    drawn = [];
    Object.keys(charts).forEach(function (name) {
      var target = box.querySelector('[data-chart="' + name + '"]');
      if (!target) { return; }
      var series = [{}];
      var data = [columns.at];
      charts[name].forEach(function (line) {
        series.push({ label: line[1], stroke: line[2], width: 2, spanGaps: true });
        data.push(columns[line[0]]);
      });
      var width = Math.max(280, target.clientWidth || 600);
      drawn.push(new uPlot({ width: width, height: 180, series: series, axes: [{}, {}] }, data, target));
    });
    box.dataset.drawn = "true";
  }
  function load() {
    fetch(box.dataset.series, { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(draw)
      .catch(function () { box.dataset.drawn = "failed"; });
  }
  load();
  setInterval(load, 30000);
})();
