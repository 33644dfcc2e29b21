// The fares web page: zone names from GET /v1/zones, a quote from POST /v1/quotes.
"use strict";

const zonesByLabel = new Map();
const $ = (id) => document.getElementById(id);
const money = (x) => "$" + Number(x).toFixed(2);

async function loadZones() {
  const response = await fetch("/v1/zones?limit=300");
  if (!response.ok) {
    showError((await response.json()).detail || "zones are not available yet");
    return;
  }
  const list = $("zone-list");
  for (const zone of await response.json()) {
    const label = `${zone.zone_name} (${zone.borough})`;
    zonesByLabel.set(label.toLowerCase(), zone.zone_id);
    const option = document.createElement("option");
    option.value = label;
    list.appendChild(option);
  }
}

function place(text) {
  const id = zonesByLabel.get(text.trim().toLowerCase());
  return id === undefined ? { zone: text.trim() } : { zone_id: id };
}

function showError(detail) {
  const message = Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : String(detail);
  $("error").textContent = message;
  $("error").hidden = false;
  $("result").hidden = true;
}

function showQuote(q) {
  $("error").hidden = true;
  const other = q.cheaper === "taxi" ? "Uber" : "the taxi";
  const name = q.cheaper === "taxi" ? "The yellow taxi" : "Uber";
  $("verdict").textContent = `${name} is cheaper by ${money(q.savings)} than ${other}`;
  for (const service of ["taxi", "uber"]) {
    $(`${service}-fare`).textContent = money(q[service].fare);
    $(`${service}-range`).textContent = `likely ${money(q[service].low)} – ${money(q[service].high)}`;
    $(`${service}-card`).classList.toggle("cheaper", q.cheaper === service);
  }
  $("confidence").textContent = `Chance Uber is cheaper: ${Math.round(q.p_uber_cheaper * 100)}%`;
  const warnings = $("warnings");
  warnings.replaceChildren(...q.warnings.map((w) => Object.assign(document.createElement("li"), { textContent: w })));
  $("meta").textContent = `${q.pickup.zone_name} → ${q.dropoff.zone_name} at ${q.pickup_at.replace("T", " ")}` +
    ` · model ${q.model_version}, trained on ${q.trained_window.from} to ${q.trained_window.to}`;
  $("result").hidden = false;
}

async function compare(event) {
  event.preventDefault();
  const button = $("compare");
  button.disabled = true;
  try {
    const body = { pickup: place($("pickup").value), dropoff: place($("dropoff").value), pickup_at: $("pickup-at").value };
    const response = await fetch("/v1/quotes", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const payload = await response.json();
    if (response.ok) showQuote(payload); else showError(payload.detail);
  } catch (err) {
    showError(`the server did not answer: ${err}`);
  } finally {
    button.disabled = false;
  }
}

function defaultTime() {
  // Now, as New York wall-clock time ("sv-SE" formats as YYYY-MM-DD HH:MM:SS).
  const text = new Date().toLocaleString("sv-SE", { timeZone: "America/New_York" });
  return text.replace(" ", "T").slice(0, 16);
}

$("pickup-at").value = defaultTime();
$("quote-form").addEventListener("submit", compare);
loadZones();
