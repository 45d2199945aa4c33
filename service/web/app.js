// roomflow's web app: plain modules, no build step, no third-party code. Every number on
// screen comes from the same JSON API integrations use (/v1/…), called with the browser's
// session; the server decides what each role may read or change.

const $ = (selector, root = document) => root.querySelector(selector);

/** An element: el("td", { class: "num" }, "42"). Text is always text (never HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children.flat(Infinity)) if (child) node.append(child);
  return node;
}

// ---- numbers and times -----------------------------------------------------------

const pct = (u) => (u === null || u === undefined || Number.isNaN(u) ? "–" : `${(u * 100).toFixed(1)}%`);
const int = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
const money = (n) => (n === null || n === undefined ? "–" : n.toLocaleString("en-US", { maximumFractionDigits: 0 }));
const when = (iso) => (iso ? new Date(iso).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" }) : "–");
const day = (d) => d.toISOString().slice(0, 10);
/** The utilization class of a share: 5 viridis steps, `un` for no data. */
const ucls = (u) => (u === null || u === undefined ? "un" : `u${Math.min(4, Math.max(0, Math.floor(u * 5)))}`);

// ---- the API -----------------------------------------------------------------------

let me = null;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { accept: "application/json" };
  if (method !== "GET") {
    headers["x-csrf-token"] = me?.csrf_token ?? "";
    if (body !== undefined) headers["content-type"] = "application/json";
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const why = json?.error ?? `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, why);
  }
  return json;
}

const query = (params) =>
  new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString();

function say(message, error = false) {
  const status = $("#status");
  status.textContent = message;
  status.classList.toggle("error", error);
  status.setAttribute("role", error ? "alert" : "status");
}

/** Marks `node` as showing its data, and when (ms since the page's navigation began). */
function ready(node) {
  if (node.hasAttribute("data-ready")) return;
  node.setAttribute("data-ready", "true");
  node.setAttribute("data-ready-ms", String(Math.round(performance.now())));
}

/** A panel that fills itself: shows "Loading…", then what `fill` returns, or the error. */
function panel(title, fill, { id } = {}) {
  const body = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  const section = el("section", { class: "card", "aria-labelledby": `${id}-h`, id }, el("h2", { id: `${id}-h` }, title), body);
  Promise.resolve()
    .then(fill)
    .then((content) => body.replaceChildren(...[content].flat(Infinity).filter(Boolean)))
    .catch((e) => body.replaceChildren(el("p", { class: "muted" }, `Not available: ${e.message}`)))
    .finally(() => ready(section));
  return section;
}

// ---- charts (SVG, each with a table beside it) --------------------------------------

/** A table of rows: columns are [heading, value-of-row, numeric?]. */
function table(caption, columns, rows, attrs = {}) {
  // A wide table scrolls in its own region, which the keyboard can reach too.
  return el("div", { class: "scroll", tabindex: 0, role: "region", "aria-label": caption }, el(
    "table",
    attrs,
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, columns.map(([h, , n]) => el("th", { scope: "col", class: n ? "num" : null }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, columns.map(([, f, n]) => el("td", { class: n ? "num" : null }, f(r)))))),
  ));
}

/** The same figures as a table, folded under the chart. */
const asTable = (t) => el("details", {}, el("summary", {}, "Show as table"), t);

/** A legend entry: the colour of series `i` and its name. */
const swatch = (i, name) => el("span", {}, svg("svg", { width: 14, height: 14, "aria-hidden": "true" }, svg("rect", { width: 14, height: 14, class: `f${i % 8}` })), ` ${name}`);

/** Five labelled lines across `chart`, from 0 to `top`. */
function yAxis(chart, { top, y, format, from, to }) {
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    chart.append(svg("line", { class: "axis", x1: from, x2: to, y1: y(v), y2: y(v) }));
    const text = svg("text", { x: from - 6, y: y(v) + 4, "text-anchor": "end" });
    text.textContent = format(v);
    chart.append(text);
  }
}

/**
 * A line chart: `series` [{name, points: [[ms, value]]}], optional `band` [[ms, low, high]]
 * and `limit` (a horizontal line, e.g. capacity), y from 0.
 */
function lineChart({ label, series, band = [], limit = null, format = pct, yMax = null }) {
  const W = 900, H = 280, L = 56, R = 12, T = 12, B = 28;
  const all = series.flatMap((s) => s.points).concat(band.map(([t, , h]) => [t, h]));
  if (!all.length) return el("p", { class: "muted" }, "No data in this period.");
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0])) || t0 + 1;
  const top = yMax ?? (Math.max(limit ?? 0, ...all.map((p) => p[1] ?? 0)) * 1.08 || 1);
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
  yAxis(chart, { top, y, format, from: L, to: W - R });
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    const text = svg("text", { x: x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" });
    const short = t1 - t0 < 3 * 86400000;
    text.textContent = new Date(t).toLocaleString("en-GB", short ? { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" } : { day: "numeric", month: "short" });
    chart.append(text);
  }
  if (band.length) {
    const up = band.map(([t, , h]) => `${x(t)},${y(h)}`);
    const down = band.map(([t, l]) => `${x(t)},${y(l)}`).reverse();
    chart.append(svg("polygon", { class: "band", points: up.concat(down).join(" ") }));
  }
  if (limit !== null) chart.append(svg("line", { class: "cap", x1: L, x2: W - R, y1: y(limit), y2: y(limit) }));
  series.forEach((s, i) => {
    const d = s.points
      .filter((p) => p[1] !== null)
      .map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)
      .join("");
    chart.append(svg("path", { class: `line s${i % 8}`, d }));
  });
  const legend = el(
    "div",
    { class: "legend" },
    series.map((s, i) => swatch(i, s.name)),
    band.length ? el("span", {}, "shaded: 95% interval") : null,
    limit !== null ? el("span", {}, "dashed: capacity") : null,
  );
  return [chart, legend];
}

/**
 * Stacked bars: `bars` [{label, parts: [value per stack]}], `stacks` [name per part],
 * y from 0.
 */
function barChart({ label, bars, stacks, format = int }) {
  const W = 900, H = 260, L = 56, R = 12, T = 12, B = 28;
  if (!bars.length) return el("p", { class: "muted" }, "No data in this period.");
  const top = Math.max(1, ...bars.map((b) => b.parts.reduce((a, v) => a + v, 0))) * 1.08;
  const slot = (W - L - R) / bars.length;
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
  yAxis(chart, { top, y, format, from: L, to: W - R });
  bars.forEach((b, i) => {
    let base = 0;
    b.parts.forEach((v, k) => {
      const width = Math.min(slot * 0.7, 48);
      if (v > 0) chart.append(svg("rect", { class: `f${k % 8}`, x: L + (i + 0.5) * slot - width / 2, width, y: y(base + v), height: y(base) - y(base + v) }));
      base += v;
    });
    if (bars.length <= 16 || i % Math.ceil(bars.length / 8) === 0) {
      const text = svg("text", { x: L + (i + 0.5) * slot, y: H - 8, "text-anchor": "middle" });
      text.textContent = b.label;
      chart.append(text);
    }
  });
  const legend = el(
    "div",
    { class: "legend" },
    stacks.map((name, k) => swatch(k, name)),
  );
  return [chart, legend];
}

/** An office's booked rooms, day by day: booked and used, booked and empty, unbooked use. */
async function bookedVersusUsed(id) {
  const body = await api(`/v1/offices/${encodeURIComponent(id)}/bookings?${query({ days: 14, granularity: "1d" })}`);
  if (!body.windows.length) return el("p", { class: "muted" }, "No bookings yet: connect the rooms' calendars (roomflow calendar sync).");
  const hours = (m) => m / 60;
  const rows = body.windows;
  const booked = rows.reduce((a, w) => a + w.booked_minutes, 0);
  const ghost = rows.reduce((a, w) => a + w.ghost_minutes, 0);
  const seen = booked - rows.reduce((a, w) => a + w.booked_unreported_minutes, 0);
  const meetings = rows.reduce((a, w) => a + w.meetings, 0);
  const noShows = rows.reduce((a, w) => a + w.no_shows, 0);
  return [
    el("p", { id: "bookings-summary" }, `Booked rooms sat empty ${pct(seen ? ghost / seen : null)} of their booked time; ${int(noShows)} of ${int(meetings)} meetings were no-shows.`),
    barChart({
      label: `Booked versus used room hours per day at ${officeName(id)}`,
      bars: rows.map((w) => ({ label: new Date(w.window_start).toLocaleDateString("en-GB", { day: "numeric", month: "short" }), parts: [hours(w.booked_used_minutes), hours(w.ghost_minutes), hours(w.booked_unreported_minutes), hours(w.unbooked_used_minutes)] })),
      stacks: ["booked and used", "booked, empty", "booked, no reading", "used without booking"],
      format: (v) => `${v.toFixed(0)} h`,
    }),
    asTable(table(
      "Room hours per day",
      [
        ["Day", (w) => day(new Date(w.window_start))],
        ["Booked", (w) => hours(w.booked_minutes).toFixed(1), true],
        ["Booked and used", (w) => hours(w.booked_used_minutes).toFixed(1), true],
        ["Booked, empty", (w) => hours(w.ghost_minutes).toFixed(1), true],
        ["Used unbooked", (w) => hours(w.unbooked_used_minutes).toFixed(1), true],
        ["Meetings", (w) => int(w.meetings), true],
        ["No-shows", (w) => int(w.no_shows), true],
      ],
      rows,
      { id: "bookings-table" },
    )),
  ];
}

/** The hour-of-week heatmap: 7 rows of 24 cells. */
function heatmap(body) {
  const W = 900, L = 44, T = 18, cw = (W - L) / 24, ch = 26;
  const H = T + 7 * ch + 4;
  const names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  const chart = svg("svg", {
    class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `Average utilization by hour of the week, ${body.timezone} time`,
  });
  for (let h = 0; h < 24; h += 3) {
    const t = svg("text", { x: L + h * cw + 2, y: 12 });
    t.textContent = `${String(h).padStart(2, "0")}:00`;
    chart.append(t);
  }
  body.utilization.forEach((row, d) => {
    const t = svg("text", { x: 0, y: T + d * ch + 17 });
    t.textContent = names[d];
    chart.append(t);
    row.forEach((u, h) => {
      const cell = svg("rect", { x: L + h * cw, y: T + d * ch, width: cw - 2, height: ch - 2, class: u === null ? "hn" : `h${ucls(u).slice(1)}` });
      const tip = svg("title");
      tip.textContent = `${names[d]} ${h}:00 ${pct(u)}`;
      cell.append(tip);
      chart.append(cell);
    });
  });
  const rows = body.utilization.map((row, d) => ({ day: names[d], row }));
  const columns = [["Day", (r) => r.day]].concat(
    Array.from({ length: 24 }, (_, h) => [`${h}h`, (r) => pct(r.row[h]), true]),
  );
  return [chart, legendScale(), asTable(table(`Utilization by hour, ${body.timezone}`, columns, rows))];
}

function legendScale() {
  const steps = ["0–20%", "20–40%", "40–60%", "60–80%", "80–100%"];
  return el(
    "div",
    { class: "legend", "aria-hidden": "true" },
    steps.map((s, i) => el("span", {}, el("span", { class: `swatch u${i}` }), s)),
    el("span", {}, el("span", { class: "swatch un" }), "no data"),
  );
}

// ---- shared data ---------------------------------------------------------------------

let offices = null;
async function officeList() {
  if (!offices) {
    const all = [];
    let cursor = null;
    do {
      const page = await api(`/v1/offices?${query({ limit: 1000, cursor })}`);
      all.push(...page.offices);
      cursor = page.next_cursor;
    } while (cursor);
    offices = all;
  }
  return offices;
}
const officeName = (id) => offices?.find((o) => o.office_id === id)?.name ?? id;

function officeSelect(current, onchange, label = "Office") {
  return el(
    "label",
    {},
    label,
    el(
      "select",
      { id: `pick-${label.toLowerCase().replace(/\W+/g, "-")}`, onchange: (e) => onchange(e.target.value) },
      offices.map((o) => el("option", { value: o.office_id, selected: o.office_id === current }, `${o.name} (${o.region})`)),
    ),
  );
}

// ---- the facilities manager: one office, live ------------------------------------

let live = null; // the open EventSource

function closeLive() {
  live?.close();
  live = null;
}

async function viewLive(officeId) {
  await officeList();
  if (!offices.length) return [el("h1", {}, "Live occupancy"), el("p", {}, "This tenant has no offices yet.")];
  const office = offices.find((o) => o.office_id === officeId) ?? offices[0];
  const id = office.office_id;
  const kpi = (key, label) => el("div", { class: "kpi" }, el("div", { class: "label" }, label), el("div", { class: "value", "data-kpi": key }, "–"), el("div", { class: "sub", "data-sub": key }));
  const kpis = el("div", { class: "kpis", id: "live-kpis" }, kpi("people", "People now"), kpi("utilization", "Utilization now"), kpi("rooms", "Rooms reporting"), kpi("asof", "As of"));
  const floors = el("div", { id: "floors" }, el("p", { class: "muted" }, "Connecting…"));
  const roomsTable = el("div", { id: "live-table" });
  const liveCard = el(
    "section",
    { class: "card", "aria-labelledby": "live-h", id: "live" },
    el("h2", { id: "live-h" }, "Rooms by floor, live"),
    legendScale(),
    floors,
    el("details", {}, el("summary", {}, "Show as table"), roomsTable),
  );
  const render = (snap) => {
    const set = (key, value, sub = "") => {
      $(`[data-kpi="${key}"]`, kpis).textContent = value;
      $(`[data-sub="${key}"]`, kpis).textContent = sub;
    };
    set("people", int(snap.people), `of ${int(snap.capacity)} seats`);
    set("utilization", pct(snap.utilization));
    set("rooms", int(snap.rooms_reporting), `of ${int(snap.rooms.length)} rooms`);
    set("asof", snap.as_of ? new Date(snap.as_of).toLocaleTimeString("en-GB") : "–");
    const byFloor = new Map();
    for (const r of snap.rooms) byFloor.set(r.floor, [...(byFloor.get(r.floor) ?? []), r]);
    const sorted = [...byFloor.entries()].sort((a, b) => a[0] - b[0]);
    floors.replaceChildren(
      ...sorted.map(([floor, rooms]) =>
        el(
          "div",
          { class: "floor" },
          el("h3", {}, `Floor ${floor}`),
          el(
            "ul",
            { class: "tiles", role: "list", "aria-label": `Floor ${floor} rooms` },
            rooms.map((r) =>
              el(
                "li",
                {
                  class: `tile ${ucls(r.utilization)}`,
                  tabindex: 0,
                  "data-room": r.room_id,
                  "aria-label": `${r.name}: ${r.people === null ? "no reading" : `${r.people} of ${r.capacity} people`}`,
                  title: `${r.name} (${r.room_id})`,
                },
                el("b", {}, r.people === null ? "–" : `${r.people}/${r.capacity}`),
                r.name,
              ),
            ),
          ),
        ),
      ),
    );
    roomsTable.replaceChildren(
      table(
        `Every room of ${office.name}`,
        [
          ["Floor", (r) => r.floor, true],
          ["Room", (r) => r.name],
          ["People", (r) => int(r.people), true],
          ["Capacity", (r) => r.capacity, true],
          ["Utilization", (r) => pct(r.utilization), true],
          ["Reading", (r) => (r.as_of ? new Date(r.as_of).toLocaleTimeString("en-GB") : "–")],
        ],
        snap.rooms,
        { id: "rooms-table" },
      ),
    );
    liveCard.setAttribute("data-people", snap.people);
    ready(liveCard);
  };
  closeLive();
  live = new EventSource(`/v1/offices/${encodeURIComponent(id)}/live`);
  live.addEventListener("occupancy", (e) => render(JSON.parse(e.data)));
  live.addEventListener("unavailable", () => say("The live store did not answer; retrying…", true));
  live.onerror = () => say("Live updates paused; reconnecting…", true);
  live.onopen = () => say("");

  const to = new Date();
  const from = new Date(to.getTime() - 24 * 3600 * 1000);
  return [
    el("div", { class: "controls" }, el("h1", {}, `Live: ${office.name}`), officeSelect(id, (v) => go(`#/live/${v}`))),
    kpis,
    liveCard,
    el(
      "div",
      { class: "grid2" },
      panel("Busiest rooms today", () => today(id, true), { id: "busiest" }),
      panel("Emptiest rooms today", () => today(id, false), { id: "emptiest" }),
    ),
    panel("Anomalies and alerts, last 24 hours", async () => {
      const body = await api(`/v1/anomalies?${query({ office_id: id, from: from.toISOString(), to: to.toISOString(), limit: 50 })}`);
      if (!body.anomalies.length) return el("p", {}, "None in the last 24 hours.");
      return table(
        "Newest first; ongoing ones first of all",
        [
          ["Kind", (a) => a.kind.replaceAll("_", " ")],
          ["Where", (a) => a.room_id ?? officeName(a.office_id)],
          ["From", (a) => when(a.from)],
          ["Severity", (a) => el("span", { class: `sev-${a.severity}` }, a.severity)],
          ["Ongoing", (a) => (a.ongoing ? "yes" : "no")],
        ],
        [...body.anomalies].sort((a, b) => Number(b.ongoing) - Number(a.ongoing)),
      );
    }, { id: "anomalies" }),
    panel("Hour-of-week heatmap, last 4 weeks", async () => heatmap(await api(`/v1/offices/${encodeURIComponent(id)}/heatmap?weeks=4`)), { id: "heatmap" }),
    panel("Booked versus used, last 14 days", () => bookedVersusUsed(id), { id: "bookings" }),
  ];
}

