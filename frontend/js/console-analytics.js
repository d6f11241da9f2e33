// The console's Analytics tab: per-day charts of conversations, deflection, escalations by reason, ratings and
// first-token time (GET /api/analytics), the top unanswered questions, a range selector and a CSV download.
// Chart.js is served from node_modules under /vendor/ as its UMD build, loaded the first time the tab opens:
// its ES-module build imports the bare specifier "@kurkle/color", which a browser resolves only through an
// import map, and the page's CSP allows no inline script to hold one.
import { $, api, el, registerTab } from "./console-common.js";

const CHART_SRC = "/vendor/chart.umd.js";
const PRESETS = [7, 30, 90];
const REASON_LABELS = {
  customer_request: "Customer asked for a person",
  caller_request: "Person button",
  no_relevant_answer: "Docs had no answer",
  model_unsure: "Model unsure",
  other: "Other",
};
const charts = new Map();
let chartLibrary = null;
let built = false;

function loadChartJs() {
  chartLibrary ??= new Promise((resolve, reject) => {
    if (window.Chart) return resolve(window.Chart);
    const script = document.createElement("script");
    script.src = CHART_SRC;
    script.onload = () => (window.Chart ? resolve(window.Chart) : reject(new Error("the chart library is broken")));
    script.onerror = () => {
      chartLibrary = null;
      script.remove();
      reject(new Error("the chart library did not load"));
    };
    document.head.append(script);
  });
  return chartLibrary;
}

// Dates are UTC days, as the server counts them.
const isoDay = (date) => date.toISOString().slice(0, 10);
const daysAgo = (n) => isoDay(new Date(Date.now() - n * 86400000));
const shortDay = (day) =>
  new Date(`${day}T00:00:00Z`).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
const percent = (share) => (share === null || share === undefined ? "–" : `${Math.round(share * 100)} %`);
const seconds = (ms) => (ms === null || ms === undefined ? "–" : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`);

function chartCard(id, title, description) {
  const figure = el("figure", "chart-card");
  const box = el("div", "chart-box");
  const canvas = el("canvas");
  canvas.id = id;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", description);
  box.append(canvas);
  figure.append(el("figcaption", "", title), box);
  return figure;
}

function build() {
  const view = $("analytics-view");
  const form = el("form", "analytics-range");
  form.id = "analytics-range";
  const select = el("select");
  select.id = "analytics-days";
  for (const n of PRESETS) select.append(new Option(`Last ${n} days`, String(n), false, n === 30));
  select.append(new Option("Chosen dates", "custom"));
  const from = el("input");
  const to = el("input");
  for (const [input, id] of [[from, "analytics-from"], [to, "analytics-to"]]) {
    input.type = "date";
    input.id = id;
    input.required = true;
    input.max = daysAgo(0);
  }
  const label = (forId, text) => {
    const node = el("label", "", text);
    node.htmlFor = forId;
    return node;
  };
  const show = el("button", "button ghost small", "Show");
  show.type = "submit";
  const csv = el("button", "button ghost small", "Download CSV");
  csv.type = "button";
  csv.id = "analytics-csv";
  form.append(label("analytics-days", "Range"), select, label("analytics-from", "From"), from, label("analytics-to", "To"), to, show, csv);

  const totals = el("dl", "analytics-totals");
  totals.id = "analytics-totals";
  const grid = el("div", "chart-grid");
  grid.append(
    chartCard("chart-conversations", "Conversations per day", "Conversations and those answered without a ticket, per day"),
    chartCard("chart-deflection", "Answered without a ticket", "Share of each day's conversations answered without a ticket"),
    chartCard("chart-escalations", "Escalations by reason", "Tickets opened per day, stacked by reason"),
    chartCard("chart-ratings", "Thumbs up and down", "Answers rated up and down per day"),
    chartCard("chart-first-token", "Time to the first word", "Median and 95th percentile time to the first token, per day"),
  );
  const unanswered = el("ol", "unanswered-list");
  unanswered.id = "analytics-unanswered";
  const status = el("p", "list-status");
  status.id = "analytics-status";
  status.setAttribute("role", "status");
  const unansweredStatus = el("p", "list-status");
  unansweredStatus.id = "analytics-unanswered-status";
  view.replaceChildren(form, status, totals, grid, el("h2", "", "Top unanswered questions"), unansweredStatus, unanswered);

  const applyPreset = () => {
    if (select.value === "custom") return;
    to.value = daysAgo(0);
    from.value = daysAgo(Number(select.value) - 1);
  };
  applyPreset();
  select.addEventListener("change", () => {
    applyPreset();
    if (select.value !== "custom") load();
  });
  for (const input of [from, to]) input.addEventListener("change", () => (select.value = "custom"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  csv.addEventListener("click", downloadCsv);
  built = true;
}

const range = () => ({ from: $("analytics-from").value, to: $("analytics-to").value });
const query = ({ from, to }) => `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;

function colors() {
  const style = getComputedStyle(document.documentElement);
  const pick = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    accent: pick("--accent", "#2458d3"),
    text: pick("--text", "#1b1f24"),
    muted: pick("--muted", "#5b6470"),
    grid: pick("--border", "#d6dae1"),
    up: "#16a34a",
    down: pick("--danger", "#b3261e"),
    series: ["#2458d3", "#f59e0b", "#7c3aed", "#0891b2", "#9ca3af"],
  };
}

