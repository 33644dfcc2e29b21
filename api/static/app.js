// The fares web page: a map of the taxi zones (GET /v1/zones/map), zone names (GET /v1/zones), one quote
// (POST /v1/quotes) and, from the pickup, every zone coloured by the cheaper service (one POST /v1/quotes/batch).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const money = (x) => "$" + Number(x).toFixed(2);
const zonesByLabel = new Map();
const zonesById = new Map();
const state = { pickup: null, dropoff: null, focus: null, fullView: null, view: null, choropleth: null };

// ---- zones and the map -------------------------------------------------------------------------------------------

async function getJson(url, options) {
  const response = await fetch(url, options);
  const payload = await response.json();
  if (!response.ok) throw new Error(detailText(payload.detail) || response.statusText);
  return payload;
}

function detailText(detail) {
  return Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : String(detail || "");
}

const labelOf = (zone) => `${zone.zone_name} (${zone.borough})`;

async function loadZones() {
  const zones = await getJson("/v1/zones?limit=300");
  const list = $("zone-list");
  for (const zone of zones) {
    zonesByLabel.set(labelOf(zone).toLowerCase(), zone.zone_id);
    zonesById.set(zone.zone_id, { ...zone, ...(zonesById.get(zone.zone_id) || {}) });
    list.appendChild(Object.assign(document.createElement("option"), { value: labelOf(zone) }));
  }
}

async function loadMap() {
  const map = await getJson("/v1/zones/map");
  const svg = $("map");
  svg.setAttribute("viewBox", map.view_box);
  state.fullView = map.view_box.split(" ").map(Number);
  state.view = [...state.fullView];
  const group = document.createElementNS(SVG_NS, "g");
  for (const zone of map.zones) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", zone.path);
    path.setAttribute("class", "zone");
    path.dataset.id = zone.zone_id;
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = labelOf(zone);
    path.appendChild(title);
    group.appendChild(path);
    zonesById.set(zone.zone_id, { ...(zonesById.get(zone.zone_id) || {}), ...zone, path });
  }
  svg.appendChild(group);
  svg.addEventListener("click", (event) => {
    const id = Number(event.target.dataset && event.target.dataset.id);
    if (id) pickZone(id);
  });
  svg.addEventListener("mouseover", (event) => {
    const id = Number(event.target.dataset && event.target.dataset.id);
    if (id) describeZone(id);
  });
  svg.addEventListener("keydown", mapKey);
  svg.addEventListener("focus", () => {
    if (svg.matches(":focus-visible")) moveFocus(state.focus || state.pickup || 161); // keyboard, not a click
  });
  svg.addEventListener("blur", () => zonePath(state.focus)?.classList.remove("focused"));
  svg.addEventListener("wheel", (event) => { event.preventDefault(); zoom(event.deltaY < 0 ? 0.8 : 1.25, event); });
}

const zonePath = (id) => (id ? zonesById.get(id)?.path : null);

// The short verdict of a quote, as its answer says it: a service only where the quote names one.
function verdictWords(q) {
  if (q.answer === "about the same") return "about the same";
  return `${q.answer === "taxi" ? "taxi" : "Uber"} cheaper by ${money(q.savings)}`;
}

function describeZone(id) {
  const zone = zonesById.get(id);
  if (!zone) return;
  let text = labelOf(zone);
  const priced = state.choropleth && state.choropleth.get(id);
  if (priced) text += ` · taxi ${money(priced.taxi.fare)}, Uber ${money(priced.uber.fare)}: ${verdictWords(priced)}`;
  $("zone-info").textContent = text;
}

function pickZone(id) {
  if (!zonesById.get(id)) return;
  if (state.pickup === null || state.dropoff !== null) {
    setPlace("pickup", id);
    setPlace("dropoff", null);
    $("map-hint").innerHTML = 'Now click the <b class="do">drop-off</b>.';
    refreshChoropleth();
  } else {
    setPlace("dropoff", id);
    $("map-hint").innerHTML = 'Click again to start a new trip from a new <b class="pu">pickup</b>.';
    compare();
  }
}