/** A small bar of a share; its width through the CSSOM, which the CSP allows. */
function barCell(u) {
  const bar = el("span", { class: "bar-cell", "aria-hidden": "true" });
  bar.style.width = `${Math.round(Math.min(1, Math.max(0, u ?? 0)) * 60)}px`;
  return bar;
}

let todayCache = null;
async function today(id, busiest) {
  if (todayCache?.id !== id || Date.now() - todayCache.at > 30000) {
    todayCache = { id, at: Date.now(), body: api(`/v1/offices/${encodeURIComponent(id)}/today`) };
  }
  const body = await todayCache.body;
  if (!body.rooms.length) return el("p", {}, "No readings yet today.");
  const rooms = busiest ? body.rooms.slice(0, 5) : body.rooms.slice(-5).reverse();
  return table(
    busiest ? "Highest utilization so far today" : "Lowest utilization so far today",
    [
      ["Room", (r) => r.name],
      ["Floor", (r) => r.floor, true],
      ["Utilization", (r) => el("span", {}, pct(r.utilization), barCell(r.utilization)), true],
      ["Peak", (r) => `${r.peak_people}/${r.capacity}`, true],
    ],
    rooms,
  );
}

// ---- the executive: the portfolio ---------------------------------------------------

const portfolioState = {
  to: day(new Date(Date.now() + 86400000)),
  from: day(new Date(Date.now() - 29 * 86400000)),
  zoom: "1d",
  region: "",
  office: "",
};