function draw(Chart, id, config) {
  charts.get(id)?.destroy();
  const palette = colors();
  Chart.defaults.color = palette.muted;
  Chart.defaults.borderColor = palette.grid;
  const chart = new Chart($(id), {
    ...config,
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      ...config.options,
    },
  });
  charts.set(id, chart);
}

function drawAll(Chart, report) {
  const palette = colors();
  const labels = report.days.map((day) => shortDay(day.date));
  const series = (pick) => report.days.map(pick);
  const countAxis = { beginAtZero: true, ticks: { precision: 0 } };
  draw(Chart, "chart-conversations", {
    type: "bar",
    data: {
      labels,
      datasets: [
        { label: "Conversations", data: series((d) => d.conversations), backgroundColor: palette.accent },
        { label: "Answered without a ticket", data: series((d) => d.deflected), backgroundColor: palette.up },
      ],
    },
    options: { scales: { y: countAxis } },
  });
  draw(Chart, "chart-deflection", {
    type: "line",
    data: {
      labels,
      datasets: [
        {
          label: "Share answered without a ticket",
          data: series((d) => (d.deflection === null ? null : Math.round(d.deflection * 1000) / 10)),
          borderColor: palette.up,
          backgroundColor: palette.up,
          spanGaps: true,
        },
      ],
    },
    options: { scales: { y: { min: 0, max: 100, ticks: { callback: (value) => `${value} %` } } } },
  });
  draw(Chart, "chart-escalations", {
    type: "bar",
    data: {
      labels,
      datasets: report.reasons.map((reason, index) => ({
        label: REASON_LABELS[reason] || reason,
        data: series((d) => d.escalations[reason] || 0),
        backgroundColor: palette.series[index % palette.series.length],
      })),
    },
    options: { scales: { x: { stacked: true }, y: { ...countAxis, stacked: true } } },
  });
  draw(Chart, "chart-ratings", {
    type: "bar",
    data: {
      labels,
      datasets: [
        { label: "Thumbs up", data: series((d) => d.thumbs_up), backgroundColor: palette.up },
        { label: "Thumbs down", data: series((d) => d.thumbs_down), backgroundColor: palette.down },
      ],
    },
    options: { scales: { x: { stacked: true }, y: { ...countAxis, stacked: true } } },
  });
  const inSeconds = (ms) => (ms === null ? null : ms / 1000);
  draw(Chart, "chart-first-token", {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "Median (p50)", data: series((d) => inSeconds(d.first_token_ms.p50)), borderColor: palette.accent, backgroundColor: palette.accent, spanGaps: true },
        { label: "95th percentile", data: series((d) => inSeconds(d.first_token_ms.p95)), borderColor: palette.series[1], backgroundColor: palette.series[1], spanGaps: true },
      ],
    },
    options: { scales: { y: { beginAtZero: true, ticks: { callback: (value) => `${value} s` } } } },
  });
}

function showTotals(totals) {
  const escalations = Object.values(totals.escalations).reduce((a, b) => a + b, 0);
  const facts = [
    ["Conversations", String(totals.conversations)],
    ["Answered without a ticket", `${totals.deflected} (${percent(totals.deflection)})`],
    ["Tickets opened", String(escalations)],
    ["Thumbs up / down", `${totals.thumbs_up} / ${totals.thumbs_down}`],
    ["First word p50 / p95", `${seconds(totals.first_token_ms.p50)} / ${seconds(totals.first_token_ms.p95)}`],
  ];
  $("analytics-totals").replaceChildren(
    ...facts.map(([name, value]) => {
      const item = el("div", "analytics-total");
      item.append(el("dt", "", name), el("dd", "", value));
      return item;
    }),
  );
}

function showUnanswered(report) {
  const groups = report.unanswered || [];
  $("analytics-unanswered").replaceChildren(
    ...groups.map((group) => {
      const item = el("li", "unanswered-group");
      item.append(el("strong", "", `${group.size} × `), el("span", "", group.example));
      return item;
    }),
  );
  $("analytics-unanswered-status").textContent = report.unanswered_error
    ? report.unanswered_error
    : groups.length
      ? "Escalated and weakly answered questions of this range, grouped by meaning, largest first."
      : "No unanswered questions in this range.";
}

async function load() {
  if (!built) build();
  const status = $("analytics-status");
  const asked = range();
  status.textContent = "Loading…";
  let report;
  let Chart;
  try {
    [report, Chart] = await Promise.all([api(`/api/analytics?${query(asked)}`), loadChartJs()]);
  } catch (error) {
    status.textContent = `Could not load the analytics: ${error.message}`;
    return;
  }
  showTotals(report.totals);
  drawAll(Chart, report);
  showUnanswered(report);
  status.textContent = `${report.from} to ${report.to} (UTC days).`;
  $("analytics-view").dataset.loaded = `${report.from}/${report.to}`;
}

// The token travels in a header, never in a URL: fetch the CSV, then save it from a Blob.
async function downloadCsv() {
  const status = $("analytics-status");
  const asked = range();
  let file;
  try {
    file = await api(`/api/analytics.csv?${query(asked)}`, { blob: true }); // a refused token signs out, as elsewhere
  } catch (error) {
    status.textContent = `Could not download the CSV: ${error.message}`;
    return;
  }
  const link = el("a");
  link.href = URL.createObjectURL(file);
  link.download = `analytics-${asked.from}-${asked.to}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  status.textContent = `Saved ${link.download}.`;
}

registerTab("analytics", load);