function setPlace(role, id) {
  zonePath(state[role])?.classList.remove(role);
  state[role] = id;
  const zone = zonesById.get(id);
  $(role).value = zone ? labelOf(zone) : "";
  if (zone && zone.path) {
    zone.path.classList.add(role);
    zone.path.parentNode.appendChild(zone.path); // on top, so its outline shows whole
  }
}

// Keyboard: the map is one tab stop; arrow keys move to the nearest zone in that direction, Enter/Space picks it.
const DIRECTIONS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

function mapKey(event) {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    if (state.focus) pickZone(state.focus);
  } else if (DIRECTIONS[event.key]) {
    event.preventDefault();
    moveFocus(nearest(state.focus || 161, ...DIRECTIONS[event.key]));
  } else if (event.key === "+" || event.key === "=") {
    zoom(0.8);
  } else if (event.key === "-") {
    zoom(1.25);
  }
}

function nearest(fromId, dx, dy) {
  const from = zonesById.get(fromId);
  let best = fromId;
  let bestScore = Infinity;
  for (const [id, zone] of zonesById) {
    if (!zone.path || id === fromId) continue;
    const ax = zone.x - from.x;
    const ay = zone.y - from.y;
    const along = ax * dx + ay * dy;
    if (along <= 0) continue;
    const score = along + 2.5 * Math.abs(ax * dy - ay * dx);
    if (score < bestScore) [best, bestScore] = [id, score];
  }
  return best;
}

function moveFocus(id) {
  zonePath(state.focus)?.classList.remove("focused");
  state.focus = id;
  const path = zonePath(id);
  if (!path) return;
  path.classList.add("focused");
  path.parentNode.appendChild(path);
  describeZone(id);
}

function zoom(factor, event) {
  const [x, y, w, h] = state.view;
  const [fx, fy, fw, fh] = state.fullView;
  let cx = x + w / 2;
  let cy = y + h / 2;
  if (event && event.clientX !== undefined) {
    const box = $("map").getBoundingClientRect();
    cx = x + ((event.clientX - box.left) / box.width) * w;
    cy = y + ((event.clientY - box.top) / box.height) * h;
  } else if (!event && state.focus && zonesById.get(state.focus)?.path) {
    cx = zonesById.get(state.focus).x;
    cy = zonesById.get(state.focus).y;
  }
  const nw = Math.min(fw, Math.max(fw / 12, w * factor));
  const nh = (nw / fw) * fh;
  const nx = Math.min(Math.max(fx, cx - ((cx - x) / w) * nw), fx + fw - nw);
  const ny = Math.min(Math.max(fy, cy - ((cy - y) / h) * nh), fy + fh - nh);
  state.view = [nx, ny, nw, nh];
  $("map").setAttribute("viewBox", state.view.join(" "));
}

// ---- quotes ------------------------------------------------------------------------------------------------------

function place(text) {
  const id = zonesByLabel.get(text.trim().toLowerCase());
  return id === undefined ? { zone: text.trim() } : { zone_id: id };
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("result").hidden = true;
}

function drawBand(service, q, low, high) {
  const pct = (x) => `${(((x - low) / (high - low)) * 100).toFixed(2)}%`;
  const band = $(`${service}-band`);
  const bar = band.querySelector("i");
  bar.style.left = pct(q[service].low);
  bar.style.width = `calc(${pct(q[service].high)} - ${pct(q[service].low)})`;
  band.querySelector("b").style.left = pct(q[service].fare);
  band.setAttribute("aria-label", `${service}: likely ${money(q[service].low)} to ${money(q[service].high)}`);
  band.classList.toggle("cheaper", q.cheaper === service);
}