function spanDays() {
  return Math.max(1, Math.round((Date.parse(portfolioState.to) - Date.parse(portfolioState.from)) / 86400000));
}

/** Zoom levels allowed for a span: 15m up to 14 days, 1h up to 92. */
function zoomAllowed(zoom) {
  const days = spanDays();
  return zoom === "1d" || (zoom === "1h" && days <= 92) || (zoom === "15m" && days <= 14);
}

async function viewPortfolio() {
  await officeList();
  const s = portfolioState;
  if (!zoomAllowed(s.zoom)) s.zoom = "1d";
  const regions = [...new Set(offices.map((o) => o.region))].sort();
  const inScope = offices.filter((o) => !s.region || o.region === s.region);
  const rooms = inScope.reduce((n, o) => n + o.rooms, 0);
  const capacity = inScope.reduce((n, o) => n + o.capacity, 0);
  const rerender = () => go("#/portfolio", true);
  const controls = el(
    "form",
    { class: "controls", onsubmit: (e) => e.preventDefault(), "aria-label": "Period and scope" },
    el("h1", {}, "Portfolio"),
    el("label", {}, "From", el("input", { type: "date", id: "from", value: s.from, onchange: (e) => { s.from = e.target.value; rerender(); } })),
    el("label", {}, "To (exclusive)", el("input", { type: "date", id: "to", value: s.to, onchange: (e) => { s.to = e.target.value; rerender(); } })),
    el(
      "label",
      {},
      "Region",
      el("select", { id: "region", onchange: (e) => { s.region = e.target.value; s.office = ""; rerender(); } },
        el("option", { value: "" }, "All regions"),
        regions.map((r) => el("option", { value: r, selected: r === s.region }, r))),
    ),
    el(
      "label",
      {},
      "Trend of",
      el("select", { id: "trend-office", onchange: (e) => { s.office = e.target.value; rerender(); } },
        el("option", { value: "" }, s.region ? `All of ${s.region}` : "The whole portfolio"),
        inScope.map((o) => el("option", { value: o.office_id, selected: o.office_id === s.office }, o.name))),
    ),
    el(
      "div",
      { role: "group", "aria-label": "Zoom" },
      el("div", { class: "label muted" }, "Zoom"),
      el("div", { class: "seg" }, ["15m", "1h", "1d"].map((z) =>
        el("button", {
          type: "button", "aria-pressed": String(z === s.zoom), disabled: !zoomAllowed(z),
          title: zoomAllowed(z) ? `${z} windows` : `${z} needs a shorter period`,
          onclick: () => { s.zoom = z; rerender(); },
        }, z))),
    ),
  );
  const from = new Date(`${s.from}T00:00:00Z`).toISOString();
  const to = new Date(`${s.to}T00:00:00Z`).toISOString();
  const analyst = me.role !== "viewer";
  const trend = panel(
    `Utilization trend (${s.zoom} windows)`,
    async () => {
      const name = s.office ? officeName(s.office) : s.region || "Portfolio";
      const body = s.office
        ? await api(`/v1/offices/${encodeURIComponent(s.office)}/utilization?${query({ granularity: s.zoom, from, to })}`)
        : await api(`/v1/portfolio/utilization?${query({ granularity: s.zoom, from, to, region: s.region })}`);
      const windows = body.windows ?? [];
      const points = windows.map((w) => [Date.parse(w.start), w.utilization]);
      const mean = windows.length ? windows.reduce((a, w) => a + w.utilization, 0) / windows.length : null;
      const peak = windows.length ? Math.max(...windows.map((w) => w.utilization)) : null;
      $("[data-kpi=mean]").textContent = pct(mean);
      $("[data-kpi=peak]").textContent = pct(peak);
      return [
        lineChart({ label: `${name}: utilization per ${s.zoom} window from ${s.from} to ${s.to}`, series: [{ name, points }] }),
        asTable(table(`${name}, ${s.zoom} windows`, [["Window start", (w) => when(w.start)], ["Utilization", (w) => pct(w.utilization), true], ["Average people", (w) => (w.avg_people ?? 0).toFixed(1), true]], windows, { id: "trend-table" })),
      ];
    },
    { id: "trend" },
  );
  const kpi = (label, value, key) => el("div", { class: "kpi" }, el("div", { class: "label" }, label), el("div", { class: "value", "data-kpi": key }, value));
  const kpis = el("div", { class: "kpis" }, kpi("Offices", int(inScope.length), "offices"), kpi("Rooms", int(rooms), "rooms"), kpi("Seats", int(capacity), "seats"), kpi("Mean utilization", "…", "mean"), kpi("Peak window", "…", "peak"));
  const views = [controls, kpis, trend];
  if (analyst) {
    views.push(
      el(
        "div",
        { class: "grid2" },
        panel("Office ranking", async () => {
          const body = await api(`/v1/offices/ranking?${query({ days: Math.min(366, spanDays()), to })}`);
          const ranked = body.offices.filter((o) => !s.region || offices.find((x) => x.office_id === o.office_id)?.region === s.region);
          if (!ranked.length) return el("p", {}, "No days in this period.");
          return table(
            "Average daily utilization, highest first",
            [
              ["#", (o) => o.rank, true],
              ["Office", (o) => officeName(o.office_id)],
              ["Utilization", (o) => el("span", {}, pct(o.utilization), barCell(o.utilization)), true],
              ["Best day", (o) => pct(o.peak_day_utilization), true],
            ],
            ranked,
            { id: "ranking-table" },
          );
        }, { id: "ranking" }),
        panel("Under-used rooms (below 20%)", async () => {
          const params = { days: Math.min(366, spanDays()), to, threshold: 0.2, limit: 20 };
          const body = await api(`/v1/insights/underused?${query(params)}`);
          return [
            el("p", {}, `${int(body.rooms_below)} rooms below 20%: giving them up would save `, el("strong", { id: "saving" }, money(body.monthly_saving)), " a month."),
            el("p", {}, el("a", { href: `/v1/insights/underused?${query({ ...params, limit: 1000, format: "csv" })}`, download: "underused-rooms.csv", id: "csv" }, "Download the list as CSV")),
            table(
              "The costliest first",
              [
                ["Room", (r) => r.name],
                ["Office", (r) => officeName(r.office_id)],
                ["Utilization", (r) => pct(r.utilization), true],
                ["Monthly saving", (r) => money(r.monthly_saving), true],
              ],
              body.rooms,
              { id: "underused-table" },
            ),
          ];
        }, { id: "underused" }),
      ),
      panel("Booked but empty", async () => {
        const body = await api(`/v1/insights/ghost-bookings?${query({ days: Math.min(366, spanDays()), to, limit: 10, ...(s.office ? { office_id: s.office } : {}) })}`);
        if (!body.rooms.length) return el("p", {}, "No booked room in this period.");
        return table(
          `The ${body.rooms.length} of ${int(body.rooms_booked)} booked rooms most often empty`,
          [
            ["Room", (r) => r.name],
            ["Office", (r) => officeName(r.office_id)],
            ["Booked hours", (r) => (r.booked_minutes / 60).toFixed(1), true],
            ["Empty", (r) => el("span", {}, pct(r.ghost_share), barCell(r.ghost_share)), true],
            ["No-shows", (r) => `${int(r.no_shows)} of ${int(r.meetings)}`, true],
          ],
          body.rooms,
          { id: "ghosts-table" },
        );
      }, { id: "ghosts" }),
      panel("Seats against headcount", async () => {
        const body = await api(`/v1/insights/seats?${query({ days: Math.min(366, spanDays()), to, ...(s.office ? { office_id: s.office } : {}) })}`);
        if (!body.offices.length) return el("p", { class: "muted" }, "No headcount yet: import it (roomflow headcount import) or connect the HR system.");
        return [
          el("ul", { id: "seats-recommendations" }, body.offices.map((o) => el("li", {}, o.recommendation))),
          table(
            "Busiest day against headcount and seats",
            [
              ["Office", (o) => officeName(o.office_id)],
              ["People", (o) => int(o.headcount), true],
              ["Seats", (o) => int(o.seats), true],
              ["Seats per head", (o) => (o.seats_per_head ?? 0).toFixed(2), true],
              ["Busiest day present", (o) => `${int(o.peak_present)} (${pct(o.peak_share_of_headcount)})`, true],
              ["Average day present", (o) => pct(o.average_share_of_headcount), true],
              ["Seats that could go", (o) => int(o.seats_releasable), true],
            ],
            body.offices,
            { id: "seats-table" },
          ),
        ];
      }, { id: "seats" }),
    );
  } else {
    views.push(el("p", { class: "muted" }, "Rankings and under-used rooms are for analysts; ask your admin for the analyst role."));
  }
  const forecastOffice = s.office || inScope[0]?.office_id;
  if (forecastOffice) {
    views.push(
      panel(`Forecast: daily peak at ${officeName(forecastOffice)}`, async () => {
        const body = await api(`/v1/offices/${encodeURIComponent(forecastOffice)}/forecast?granularity=1d`);
        if (!body.forecast.length) return el("p", {}, "No forecast yet: it needs two weeks of history.");
        const cap = offices.find((o) => o.office_id === forecastOffice)?.capacity ?? null;
        const pts = body.forecast.map((p) => [Date.parse(p.from), p.expected]);
        const band = body.forecast.map((p) => [Date.parse(p.from), p.low, p.high]);
        return [
          lineChart({ label: `Forecast daily peak people at ${officeName(forecastOffice)} with its 95% interval, against capacity ${cap}`, series: [{ name: "expected peak people", points: pts }], band, limit: cap, format: int }),
          asTable(table("Forecast daily peak people", [["Day", (p) => when(p.from)], ["Expected", (p) => int(p.expected), true], ["95% low", (p) => int(p.low), true], ["95% high", (p) => int(p.high), true], ["Capacity", () => int(cap), true]], body.forecast, { id: "forecast-table" })),
        ];
      }, { id: "forecast" }),
    );
  }
  return views;
}

