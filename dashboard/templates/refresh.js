"use strict";
// The live dashboard's one script, inlined in the page and allowed by its SHA-256 alone (see
// dashboard/app.py). Every few seconds it asks /api/summary and writes each figure into the element
// that names it (dashboard.html.j2 lists the data-* attributes); each format below is the Python
// function of the same name in dashboard/display.py. Text goes in as text, never as markup.
(() => {
  const body = document.body;
  const every = Number(body.dataset.refreshS || "5") * 1000;
  const status = document.getElementById("live");
  const none = (v) => v === null || v === undefined;
  const grouped = (digits) => digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const format = {
    text: (v) => (none(v) ? "" : String(v)),
    count: (v) => (none(v) ? "–" : grouped(String(v))),
    people: (v) => (typeof v === "string" ? v : format.count(v)),
    duration: (v) => {
      if (none(v)) return "–";
      if (Number(v) < 120) return `${grouped(Number(v).toFixed(0))} s`;
      const [whole, tenths] = (Number(v) / 60).toFixed(1).split(".");
      return `${grouped(whole)}.${tenths} min`;
    },
    money: (v) => {
      const [whole, cents] = String(v).split(".");
      return `${grouped(whole)}.${(cents || "").padEnd(2, "0")}`;
    },
    rate: (v) => {
      const [whole, tenths] = Number(v).toFixed(1).split(".");
      return `${grouped(whole)}.${tenths}`;
    },
    pct: (v) => (none(v) ? "–" : `${Number(v).toFixed(1)} %`),
    seconds: (v) => (none(v) ? "unknown" : `${Number(v).toFixed(2)} s`),
    when: (v) => (none(v) ? "never" : `${v.slice(0, 10)} ${v.slice(11, 19)} UTC`),
    finished: (v) => (none(v) ? "still running" : format.when(v)),
    lag: (v) => (none(v) ? "unknown" : grouped(String(v))),
    kinds: (v) => Object.entries(v || {}).map(([kind, n]) => `${kind} ${grouped(String(n))}`).join(", ") || "–",
    series: (v) => (v || []).map((n) => grouped(String(n))).join("; "),
  };
  const at = (data, path) => path.split(".").reduce((v, key) => (none(v) ? undefined : v[key]), data);
  const SVG = "http://www.w3.org/2000/svg";

  // The throughput chart: one bar a minute, the busiest minute full height (display.bars).
  function bars(svg, values) {
    const [, , width, height] = svg.getAttribute("viewBox").split(" ").map(Number);
    const each = width / Math.max(values.length, 1);
    const top = Math.max(0, ...values);
    svg.replaceChildren(
      ...values.map((n, i) => {
        const h = top && n ? Math.max(1, Math.round((n * height) / top)) : 0;
        const rect = document.createElementNS(SVG, "rect");
        for (const [name, value] of [["x", i * each + 1], ["y", height - h], ["width", each - 2], ["height", h]]) {
          rect.setAttribute(name, String(value));
        }
        return rect;
      }),
    );
    svg.setAttribute("aria-label", `events per minute, oldest first: ${format.series(values)}`);
  }

  function apply(el, data) {
    const d = el.dataset;
    if (d.bind !== undefined) el.textContent = format[d.format || "text"](at(data, d.bind));
    if (d.alert !== undefined) el.classList.toggle("alert", Number(at(data, d.alert)) > 0);
    if (d.show !== undefined) el.hidden = !at(data, d.show);
    if (d.hide !== undefined) el.hidden = Boolean(at(data, d.hide));
    if (d.width !== undefined) el.setAttribute("width", String(at(data, d.width) || 0));
    if (d.bars !== undefined) bars(el, at(data, d.bars) || []);
    if (d.class !== undefined) {
      for (const name of [...el.classList]) if (name.startsWith(`${d.class}-`)) el.classList.remove(name);
      el.classList.add(`${d.class}-${at(data, d.class)}`);
    }
  }

  const BOUND = "[data-bind], [data-alert], [data-show], [data-hide], [data-width], [data-bars], [data-class]";

  // Each list is drawn again from its <template>; the rest of the page is written in place.
  function write(data) {
    for (const list of document.querySelectorAll("[data-list]")) {
      const items = at(data, list.dataset.list) || [];
      const template = list.querySelector("template");
      const rows = items.map((item) => {
        const row = template.content.firstElementChild.cloneNode(true);
        if (list.dataset.key) row.dataset.row = String(item[list.dataset.key]);
        for (const el of [row, ...row.querySelectorAll(BOUND)]) apply(el, item);
        return row;
      });
      if (!rows.length && list.dataset.empty) {
        const row = document.createElement("tr");
        const cell = document.createElement("td");
        row.className = "empty";
        cell.colSpan = Number(list.dataset.cols || "1");
        cell.textContent = list.dataset.empty;
        row.append(cell);
        rows.push(row);
      }
      list.replaceChildren(...rows, template);
    }
    for (const el of document.querySelectorAll(BOUND)) {
      if (!el.closest("[data-list]")) apply(el, data);
    }
  }

  let failing = false;
  function say(text, alert) {
    status.textContent = text;
    status.classList.toggle("alert", alert);
  }

  async function refresh() {
    try {
      const answer = await fetch("/api/summary", { cache: "no-store", headers: { Accept: "application/json" } });
      if (!answer.ok) throw new Error(`answered ${answer.status}`);
      write(await answer.json());
      body.dataset.refreshed = String(Number(body.dataset.refreshed) + 1);
      if (failing) say(`live: refreshed every ${every / 1000} s`, false);
      failing = false;
    } catch (e) {
      if (!failing) say(`not refreshing (${e.message}): the figures are those of the time shown; trying again`, true);
      failing = true;
    } finally {
      setTimeout(refresh, every);
    }
  }

  say(`live: refreshed every ${every / 1000} s`, false);
  setTimeout(refresh, every);
})();