function showQuote(q) {
  $("error").hidden = true;
  const other = q.cheaper === "taxi" ? "Uber" : "the taxi";
  const name = q.cheaper === "taxi" ? "The yellow taxi" : "Uber";
  // "about the same" names no service: the fares are within $1 or 5%, or the data cannot tell (answer_reason says which)
  $("verdict").textContent =
    q.answer === "about the same"
      ? `About the same: ${q.answer_reason}`
      : `${name} is cheaper by ${money(q.savings)} than ${other}`;
  for (const service of ["taxi", "uber"]) {
    $(`${service}-fare`).textContent = money(q[service].fare);
    $(`${service}-range`).textContent = `likely ${money(q[service].low)} – ${money(q[service].high)}`;
    $(`${service}-card`).classList.toggle("cheaper", q.cheaper === service);
  }
  const low = Math.max(0, Math.min(q.taxi.low, q.uber.low) * 0.9);
  const high = Math.max(q.taxi.high, q.uber.high) * 1.05;
  drawBand("taxi", q, low, high);
  drawBand("uber", q, low, high);
  $("axis-low").textContent = money(low);
  $("axis-high").textContent = money(high);
  const sure = q.cheaper === "uber" ? q.p_uber_cheaper : 1 - q.p_uber_cheaper;
  // a stale Uber level whose likely move since spans the gap: the percentage holds only if Uber's prices stood still
  const staleWords = `but the Uber price level is ${q.uber_stale_months} months old and may have moved by more than the gap`;
  const words =
    q.answer === "about the same" && q.uber_stale_months > 0
      ? staleWords
      : sure >= 0.9 ? "very likely" : sure >= 0.7 ? "likely" : sure >= 0.6 ? "more likely than not" : "close to a toss-up";
  $("confidence").textContent =
    `How sure: ${Math.round(sure * 100)}% that ${q.cheaper === "taxi" ? "the taxi" : "Uber"} is cheaper (${words})`;
  $("meter-fill").style.width = `${Math.round(sure * 100)}%`;
  $("meter-fill").className = q.cheaper;
  const warnings = $("warnings");
  warnings.replaceChildren(...q.warnings.map((w) => Object.assign(document.createElement("li"), { textContent: w })));
  $("meta").textContent = `${q.pickup.zone_name} → ${q.dropoff.zone_name} at ${q.pickup_at.replace("T", " ")}` +
    ` · model ${q.model_version}, trained on ${q.trained_window.from} to ${q.trained_window.to}`;
  showSource(q.data_source, q.model_version);
  $("zone-info").textContent = `${q.pickup.zone_name} → ${q.dropoff.zone_name}: taxi ${money(q.taxi.fare)}, ` +
    `Uber ${money(q.uber.fare)}; ${verdictWords(q)}`;
  $("result").hidden = false;
  for (const role of ["pickup", "dropoff"]) {
    if (state[role] !== q[role].zone_id) setPlace(role, q[role].zone_id);
  }
}