// ---- the tenant admin -------------------------------------------------------------

/** A secret to show once, above the keys, after the next render of the admin view. */
let notice = null;

async function viewAdmin() {
  const reload = () => go("#/admin", true);
  const act = async (what, fn) => {
    try {
      const result = await fn();
      say(what);
      return result;
    } catch (e) {
      say(`${what} failed: ${e.message}`, true);
      return null;
    }
  };
  const roleSelect = (value, onchange, id, withFollow = false, label = "Role") =>
    el("select", { id, onchange, "aria-label": label },
      withFollow ? el("option", { value: "" }, "as the identity provider says") : null,
      ["viewer", "analyst", "admin"].map((r) => el("option", { value: r, selected: r === value }, r)),
      withFollow ? el("option", { value: "none", selected: value === "none" }, "no access") : null);

  const users = panel("Users and roles", async () => {
    const body = await api("/v1/admin/users");
    if (!body.users.length) return el("p", {}, "Nobody has signed in yet.");
    return table(
      "Everyone who signed in; a role set here overrides the identity provider's",
      [
        ["Name", (u) => u.name || u.subject],
        ["E-mail", (u) => u.email],
        ["Role", (u) => (u.subject === me.subject.replace(/^user:/, "") ? `${u.role} (you)` :
          roleSelect(u.assigned ? u.role : "", async (e) => {
            await act(`Role of ${u.name || u.subject} set`, () => api(`/v1/admin/users/${encodeURIComponent(u.subject)}`, { method: "PUT", body: { role: e.target.value } }));
          }, `role-${u.subject}`, true, `Role of ${u.name || u.subject}`))],
        ["From the provider", (u) => u.idp_role],
        ["Last sign-in", (u) => when(u.last_sign_in)],
      ],
      body.users,
      { id: "users-table" },
    );
  }, { id: "users" });

  const shown = el("div", { id: "new-key" });
  const keys = panel("API keys", async () => {
    const body = await api("/v1/admin/apikeys");
    const name = el("input", { id: "key-name", required: true, maxlength: 100, placeholder: "e.g. BI dashboard" });
    const role = el("select", { id: "key-role", "aria-label": "Role" },
      ["viewer", "analyst", "admin", "ingest"].map((r) =>
        el("option", { value: r, selected: r === "viewer" }, r === "ingest" ? "ingest (a sensor gateway: sends readings only)" : r)));
    const sites = el("input", { id: "key-offices", placeholder: "e.g. lon, par (empty: any office)" });
    const sitesLabel = el("label", { hidden: true }, "Offices it sends readings of", sites);
    role.addEventListener("change", () => { sitesLabel.hidden = role.value !== "ingest"; });
    const form = el(
      "form",
      {
        class: "form",
        onsubmit: async (e) => {
          e.preventDefault();
          const offices = role.value === "ingest" ? sites.value.split(",").map((o) => o.trim()).filter(Boolean) : [];
          const made = await act("API key created", () => api("/v1/admin/apikeys", { method: "POST", body: { name: name.value, role: role.value, offices } }));
          if (made) {
            notice = el("p", { class: "secret", id: "key-secret" }, `New key ${made.key_id} (${made.role}): `, el("code", {}, made.key), " — copy it now; it is not shown again.");
            reload();
          }
        },
      },
      el("label", {}, "Name", name),
      el("label", {}, "Role", role),
      sitesLabel,
      el("button", { type: "submit", id: "create-key" }, "Create key"),
    );
    if (notice) {
      shown.replaceChildren(notice);
      notice = null;
    }
    return [
      form,
      shown,
      table(
        "Keys are kept as hashes only",
        [
          ["Id", (k) => el("code", {}, k.key_id)],
          ["Name", (k) => k.name],
          ["Role", (k) => (k.offices && k.offices.length ? `${k.role} (${k.offices.join(", ")})` : k.role)],
          ["Created", (k) => when(k.created_at)],
          ["Status", (k) => (k.revoked_at ? `revoked ${when(k.revoked_at)}` :
            el("button", {
              class: "danger", type: "button", id: `revoke-${k.key_id}`,
              onclick: async () => {
                if (!window.confirm(`Revoke key ${k.name}? Integrations using it stop working.`)) return;
                if (await act(`Key ${k.key_id} revoked`, () => api(`/v1/admin/apikeys/${encodeURIComponent(k.key_id)}`, { method: "DELETE" }))) reload();
              },
            }, "Revoke"))],
        ],
        body.keys,
        { id: "keys-table" },
      ),
    ];
  }, { id: "keys" });

  const tenantPanel = panel("Alerts", async () => {
    const t = await api("/v1/admin/tenant");
    const kind = el("select", { id: "target-kind" }, ["slack", "teams", "webhook"].map((k) => el("option", { value: k }, k)));
    const url = el("input", { id: "target-url", type: "url", required: true, placeholder: "https://hooks.slack.com/services/…", size: 40 });
    const results = el("div", { id: "test-results" });
    const rules = el("textarea", { id: "rules", rows: 4, cols: 40 }, t.alert_rules.join("\n"));
    return [
      t.alert_targets.length
        ? table("Where alerts go (addresses masked)", [
          ["Kind", (x) => x.kind],
          ["Address", (x) => x.url],
          ["State", (x) => (x.disabled ? "disabled after failures" : "active")],
          ["", (x) => el("button", {
            class: "danger", type: "button",
            onclick: async () => {
              if (window.confirm(`Remove ${x.url}?`) && (await act("Alert target removed", () => api(`/v1/admin/alerts/targets/${x.index}`, { method: "DELETE" })))) reload();
            },
          }, "Remove")],
        ], t.alert_targets, { id: "targets-table" })
        : el("p", {}, "No alert targets yet."),
      el("form", {
        class: "form",
        onsubmit: async (e) => {
          e.preventDefault();
          const added = await act("Alert target added", () => api("/v1/admin/alerts/targets", { method: "POST", body: { kind: kind.value, url: url.value } }));
          if (added) {
            if (added.signing_secret) notice = el("p", { class: "secret", id: "signing-secret" }, "Webhook signing secret: ", el("code", {}, added.signing_secret), " — shown once; the receiver checks x-roomflow-signature with it.");
            reload();
          }
        },
      }, el("label", {}, "Kind", kind), el("label", {}, "URL", url), el("button", { type: "submit", id: "add-target" }, "Add target")),
      el("p", {}, el("button", {
        type: "button", class: "quiet", id: "send-test", disabled: !t.alert_targets.length,
        onclick: async () => {
          const r = await act("Test sent", () => api("/v1/admin/alerts/test", { method: "POST" }));
          if (r) results.replaceChildren(table("What each target answered", [["Kind", (x) => x.kind], ["Address", (x) => x.url], ["Outcome", (x) => x.outcome]], r.targets));
        },
      }, "Send a test alert")),
      results,
      el("form", {
        class: "form",
        onsubmit: async (e) => {
          e.preventDefault();
          const list = rules.value.split("\n").map((r) => r.trim()).filter(Boolean);
          if (await act("Alert rules saved", () => api("/v1/admin/tenant", { method: "PATCH", body: { alert_rules: list } }))) reload();
        },
      }, el("label", {}, "Rules, one per line (e.g. capacity_breach, unusual_occupancy>=high/60, weekly_digest:0.2-0.8)", rules), el("button", { type: "submit" }, "Save rules")),
    ];
  }, { id: "alerts" });

  const settings = panel("Settings", async () => {
    const t = await api("/v1/admin/tenant");
    const name = el("input", { id: "display-name", value: t.display_name, maxlength: 100 });
    const industry = el("input", { id: "industry", value: t.industry });
    const retention = el("input", { id: "retention", type: "number", min: 1, value: t.retention_days });
    const breach = el("input", { id: "breach-at", type: "number", min: 50, max: 200, step: 1, value: Math.round((t.capacity_breach_at ?? 1) * 100) });
    const benchmarks = el("input", { id: "benchmarks", type: "checkbox", checked: !!t.benchmarks_opted_in_at });
    return [
      el("p", { class: "muted" }, `Tenant ${t.tenant}, tier ${t.tier}, region ${t.region}.`),
      el("form", {
        class: "form",
        onsubmit: async (e) => {
          e.preventDefault();
          const body = {
            display_name: name.value,
            industry: industry.value,
            retention_days: Number(retention.value),
            capacity_breach_at: Number(breach.value) / 100,
            benchmarks: benchmarks.checked,
          };
          if (await act("Settings saved", () => api("/v1/admin/tenant", { method: "PATCH", body }))) reload();
        },
      },
        el("label", {}, "Name", name),
        el("label", {}, "Industry", industry),
        el("label", {}, "Keep data (days)", retention),
        el("label", {}, "Capacity alerts from (% of seats)", breach),
        el("label", { class: "check" }, benchmarks, "Contribute to cross-tenant benchmarks (only cohorts of 5 or more tenants are shown, never one tenant's figures)"),
        el("button", { type: "submit" }, "Save")),
      t.benchmarks_opted_in_at ? el("p", { class: "muted" }, `Contributing to benchmarks since ${when(t.benchmarks_opted_in_at)}.`) : null,
    ];
  }, { id: "settings" });

  const changes = panel("Recent changes", async () => {
    const body = await api("/v1/admin/changes?limit=30");
    if (!body.changes.length) return el("p", {}, "No changes yet.");
    return table("Every write and sign-in is audited", [
      ["When", (c) => when(c.at)],
      ["Who", (c) => c.subject],
      ["What", (c) => c.change],
      ["Path", (c) => c.path],
      ["Status", (c) => c.status, true],
    ], body.changes, { id: "changes-table" });
  }, { id: "changes" });

  return [el("h1", {}, "Administration"), users, keys, tenantPanel, settings, changes];
}

