// Live refresh: every few seconds fetch this page again and swap each [data-live]
// region in place, so a page is never more than REFRESH_MS + one request stale.
// A region is left alone while someone types in one of its fields.
"use strict";
const REFRESH_MS = 2500;

function typingIn(region) {
  const active = document.activeElement;
  return active && region.contains(active) && active.matches("input, textarea, select");
}

async function refresh() {
  try {
    const response = await fetch(location.href, { credentials: "same-origin" });
    if (response.redirected && new URL(response.url).pathname === "/login") {
      location.assign("/login");
      return;
    }
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of document.querySelectorAll("[data-live][id]")) {
      const next = fresh.getElementById(region.id);
      if (next && !typingIn(region) && region.innerHTML !== next.innerHTML) {
        region.replaceWith(next);
      }
    }
    const stamp = document.getElementById("refreshed");
    if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    const stamp = document.getElementById("refreshed");
    if (stamp) stamp.textContent = "refresh failed: " + err;
  }
}

if (document.querySelector("[data-live]")) {
  setInterval(refresh, REFRESH_MS);
}

// Buttons that call the JSON API ([data-api-method], [data-api-url]); the session cookie
// goes along, and the CSRF header proves the call comes from one of our pages.
function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

async function callApi(method, url, body) {
  const init = { method, credentials: "same-origin", headers: { "x-csrf-token": csrfToken() } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch (err) { /* not JSON */ }
  return { ok: response.ok, status: response.status, data };
}

function problem(result) {
  const d = result.data;
  const detail = d && typeof d === "object" ? (d.detail || JSON.stringify(d)) : d;
  return `${result.status}: ${detail}`;
}

function say(id, text) {
  const out = document.getElementById(id);
  if (out) out.textContent = text;
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-api-url]");
  if (!button) return;
  event.preventDefault();
  button.disabled = true;
  const result = await callApi(button.dataset.apiMethod || "POST", button.dataset.apiUrl);
  const done = button.dataset.done || "done: " + button.textContent.trim();
  say("action-result", result.ok ? done : "failed: " + problem(result));
  await refresh();
});

// The rule editor: validate, preview (a dry run over recent history) and save.
const editor = document.getElementById("rule-editor");
if (editor) {
  editor.addEventListener("click", async (event) => {
    const action = event.target.dataset && event.target.dataset.editor;
    if (!action) return;
    let body;
    try {
      body = JSON.parse(editor.elements.body.value);
    } catch (err) {
      say("editor-result", "not valid JSON: " + err.message);
      return;
    }
    const name = editor.elements.name.value.trim();
    let result;
    if (action === "validate") {
      result = await callApi("POST", "/api/v1/rules/validate", { name, body });
      say("editor-result", !result.ok ? problem(result)
        : result.data.valid ? "valid" : "invalid: " + result.data.error);
    } else if (action === "preview") {
      const hours = Number(editor.elements.hours.value || 24);
      result = await callApi("POST", "/api/v1/rules/preview", { name, body, hours });
      if (!result.ok) { say("editor-result", problem(result)); return; }
      const p = result.data;
      const lines = p.transitions.map((t) => `${t.at}  ${t.state.padEnd(8)} ${t.tenant}/${t.service}/${t.check}  ${t.title}`);
      say("editor-result", `over the last ${hours} h (${p.source}): fired ${p.fired}, resolved ${p.resolved}\n` + lines.join("\n"));
    } else if (action === "save") {
      if (editor.dataset.mode === "new") {
        result = await callApi("POST", "/api/v1/rules", { name, body });
      } else {
        const version = editor.dataset.version ? Number(editor.dataset.version) : null;
        result = await callApi("PUT", "/api/v1/rules/" + encodeURIComponent(name), { body, version });
      }
      if (result.ok) { location.assign("/rules"); } else { say("editor-result", problem(result)); }
    }
  });
}

// "key=value key=value" matchers; null (after saying why) when one is not key=value.
function parseMatchers(text) {
  const matchers = {};
  for (const pair of text.trim().split(/\s+/)) {
    const [key, ...rest] = pair.split("=");
    if (!key || !rest.length) { say("action-result", `matcher "${pair}" is not key=value`); return null; }
    matchers[key] = rest.join("=");
  }
  return matchers;
}

// The maintenance form: weekly on the given days, or once from now for some hours.
const maintenanceForm = document.getElementById("maintenance-form");
if (maintenanceForm) {
  maintenanceForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = maintenanceForm.elements;
    const matchers = parseMatchers(f.matchers.value);
    if (!matchers) return;
    const days = f.days.value.trim().toLowerCase().split(/[\s,]+/).filter(Boolean);
    const hours = Number(f.hours.value);
    const body = { matchers, timezone: f.timezone.value.trim() || "UTC" };
    if (days.length) {
      Object.assign(body, { days, start: f.start.value, duration: `${hours}h` });
    } else {
      const now = new Date();
      body.starts_at = now.toISOString();
      body.ends_at = new Date(now.getTime() + hours * 3600 * 1000).toISOString();
    }
    const result = await callApi("POST", "/api/v1/maintenance", { name: f.id.value.trim(), body });
    say("action-result", result.ok ? "maintenance window added" : "failed: " + problem(result));
    if (result.ok) maintenanceForm.reset();
    await refresh();
  });
}

// The silence form: matchers, from now for some hours.
const silenceForm = document.getElementById("silence-form");
if (silenceForm) {
  silenceForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = silenceForm.elements;
    const matchers = parseMatchers(f.matchers.value);
    if (!matchers) return;
    const now = new Date();
    const ends = new Date(now.getTime() + Number(f.hours.value) * 3600 * 1000);
    const body = {
      matchers, starts_at: now.toISOString(), ends_at: ends.toISOString(),
      created_by: silenceForm.dataset.createdBy, comment: f.comment.value,
    };
    const result = await callApi("POST", "/api/v1/silences", { name: f.id.value.trim(), body });
    say("action-result", result.ok ? "silence added" : "failed: " + problem(result));
    if (result.ok) silenceForm.reset();
    await refresh();
  });
}