async function compare(event) {
  if (event) event.preventDefault();
  const button = $("compare");
  button.disabled = true;
  try {
    const body = { pickup: place($("pickup").value), dropoff: place($("dropoff").value), pickup_at: $("pickup-at").value };
    const response = await fetch("/v1/quotes", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const payload = await response.json();
    if (response.ok) {
      const newPickup = payload.pickup.zone_id !== state.pickup;
      showQuote(payload);
      if (newPickup || !state.choropleth) refreshChoropleth();
    } else {
      showError(detailText(payload.detail));
    }
  } catch (err) {
    showError(`the server did not answer: ${err}`);
  } finally {
    button.disabled = false;
  }
}

// ---- the choropleth: from the pickup, which service is cheaper to every zone, and by how much ------------------------

const NEUTRAL = [238, 238, 232];
const TAXI = [232, 160, 0];
const UBER = [52, 84, 209];
const mix = (a, b, t) => `rgb(${a.map((v, i) => Math.round(v + (b[i] - v) * t)).join(",")})`;

async function refreshChoropleth() {
  const pickup = state.pickup;
  const when = $("pickup-at").value;
  if (!pickup || !when) return;
  const ids = [...zonesById.values()].filter((z) => z.path).map((z) => z.zone_id);
  let batch;
  try {
    batch = await getJson("/v1/quotes/batch", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        columns: { pickup_at: ids.map(() => when), pickup_zone_id: ids.map(() => pickup), dropoff_zone_id: ids },
      }),
    });
  } catch (err) {
    showError(`could not colour the map: ${err.message}`);
    return;
  }
  if (pickup !== state.pickup || when !== $("pickup-at").value) return; // a newer choice is on its way
  state.choropleth = new Map(batch.quotes.map((q) => [q.dropoff_zone_id, q]));
  const diffs = batch.quotes.map((q) => Math.abs(q.uber.fare - q.taxi.fare)).sort((a, b) => a - b);
  const top = Math.max(2, Math.ceil(diffs[Math.floor(diffs.length * 0.95)] || 2));
  // coloured by the answer, as the quote itself says it: a zone where the data cannot tell ("about the same": fares
  // close, bands overlapping, or a stale Uber level) stays neutral rather than showing whichever fare is lower
  let taxiWins = 0;
  let uberWins = 0;
  for (const zone of zonesById.values()) {
    if (!zone.path) continue;
    const q = state.choropleth.get(zone.zone_id);
    if (!q) {
      zone.path.style.fill = "";
      continue;
    }
    if (q.answer === "about the same") {
      zone.path.style.fill = mix(NEUTRAL, NEUTRAL, 0);
      continue;
    }
    const taxiCheaper = q.answer === "taxi";
    if (taxiCheaper) taxiWins += 1;
    else uberWins += 1;
    const diff = Math.abs(q.uber.fare - q.taxi.fare);
    zone.path.style.fill = mix(NEUTRAL, taxiCheaper ? TAXI : UBER, Math.min(1, diff / top));
  }
  const from = zonesById.get(pickup);
  $("legend-title").textContent = `From ${from.zone_name} at ${when.replace("T", " ")}: which is cheaper to each zone`;
  $("legend-taxi").textContent = `taxi cheaper by $${top}+`;
  $("legend-uber").textContent = `Uber cheaper by $${top}+`;
  $("legend-summary").textContent =
    `The taxi is cheaper to ${taxiWins} of ${batch.quotes.length} zones, Uber to ${uberWins}, ` +
    `about the same to ${batch.quotes.length - taxiWins - uberWins}.`;
  $("legend").hidden = false;
  $("map").classList.add("coloured");
}

// ---- the model's data source ---------------------------------------------------------------------------------------

function showSource(source, version) {
  if (!source) return;
  $("source").textContent = `Model ${version} learned from ${source.label}.`;
  $("banner").hidden = !source.synthetic;
  if (source.synthetic) {
    $("banner-text").textContent =
      `This model learned from ${source.label}. Quotes show how the page works, not what a ride costs.`;
  }
}

async function loadModel() {
  const model = await getJson("/v1/model");
  showSource(model.data_source, model.model_version);
}

function defaultTime() {
  // Now, as New York wall-clock time ("sv-SE" formats as YYYY-MM-DD HH:MM:SS).
  const text = new Date().toLocaleString("sv-SE", { timeZone: "America/New_York" });
  return text.replace(" ", "T").slice(0, 16);
}

function placeFromInput(role) {
  const id = zonesByLabel.get($(role).value.trim().toLowerCase());
  if (id === undefined || id === state[role]) return;
  setPlace(role, id);
  if (role === "pickup") refreshChoropleth();
}

$("pickup-at").value = defaultTime();
$("quote-form").addEventListener("submit", compare);
$("pickup").addEventListener("change", () => placeFromInput("pickup"));
$("dropoff").addEventListener("change", () => placeFromInput("dropoff"));
$("pickup-at").addEventListener("change", refreshChoropleth);
$("zoom-in").addEventListener("click", () => zoom(0.8));
$("zoom-out").addEventListener("click", () => zoom(1.25));
$("zoom-reset").addEventListener("click", () => zoom(100));
Promise.all([loadZones(), loadMap(), loadModel()]).catch((err) => showError(err.message || String(err)));