// ---- sign-in, navigation ------------------------------------------------------------

// ---- ask: a question in plain language -----------------------------------------------

const EXAMPLES = [
  "How busy was London last week?",
  "Which offices were busiest last month?",
  "Which meeting rooms in EMEA were under 20% last month?",
  "When will London pass 80% at peak?",
  "Which rooms are booked but empty most often?",
];

/** The answer as the page shows it: the sentence, a question back's choices, the table
 * of its numbers, and how it was found (plan, confidence, the requests behind it). */
function showAnswer(body, ask) {
  const out = [el("p", { class: "answer", id: "answer-text" }, body.answer)];
  if (body.outcome === "clarify") {
    out.push(el("div", { class: "examples", role: "group", "aria-label": "Choose one" }, (body.options ?? []).map((o) =>
      o.ask_instead ? el("button", { type: "button", class: "quiet", onclick: () => ask(o.ask_instead) }, o.name) : el("span", {}, o.name))));
  }
  if (body.table) {
    const columns = body.table.columns.map((c, i) => [c, (row) => row[i], i > 0 && /^[\d.,% –-]+$/.test(body.table.rows[0]?.[i] ?? "")]);
    out.push(table("The numbers behind the answer", columns, body.table.rows, { id: "answer-table" }));
  }
  if (body.plan) {
    const confidence = body.confidence === undefined ? "" : `, confidence ${Math.round(body.confidence * 100)}%`;
    out.push(el("details", { id: "answer-how" },
      el("summary", {}, `How this was answered (${body.understood_by === "llm" ? "language model" : "built-in parser"}${confidence})`),
      (body.notes ?? []).length ? el("ul", {}, body.notes.map((n) => el("li", {}, n))) : null,
      el("pre", { tabindex: 0, "aria-label": "The plan" }, JSON.stringify(body.plan, null, 2)),
      el("p", {}, "Each number comes from these requests (open them to see the data):"),
      el("ul", { id: "answer-references" }, (body.references ?? []).map((r) => el("li", {}, el("a", { href: r.endpoint, target: "_blank", rel: "noopener" }, r.endpoint), ` – ${r.gives}`)))));
  }
  return out;
}

