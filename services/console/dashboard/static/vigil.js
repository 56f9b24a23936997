// Live refresh: every few seconds fetch this page again and swap each [data-live]
// region in place, so a page is never more than REFRESH_MS + one request stale.
// Regions holding a focused form field are left alone while someone types.
"use strict";
const REFRESH_MS = 2500;

async function refresh() {
  try {
    const response = await fetch(location.href, { credentials: "same-origin", headers: { "x-vigil-live": "1" } });
    if (response.redirected && new URL(response.url).pathname === "/login") {
      location.assign("/login");
      return;
    }
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of document.querySelectorAll("[data-live][id]")) {
      const next = fresh.getElementById(region.id);
      if (next && !region.contains(document.activeElement) && region.innerHTML !== next.innerHTML) {
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