async function viewAsk(prefill) {
  const answer = el("section", { id: "answer", class: "card", "aria-live": "polite", "aria-label": "Answer" },
    el("p", { class: "muted" }, "Ask about utilization, comparisons, rankings, under-used rooms, busiest hours, forecasts, anomalies, bookings or seats."));
  const input = el("input", {
    type: "search", id: "question", name: "q", maxlength: 500, required: true, autocomplete: "off",
    placeholder: "e.g. Which meeting rooms in EMEA were under 20% last month?",
  });
  const ask = async (q) => {
    input.value = q;
    answer.setAttribute("aria-busy", "true");
    answer.replaceChildren(el("p", { class: "muted" }, "Looking it up…"));
    try {
      answer.replaceChildren(...showAnswer(await api(`/v1/ask?${query({ q })}`), ask));
    } catch (e) {
      answer.replaceChildren(el("p", {}, `The question could not be answered: ${e.message}`));
    }
    answer.removeAttribute("aria-busy");
    answer.setAttribute("data-answered", q);
  };
  const form = el("form", {
    class: "controls ask", role: "search", "aria-label": "Ask a question",
    onsubmit: (e) => { e.preventDefault(); const q = input.value.trim(); if (q) ask(q); },
  },
  el("h1", {}, "Ask"),
  el("label", { class: "grow" }, "Your question", input),
  el("button", { type: "submit", id: "ask-button" }, "Ask"));
  const examples = el("div", { class: "examples", role: "group", "aria-label": "Examples" },
    el("span", { class: "muted" }, "Try:"),
    EXAMPLES.map((q) => el("button", { type: "button", class: "quiet", onclick: () => ask(q) }, q)));
  if (prefill) setTimeout(() => ask(prefill));
  return [form, examples, answer];
}

function signIn() {
  $("#nav").replaceChildren();
  $("#who").replaceChildren();
  const next = location.hash || "#/";
  return [
    el(
      "div",
      { class: "signin" },
      el("h1", {}, "Sign in to roomflow"),
      el("p", {}, "Occupancy, utilization and forecasts of your organisation's offices."),
      el("p", {}, el("a", { class: "button", href: `/auth/login?${query({ next: `/${next}` })}`, id: "sign-in" }, "Sign in with your organisation's account")),
    ),
  ];
}

const VIEWS = [
  { path: "live", title: "Live", role: "viewer", render: (rest) => viewLive(rest) },
  { path: "portfolio", title: "Portfolio", role: "viewer", render: () => viewPortfolio() },
  { path: "ask", title: "Ask", role: "viewer", render: (rest) => viewAsk(rest) },
  { path: "admin", title: "Admin", role: "admin", render: () => viewAdmin() },
];
const RANK = { viewer: 0, analyst: 1, admin: 2 };

function chrome(current) {
  $("#nav").replaceChildren(
    ...VIEWS.filter((v) => RANK[me.role] >= RANK[v.role]).map((v) =>
      el("a", { href: `#/${v.path}`, "aria-current": v.path === current ? "page" : null }, v.title),
    ),
  );
  $("#who").replaceChildren(
    el("span", {}, `${me.name || me.subject} · ${me.tenant_name || me.tenant} `, el("span", { class: "role", id: "my-role" }, me.role)),
    el("button", {
      type: "button", id: "sign-out",
      onclick: async () => {
        await api("/auth/logout", { method: "POST" }).catch(() => null);
        closeLive();
        me = null;
        location.hash = "#/";
        render();
      },
    }, "Sign out"),
  );
}

let rendering = 0;
/** Renders the view of the hash; resolves once its frame (not every panel) is on screen. */
async function render() {
  const ticket = ++rendering;
  const started = performance.now();
  const view = $("#view");
  if (!me) {
    try {
      const answer = await api("/auth/me");
      me = answer.signed_in ? answer : null;
    } catch (e) {
      say(`roomflow is not reachable: ${e.message}`, true);
    }
    if (!me) {
      view.replaceChildren(...signIn());
      return;
    }
  }
  const [, path = "", rest] = location.hash.split("/");
  const allowed = VIEWS.filter((v) => RANK[me.role] >= RANK[v.role]);
  const chosen = allowed.find((v) => v.path === path) ?? (me.role === "viewer" ? allowed[0] : allowed[1]);
  if (chosen.path !== "live") closeLive();
  chrome(chosen.path);
  document.title = `roomflow · ${chosen.title}`;
  try {
    const content = await chosen.render(rest ? decodeURIComponent(rest) : undefined);
    if (ticket !== rendering) return;
    view.replaceChildren(...[content].flat(Infinity).filter(Boolean));
    view.setAttribute("data-view", chosen.path);
    performance.mark(`rendered:${chosen.path}`);
    view.setAttribute("data-rendered-ms", String(Math.round(performance.now() - started)));
  } catch (e) {
    if (e.status === 401) {
      me = null;
      view.replaceChildren(...signIn());
      return;
    }
    view.replaceChildren(el("p", {}, `This view could not load: ${e.message}`));
  }
}

/** Navigates to `hash`; `again` re-renders the current view. */
function go(hash, again = false) {
  if (location.hash === hash && again) return render();
  location.hash = hash;
  return Promise.resolve();
}

window.addEventListener("hashchange", () => {
  if (location.hash === "" || location.hash.startsWith("#/")) render();
});
document.addEventListener("click", (e) => {
  // The skip link focuses the content without touching the route in the hash.
  if (e.target.closest?.(".skip")) {
    e.preventDefault();
    $("#view").focus();
  }
});
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => render());
else render();
