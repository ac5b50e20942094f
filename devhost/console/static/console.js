/* The 10KC console: plays the web app against the local service. Plain JavaScript, no build step.
   Every call to the service goes through /console/api/... (the console's server adds the caller
   token); calls to the sandbox go through the console's own routes (/console/sandbox/...). */
"use strict";
(function () {
  const HOUR_PX = 26;
  const LOG_LIMIT = 200;
  const POLL_MS = 2000;
  const PALETTE = ["#2f6fb0", "#b0562f", "#2f8f5b", "#8a3fa8", "#a8893f", "#3f8fa8"];
  const REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 302: "Found", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
    410: "Gone", 412: "Precondition Failed", 413: "Payload Too Large", 422: "Unprocessable Content",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"};

  const state = {dir: null, tenant: null, find: null, slots: [], booking: null, calendars: null,
    cursor: null, polling: false, consentPoll: 0, followPoll: 0, logged: 0};

  // ----- small helpers -----
  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child !== null && child !== undefined) node.append(child.nodeType ? child : String(child));
    }
    return node;
  }
  function say(id, text, kind) {
    const node = $(id);
    node.textContent = text || "";
    node.classList.toggle("bad", kind === "bad");
    node.classList.toggle("good", kind === "good");
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const errorText = (answer) => (answer && answer.error ? `${answer.error.code}: ${answer.error.message}` : "");

  // ----- time, in any zone, with the browser's Intl -----
  const formats = new Map();
  function fmt(zone, options) {
    const key = zone + JSON.stringify(options);
    if (!formats.has(key)) formats.set(key, new Intl.DateTimeFormat("en-GB", {timeZone: zone, ...options}));
    return formats.get(key);
  }
  function local(date, zone) {
    const parts = {};
    for (const p of fmt(zone, {year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
      minute: "2-digit", hourCycle: "h23"}).formatToParts(date)) parts[p.type] = p.value;
    const hour = Number(parts.hour) % 24;
    return {date: `${parts.year}-${parts.month}-${parts.day}`, minutes: hour * 60 + Number(parts.minute)};
  }
  const clock = (date, zone) => fmt(zone, {hour: "2-digit", minute: "2-digit", hourCycle: "h23"}).format(date);
  const dayName = (date, zone) => fmt(zone, {weekday: "short", day: "numeric", month: "short"}).format(date);
  const span = (start, end, zone) => `${dayName(start, zone)} ${clock(start, zone)}–${clock(end, zone)}`;
  function addDays(isoDate, days) {
    const d = new Date(isoDate + "T12:00:00Z");
    d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
  }

  // ----- the page's choices -----
  const org = () => $("org").value.trim();
  const tenantId = () => $("tenant").value;
  const tenantInfo = () => state.dir.tenants.find((t) => t.tenantId === tenantId());
  const mode = () => document.querySelector("input[name=mode]:checked").value;
  const person = (mail) => (tenantInfo().users.find((u) => u.mail === mail) || {mail, displayName: mail});
  const firstName = (mail) => person(mail).displayName.split(" ")[0];

  // ----- calls, each kept for the developer -----
  function exchangeText(x) {
    const lines = [`${x.method} ${x.url}`];
    for (const [name, value] of Object.entries(x.headers || {})) lines.push(`${name}: ${value}`);
    if (x.body !== undefined && x.body !== null) lines.push("", JSON.stringify(x.body, null, 2));
    lines.push("", `→ ${x.status} ${REASONS[x.status] || ""}`.trimEnd());
    for (const [name, value] of Object.entries(x.answerHeaders || {})) lines.push(`${name}: ${value}`);
    if (x.answer !== undefined && x.answer !== null && x.answer !== "") {
      lines.push("", typeof x.answer === "string" ? x.answer : JSON.stringify(x.answer, null, 2));
    }
    return lines.join("\n");
  }
  function record(x, section) {
    const text = exchangeText(x);
    const title = `${x.method} ${x.url.replace(/\?.*$/, "")} → ${x.status}`;
    if (section) {
      const box = $(section + "-exchange");
      box.querySelector("summary").textContent = `Request and answer: ${title}`;
      box.querySelector("pre").textContent = text;
    }
    const list = $("log-list");
    state.logged += 1;
    list.prepend(el("li", {}, el("details", {}, el("summary", {text: `#${state.logged} ${title}`}),
      el("pre", {text}))));
    while (list.children.length > LOG_LIMIT) list.lastElementChild.remove();
  }
  async function readAnswer(response) {
    const text = await response.text();
    try { return text ? JSON.parse(text) : null; } catch (e) { return text; }
  }
  // The service's API, as the web app calls it.
  async function api(method, path, {body, headers = {}, section = null, quiet = false} = {}) {
    const sent = {"X-Organization-Id": org(), ...headers};
    if (body !== undefined) sent["Content-Type"] = "application/json";
    const response = await fetch("/console/api" + path, {method, headers: {"X-Console": "1", ...sent},
      body: body === undefined ? undefined : JSON.stringify(body)});
    const answer = await readAnswer(response);
    const answerHeaders = {};
    for (const name of ["x-request-id", "retry-after", "etag", "location"]) {
      if (response.headers.get(name)) answerHeaders[name] = response.headers.get(name);
    }
    const exchange = {method, url: state.dir.serviceUrl + "/api" + path, body,
      headers: {"Authorization": "Bearer <the 10KC web app's token: added by the console's server>", ...sent},
      status: response.status, answerHeaders, answer};
    if (!quiet) record(exchange, section);
    return {status: response.status, json: answer, exchange, headers: response.headers};
  }
  // The console's own routes (the sandbox, the shortcut, the page's data).
  async function consoleCall(method, path, body, {section = null, shown = null} = {}) {
    const response = await fetch(path, {method, headers: {"X-Console": "1", "X-Organization-Id": org(),
      ...(body === undefined ? {} : {"Content-Type": "application/json"})},
    body: body === undefined ? undefined : JSON.stringify(body)});
    const answer = await readAnswer(response);
    if (shown) {
      record({method: shown.method || method, url: shown.url, body: shown.body === undefined ? body : shown.body,
        headers: shown.headers || {}, status: response.status, answer}, section);
    }
    return {status: response.status, json: answer};
  }

  // ----- 1. connect -----
  async function refreshTenant({quiet = false} = {}) {
    const r = await api("GET", `/tenants/${tenantId()}`, {section: quiet ? null : "connect", quiet});
    if (r.status === 200) {
      state.tenant = r.json;
      const t = r.json;
      const members = t.mode === "delegated" ? ` · ${t.connectedUsers} member(s) connected` : "";
      say("tenant-status", `Tenant ${tenantInfo().displayName}: ${t.status} · mode ${t.mode}${members} · ` +
        `organization ${t.organizationId}`, t.status === "enabled" ? "good" : null);
      document.querySelector(`input[name=mode][value=${t.mode}]`).checked = true;
    } else if (r.status === 404) {
      state.tenant = null;
      say("tenant-status", `Tenant ${tenantInfo().displayName}: not connected — the service knows no tenant ` +
        `${tenantId()} for organization ${org()} yet. Connect it below.`);
    } else {
      say("tenant-status", `The service answered ${r.status}: ${errorText(r.json)}`, "bad");
    }
    $("members").hidden = !(state.tenant && state.tenant.mode === "delegated" && state.tenant.status === "enabled");
    if (!$("members").hidden) refreshMembers();
    startChanges();
    return r;
  }

  async function ensureRegistered() {
    if (state.tenant && state.tenant.mode === mode()) return true;
    const body = {mode: mode(), organizationName: `${tenantInfo().displayName} on 10KC`};
    const r = await api("PUT", `/tenants/${tenantId()}`, {body, section: "connect"});
    if (r.status !== 200 && r.status !== 201) {
      say("tenant-status", `Could not register the tenant: ${r.status} ${errorText(r.json)}`, "bad");
      return false;
    }
    state.tenant = r.json;
    return true;
  }

  async function realConsent(kind, account, linkId, statusId) {
    if (!state.dir.returnUrl) {
      say(statusId, "The service takes no returnUrl: its setting ALLOWED_RETURN_ORIGINS is empty.", "bad");
      return;
    }
    if (!(await ensureRegistered())) return;
    const body = {kind, returnUrl: state.dir.returnUrl, loginHint: kind === "user" ? account : null};
    const r = await api("POST", `/tenants/${tenantId()}/consent`, {body, section: "connect"});
    if (r.status !== 201) {
      say(statusId, `No link: ${r.status} ${errorText(r.json)}`, "bad");
      return;
    }
    const link = $(linkId);
    link.href = r.json.redirectUrl;
    link.hidden = false;
    say(statusId, `Link ready (valid until ${new Date(r.json.expiresAt).toLocaleTimeString()}). Open it, pick ` +
      `${account}, Accept. This page follows the consent request ${r.json.consentRequestId}.`);
    followConsent(r.json.consentRequestId, statusId);
  }

  async function followConsent(id, statusId) {
    const mine = ++state.consentPoll;
    for (let i = 0; i < 450 && mine === state.consentPoll; i++) {
      await sleep(POLL_MS);
      const r = await api("GET", `/tenants/${tenantId()}/consent/${id}`, {quiet: true});
      if (r.status === 200 && r.json.status !== "pending") {
        record(r.exchange, "connect");
        const reason = r.json.reason ? ` (${r.json.reason})` : "";
        say(statusId, `Consent ${r.json.status}${reason}.`, r.json.status === "completed" ? "good" : "bad");
        await refreshTenant();
        return;
      }
    }
  }

  async function shortcut(kind, account, stepsId, statusId) {
    if (!(await ensureRegistered())) return;
    const steps = $(stepsId);
    steps.replaceChildren(el("li", {text: "Working…"}));
    const r = await consoleCall("POST", "/console/shortcut/consent", {tenantId: tenantId(), kind, account});
    steps.replaceChildren();
    if (r.status !== 200) {
      steps.append(el("li", {class: "bad", text: `The shortcut failed: ${errorText(r.json)}`}));
      return;
    }
    for (const x of r.json.exchanges) {
      record({method: x.method, url: state.dir.serviceUrl + x.path, body: x.body, status: x.status, answer: x.answer,
        headers: {"Authorization": "Bearer <added by the console's server>", "X-Organization-Id": x.organization}},
      "connect");
    }
    const first = r.json.exchanges[0];
    steps.append(el("li", {text: `The console asked the service for a ${kind} consent link: POST …/consent → ` +
      `${first.status}`}));
    for (const s of r.json.steps) {
      const to = s.to ? ` → ${s.to}` : "";
      const what = s.note ? ` — ${s.note}` : (s.title ? ` — “${s.title}”` : "");
      steps.append(el("li", {text: `${s.method} ${s.url} (${s.by}) → ${s.status}${to}${what}`}));
    }
    if (r.json.page) {
      const ok = r.json.page.status === 200;
      steps.append(el("li", {class: ok ? "good" : "bad",
        text: `The service's page: ${r.json.page.status} “${r.json.page.title}”`}));
    } else {
      steps.append(el("li", {class: "bad", text: `No link: ${errorText(first.answer)}`}));
    }
    if (r.json.consent) {
      const c = r.json.consent;
      say(statusId, `Consent ${c.status}${c.reason ? ` (${c.reason})` : ""}.`, c.status === "completed" ? "good" : "bad");
    }
    await refreshTenant({quiet: true});
  }

  async function refreshMembers() {
    const mail = $("member").value;
    const one = await api("GET", `/tenants/${tenantId()}/users/${encodeURIComponent(mail)}`, {quiet: true});
    if (one.status === 200) {
      say("member-status", `${mail}: ${one.json.status}`, one.json.status === "connected" ? "good" : null);
    }
    const all = await api("GET", `/tenants/${tenantId()}/users?limit=100`, {quiet: true});
    if (all.status === 200) {
      const names = all.json.users.map((u) => `${u.email} (${u.status})`);
      $("members-list").textContent = names.length ? `Members the service knows: ${names.join(", ")}` :
        "No member has connected yet.";
    }
  }

  async function disconnect() {
    const r = await api("DELETE", `/tenants/${tenantId()}`, {section: "connect"});
    say("tenant-status", r.status === 204 ? "Disconnected." : `${r.status} ${errorText(r.json)}`,
      r.status === 204 ? null : "bad");
    await refreshTenant({quiet: true});
  }

  // ----- the week, drawn -----
  function isBusy(e) {
    return !isGone(e) && ["busy", "oof", "unknown", "tentative"].includes(e.showAs);
  }
  const isGone = (e) => e.isCancelled || e.response === "declined";

  function place(start, end, day, zone) {
    const dayStart = new Date(day.start), dayEnd = new Date(day.end);
    const s = start < dayStart ? dayStart : start, e = end > dayEnd ? dayEnd : end;
    if (s >= e) return null;
    const top = s.getTime() === dayStart.getTime() ? 0 : local(s, zone).minutes;
    let bottom = e.getTime() === dayEnd.getTime() ? 1440 : local(e, zone).minutes;
    if (bottom <= top) bottom = 1440;
    return {top: top * HOUR_PX / 60, height: Math.max(2, (bottom - top) * HOUR_PX / 60)};
  }
  function block(cls, spot, label, text) {
    const node = el("div", {class: cls, title: label}, text ? el("span", {class: "txt", text}) : null);
    node.style.top = spot.top + "px";
    node.style.height = spot.height + "px";
    return node;
  }
  function mergeSlots(slots) {
    const ranges = [];
    for (const s of slots) {
      const start = new Date(s.start), end = new Date(s.end);
      const last = ranges[ranges.length - 1];
      if (last && start <= last.end) {
        if (end > last.end) last.end = end;
        last.slots.push(s);
      } else ranges.push({start, end, slots: [s]});
    }
    return ranges;
  }

  /* One week, one lane per person (their working hours behind their calendar), and in "find" mode
     a last lane with the slots free for everyone. */
  function drawWeek(container, wk, {slots = null, participants = [], bookingId = null, picked = null} = {}) {
    const zone = wk.zone;
    const lanes = wk.people.length + (slots ? 1 : 0);
    const status = Object.fromEntries(participants.map((p) => [p.email.toLowerCase(), p]));
    const legend = el("ul", {class: "legend", "aria-label": "Whose lane is whose"});
    wk.people.forEach((p, i) => {
      const st = status[p.email];
      const away = st && st.status !== "ok" ? ` — ${st.status}${st.reason ? ` (${st.reason})` : ""}` : "";
      legend.append(el("li", {}, el("span", {class: "swatch", "data-lane": i % PALETTE.length}),
        `${p.displayName}${p.timeZone ? ` · works in ${p.timeZone}` : ""}${away}`));
    });
    if (slots) legend.append(el("li", {}, el("span", {class: "swatch free"}), "free for everyone (the service's slots)"));
    legend.append(el("li", {}, el("span", {class: "swatch work"}), "working hours"),
      el("li", {}, el("span", {class: "swatch busy"}), "busy"),
      el("li", {}, el("span", {class: "swatch tentative"}), "tentative"),
      el("li", {}, el("span", {class: "swatch gone"}), "declined / cancelled"));
    if (bookingId) legend.append(el("li", {}, el("span", {class: "swatch booked"}), "this booking"));

    const grid = el("div", {class: "week", role: "group",
      "aria-label": `Week of ${dayName(new Date(wk.days[0].start), zone)} in ${zone}`});
    grid.style.setProperty("--lanes", lanes);
    grid.append(el("div", {class: "corner", title: zone, text: zone.split("/").pop().replace(/_/g, " ")}));
    for (const day of wk.days) {
      const initials = wk.people.map((p, i) => el("span", {"data-lane": i % PALETTE.length, text: initialsOf(p)}));
      if (slots) initials.push(el("span", {class: "all", text: "all"}));
      grid.append(el("div", {class: "day-head"}, el("div", {text: dayName(new Date(day.start), zone)}),
        el("div", {class: "lane-heads", "aria-hidden": "true"}, initials)));
    }
    const hours = el("div", {class: "hours", "aria-hidden": "true"});
    for (let h = 0; h < 24; h++) {
      const mark = el("div", {text: `${String(h).padStart(2, "0")}:00`});
      mark.style.top = h * HOUR_PX + "px";
      hours.append(mark);
    }
    grid.append(hours);
    const freeRanges = slots ? mergeSlots(slots) : [];
    for (const day of wk.days) {
      const column = el("div", {class: "day"});
      column.style.height = 24 * HOUR_PX + "px";
      wk.people.forEach((p, i) => {
        const lane = el("div", {class: "lane", "data-lane": i % PALETTE.length, "aria-hidden": "true"});
        lane.style.left = (100 * i / lanes) + "%";
        lane.style.width = (100 / lanes) + "%";
        const st = status[p.email];
        if ((st && st.status !== "ok") || p.calendar !== "ok") lane.classList.add("unavailable");
        for (const w of p.working) {
          const spot = place(new Date(w.start), new Date(w.end), day, zone);
          if (spot) lane.append(block("work", spot, `${p.displayName} works`));
        }
        for (const e of p.events) {
          const spot = place(new Date(e.start), new Date(e.end), day, zone);
          if (!spot) continue;
          const kind = isGone(e) ? "gone" : (e.showAs === "tentative" ? "tentative" :
            (isBusy(e) ? "busy" : "freeish"));
          const mine = bookingId && e.bookingId === bookingId ? " booked" : "";
          const what = bookingId ? e.subject : e.showAs;
          const note = e.response === "declined" ? " (declined)" : (e.isCancelled ? " (cancelled)" : "");
          lane.append(block(`ev ${kind}${mine}`, spot,
            `${p.displayName}: ${what}${note}, ${span(new Date(e.start), new Date(e.end), zone)}`,
            bookingId ? e.subject : ""));
        }
        column.append(lane);
      });
      if (slots) {
        const lane = el("div", {class: "lane all-lane"});
        lane.style.left = (100 * wk.people.length / lanes) + "%";
        lane.style.width = (100 / lanes) + "%";
        for (const range of freeRanges) {
          const spot = place(range.start, range.end, day, zone);
          if (!spot || local(range.start, zone).date !== day.date) continue;
          const label = `Free for everyone ${span(range.start, range.end, zone)}: pick its first slot`;
          const button = el("button", {type: "button", class: "free", "aria-label": label, title: label,
            onclick: () => pickSlot(state.slots.indexOf(range.slots[0]), {focus: true})});
          button.style.top = spot.top + "px";
          button.style.height = spot.height + "px";
          lane.append(button);
        }
        column.append(lane);
      }
      if (picked) {
        const spot = place(new Date(picked.start), new Date(picked.end), day, zone);
        if (spot) column.append(block("picked", spot, `Picked ${span(new Date(picked.start), new Date(picked.end), zone)}`));
      }
      grid.append(column);
    }
    container.replaceChildren(legend, el("div", {class: "week-frame"}, grid),
      weekAsText(wk, {slots: freeRanges, bookingId}));
  }
  function initialsOf(p) {
    return p.displayName.split(/\s+/).map((w) => w[0]).join("").slice(0, 2).toUpperCase();
  }
  function weekAsText(wk, {slots, bookingId}) {
    const zone = wk.zone;
    const list = el("ul", {});
    for (const p of wk.people) {
      const shown = p.events.filter((e) => isBusy(e) || isGone(e) || (bookingId && e.bookingId === bookingId));
      const items = shown.map((e) => {
        const tag = bookingId && e.bookingId === bookingId ? " [this booking]" : "";
        const note = e.response === "declined" ? " (declined)" : (e.isCancelled ? " (cancelled)" : "");
        return `${span(new Date(e.start), new Date(e.end), zone)} ${bookingId ? e.subject : e.showAs}${note}${tag}`;
      });
      list.append(el("li", {"data-person": p.email},
        `${p.displayName}: ${items.length ? items.join("; ") : "nothing busy this week"}`));
    }
    if (slots && slots.length) {
      list.append(el("li", {}, `Free for everyone: ${slots.map((r) => span(r.start, r.end, zone)).join("; ")}`));
    }
    return el("details", {class: "as-text"}, el("summary", {text: "The week as text"}), list);
  }

  // ----- 2. find -----
  async function loadWeek(people, startDay, zone) {
    const query = new URLSearchParams({tenant: tenantId(), people: people.join(","), start: startDay, zone});
    const r = await consoleCall("GET", `/console/data/week?${query}`);
    if (r.status !== 200) throw new Error(errorText(r.json) || `the console answered ${r.status}`);
    return r.json;
  }
  const chosenAttendees = () => Array.from(document.querySelectorAll("#attendees input:checked"), (i) => i.value);

  async function findTime() {
    const organizer = $("organizer").value, attendees = chosenAttendees(), zone = $("zone").value;
    if (!attendees.length) { say("find-status", "Pick at least one attendee.", "bad"); return; }
    say("find-status", "Asking the service…");
    let wk;
    try {
      wk = await loadWeek([organizer, ...attendees], $("week-start").value, zone);
    } catch (error) {
      say("find-status", `Could not read the calendars: ${error.message}`, "bad");
      return;
    }
    const body = {organizer, attendees, start: wk.start, end: wk.end, durationMinutes: Number($("duration").value),
      timeZone: zone, slotStepMinutes: 15, maxSlots: 500, respectWorkingHours: $("working-hours").checked};
    const r = await api("POST", `/tenants/${tenantId()}/availability`, {body, section: "find"});
    if (r.status !== 200) {
      say("find-status", `The service answered ${r.status}: ${errorText(r.json)}`, "bad");
      return;
    }
    state.find = {wk, answer: r.json, body};
    state.slots = r.json.slots;
    const n = r.json.slots.length;
    const names = [organizer, ...attendees].map(firstName).join(", ");
    const why = r.json.emptyReason ? ` (${r.json.emptyReason})` : "";
    say("find-status", n ? `${n} free slot${n === 1 ? "" : "s"} of ${body.durationMinutes} min for ${names} ` +
      `(${r.json.mode} mode, shown in ${zone}); the first: ${span(new Date(r.json.slots[0].start),
        new Date(r.json.slots[0].end), zone)}.` : `No common free time${why}.`, n ? "good" : "bad");
    fillSlots();
    pickSlot(n ? 0 : -1);
  }

  function fillSlots() {
    const select = $("slot"), zone = state.find.wk.zone;
    select.replaceChildren();
    let group = null, label = "";
    state.slots.forEach((s, i) => {
      const start = new Date(s.start), end = new Date(s.end);
      const day = dayName(start, zone);
      if (day !== label) { label = day; group = el("optgroup", {label: day}); select.append(group); }
      group.append(el("option", {value: String(i), text: `${day} ${clock(start, zone)}–${clock(end, zone)}`}));
    });
    $("pick").hidden = !state.slots.length;
    if (!$("subject").value) {
      const b = state.find.body;
      $("subject").value = `Mentoring: ${[b.organizer, ...b.attendees].map(firstName).join(" / ")}`;
    }
  }

  // The grid is drawn again around the pick; a pick from the grid moves the focus to the slot's
  // choice, the next step, so a keyboard user is not left on a button that no longer exists.
  function pickSlot(index, {focus = false} = {}) {
    if (index >= 0) $("slot").value = String(index);
    const picked = index >= 0 ? state.slots[index] : null;
    drawWeek($("find-week"), state.find.wk, {slots: state.slots, participants: state.find.answer.participants,
      picked});
    updateRescheduleButton();
    if (focus) $("slot").focus();
  }

  // ----- 3. the booking -----
  function updateRescheduleButton() {
    $("reschedule").hidden = !(state.booking && state.booking.status === "confirmed");
  }

  async function book() {
    const slot = state.slots[Number($("slot").value)];
    const b = state.find.body;
    const body = {organizer: b.organizer, attendees: b.attendees, start: slot.start, end: slot.end,
      timeZone: b.timeZone, subject: $("subject").value, onlineMeeting: $("online").checked, checkAvailability: true};
    const key = uuid();
    say("find-status", "Booking…");
    const r = await withRetries(() => api("POST", `/tenants/${tenantId()}/bookings`,
      {body, headers: {"Idempotency-Key": key}, section: "find"}), "find-status");
    if (r.status !== 201 && r.status !== 200) {
      say("find-status", `Not booked: ${r.status} ${errorText(r.json)}`, "bad");
      return;
    }
    say("find-status", `Booked ${r.json.subject}: ${span(new Date(r.json.start), new Date(r.json.end), b.timeZone)}.`,
      "good");
    showBooking(r.json);
    followSubscription();
    await loadCalendars();
    $("booking").scrollIntoView({behavior: "smooth", block: "start"});
  }

  // 503 booking_outcome_unknown / idempotency_in_progress: the same key again after Retry-After.
  async function withRetries(call, statusId) {
    let r = await call();
    for (let i = 0; i < 3 && (r.status === 503 || (r.status === 409 && r.json && r.json.error &&
      r.json.error.code === "idempotency_in_progress")); i++) {
      const wait = Math.min(10, Number(r.headers.get("retry-after") || 2));
      say(statusId, `${errorText(r.json)} — trying again with the same Idempotency-Key in ${wait} s`);
      await sleep(wait * 1000);
      r = await call();
    }
    return r;
  }

  function showBooking(booking) {
    if (state.booking && state.booking.bookingId === booking.bookingId && booking.version < state.booking.version) {
      return; // an older snapshot than the one shown
    }
    state.booking = booking;
    sessionStorage.setItem("tenkc-console-booking", JSON.stringify({tenant: tenantId(), id: booking.bookingId}));
    const zone = booking.timeZone;
    const rows = [
      ["Subject", booking.subject],
      ["Status", booking.status],
      ["When", `${span(new Date(booking.start), new Date(booking.end), zone)} (${zone})`],
      ["Organizer", booking.organizer],
      ["Attendees", booking.attendees.map((a) => `${a.email}: ${a.response}`).join(", ")],
      ["Version", `${booking.version} (etag ${booking.etag})`],
      ["Booking id", booking.bookingId],
    ];
    if (booking.onlineMeetingUrl) rows.push(["Online meeting", booking.onlineMeetingUrl]);
    $("booking-card").replaceChildren(el("dl", {}, rows.map(([k, v]) => [el("dt", {text: k}),
      el("dd", {text: v, "data-field": k.toLowerCase().replace(/\s+/g, "-")})])));
    $("booking").hidden = false;
    $("booking-cancel").disabled = booking.status !== "confirmed";
    const who = $("outlook-person");
    const chosen = who.value;
    who.replaceChildren(...booking.attendees.filter((a) => a.email).map((a) =>
      el("option", {value: a.email, text: person(a.email).displayName + ` (${a.email})`})));
    if (chosen && booking.attendees.some((a) => a.email === chosen)) who.value = chosen;
    updateRescheduleButton();
  }

  async function loadCalendars() {
    const b = state.booking;
    if (!b) return;
    const zone = state.find ? state.find.wk.zone : b.timeZone;
    const startDay = state.find ? state.find.wk.days[0].date : local(new Date(b.start), zone).date;
    try {
      state.calendars = await loadWeek([b.organizer, ...b.attendees.map((a) => a.email).filter(Boolean)],
        startDay, zone);
    } catch (error) {
      say("booking-status", `Could not read the calendars: ${error.message}`, "bad");
      return;
    }
    drawWeek($("calendar-week"), state.calendars, {bookingId: b.bookingId});
  }

  // Whether Graph tells the service about the organizer's mailbox yet: the service subscribes within
  // seconds of a first upcoming booking; an Outlook action before that reaches it only by its re-read.
  async function followSubscription() {
    const mine = ++state.followPoll;
    for (let i = 0; i < 60 && mine === state.followPoll && state.booking; i++) {
      const organizer = state.booking.organizer;
      const query = new URLSearchParams({tenant: tenantId(), mailbox: organizer});
      const r = await consoleCall("GET", `/console/data/subscription?${query}`);
      const live = r.status === 200 ? r.json.subscriptions.filter((s) => !s.paused) : [];
      if (live.length) {
        say("outlook-follow", `The service follows ${person(organizer).displayName}'s mailbox (a Graph subscription ` +
          `for ${live[0].changeType}, until ${new Date(live[0].expirationDateTime).toLocaleString()}): what ` +
          "people do in Outlook reaches it within seconds.", "good");
        return;
      }
      say("outlook-follow", `The service has not subscribed to ${person(organizer).displayName}'s mailbox yet (it ` +
        "does within seconds of a first booking); an Outlook action before then reaches it only when it re-reads " +
        "its upcoming bookings.");
      await sleep(POLL_MS);
    }
  }

  async function readBooking() {
    const r = await api("GET", `/tenants/${tenantId()}/bookings/${state.booking.bookingId}`, {section: "booking"});
    if (r.status === 200) { showBooking(r.json); say("booking-status", "Read back from Outlook (Graph)."); }
    else say("booking-status", `${r.status} ${errorText(r.json)}`, "bad");
    await loadCalendars();
  }

  async function cancelBooking() {
    const r = await api("DELETE", `/tenants/${tenantId()}/bookings/${state.booking.bookingId}`, {section: "booking"});
    if (r.status === 200) { showBooking(r.json); say("booking-status", "Cancelled; the attendees are told.", "good"); }
    else say("booking-status", `${r.status} ${errorText(r.json)}`, "bad");
    await loadCalendars();
  }

  async function reschedule() {
    const slot = state.slots[Number($("slot").value)];
    const body = {start: slot.start, end: slot.end, timeZone: state.find.body.timeZone};
    const key = uuid();
    const r = await withRetries(() => api("PATCH", `/tenants/${tenantId()}/bookings/${state.booking.bookingId}`,
      {body, headers: {"Idempotency-Key": key, "If-Match": state.booking.etag}, section: "booking"}), "booking-status");
    if (r.status === 200) {
      showBooking(r.json);
      say("booking-status", `Moved to ${span(new Date(r.json.start), new Date(r.json.end), r.json.timeZone)}; the ` +
        "attendees' answers start again.", "good");
    } else if (r.status === 412) {
      say("booking-status", "The booking changed since it was read (412): read it again, then move it.", "bad");
    } else say("booking-status", `Not moved: ${r.status} ${errorText(r.json)}`, "bad");
    await loadCalendars();
    $("booking").scrollIntoView({behavior: "smooth", block: "start"});
  }

  function copyOf(email, organizerCopy) {
    if (!state.calendars || !state.booking) return null;
    const p = state.calendars.people.find((x) => x.email === email.toLowerCase());
    return p ? p.events.find((e) => e.bookingId === state.booking.bookingId && e.isOrganizer === organizerCopy) : null;
  }

  async function actInOutlook(response) {
    const email = $("outlook-person").value;
    await loadCalendars();
    const copy = copyOf(email, false);
    if (!copy) { say("outlook-status", `${email} has no copy of this meeting in the calendar.`, "bad"); return; }
    const url = `${state.dir.sandboxUrl}/_sandbox/users/${email}/events/${copy.id}/respond`;
    const r = await consoleCall("POST", "/console/sandbox/respond", {email, eventId: copy.id, response},
      {section: "booking", shown: {url, body: {response}}});
    if (r.status === 200) {
      say("outlook-status", `${person(email).displayName} ${response} in Outlook. The service hears of it through ` +
        "Graph's notification; watch section 4.", "good");
    } else say("outlook-status", `The sandbox answered ${r.status}: ${(r.json && r.json.error &&
      r.json.error.message) || ""}`, "bad");
    await loadCalendars();
  }

  async function deleteInOutlook() {
    const email = state.booking.organizer;
    await loadCalendars();
    const item = copyOf(email, true);
    if (!item) { say("outlook-status", "The organizer's calendar no longer has this meeting.", "bad"); return; }
    const url = `${state.dir.sandboxUrl}/_sandbox/users/${email}/events/${item.id}`;
    const r = await consoleCall("POST", "/console/sandbox/delete", {email, eventId: item.id},
      {section: "booking", shown: {method: "DELETE", url, body: null}});
    say("outlook-status", r.status === 204 ? `${person(email).displayName} deleted it in Outlook.` :
      `The sandbox answered ${r.status}`, r.status === 204 ? "good" : "bad");
    await loadCalendars();
  }

  // ----- 4. changes -----
  function startChanges() {
    if (state.polling) return;
    state.polling = true;
    (async function poll() {
      while (true) {
        if ($("watch").checked && state.tenant) {
          try { await readChanges(); } catch (error) { say("changes-status", `Feed: ${error.message}`, "bad"); }
        }
        await sleep(POLL_MS);
      }
    })();
  }

  async function readChanges() {
    const tenant = tenantId();
    for (let page = 0; page < 10; page++) {
      const query = new URLSearchParams({limit: "100"});
      if (state.cursor) query.set("after", state.cursor);
      const r = await api("GET", `/tenants/${tenant}/changes?${query}`, {quiet: true});
      if (tenant !== tenantId()) return;
      if (r.status === 410) { state.cursor = null; say("changes-status", "Cursor expired (410): reading from the oldest."); return; }
      if (r.status !== 200) { say("changes-status", `The feed answered ${r.status}: ${errorText(r.json)}`, "bad"); return; }
      state.cursor = r.json.next;
      if (!r.json.changes.length) {
        say("changes-status", `Up to date at ${new Date().toLocaleTimeString()} (next cursor kept).`);
        return;
      }
      record(r.exchange, "changes");
      for (const change of r.json.changes) showChange(change);
    }
  }

  function showChange(c) {
    const parts = [`${c.type} · ${c.cause}`];
    if (c.booking) {
      parts.push(`“${c.booking.subject}” ${c.booking.status}, version ${c.booking.version}`);
      parts.push(c.booking.attendees.map((a) => `${a.email}: ${a.response}`).join(", "));
    }
    if (c.status) parts.push(`status ${c.status}`);
    if (c.email) parts.push(c.email);
    const item = el("li", {class: "change", "data-type": c.type, "data-cause": c.cause},
      el("time", {datetime: c.at, text: new Date(c.at).toLocaleTimeString()}), " ", parts.join(" — "));
    $("changes-list").prepend(item);
    if (c.booking && state.booking && c.booking.bookingId === state.booking.bookingId) {
      showBooking(c.booking);
      loadCalendars();
      // What the console did itself it has said already; what people did in Outlook, the feed says.
      if (!["api", "rescheduled"].includes(c.cause)) {
        say("booking-status", `From the changes feed: ${c.type} · ${c.cause}.`, "good");
      }
    }
    if (c.type === "tenant.status_changed") refreshTenant({quiet: true});
  }

  // ----- start -----
  function fillTenantChoices() {
    const t = tenantInfo();
    const users = t.users;
    const admin = users.find((u) => u.isAdmin) || users[0];
    $("admin-account").replaceChildren(...users.map((u) => el("option", {value: u.mail,
      text: `${u.displayName} <${u.mail}>${u.isAdmin ? " — Global Administrator" : ""}`})));
    $("admin-account").value = admin.mail;
    $("member").replaceChildren(...users.map((u) => el("option", {value: u.mail, text: `${u.displayName} <${u.mail}>`})));
    $("organizer").replaceChildren(...users.map((u) => el("option", {value: u.mail, text: u.displayName})));
    $("organizer").value = admin.mail;
    fillAttendees();
    const zones = ["UTC", ...new Set(users.map((u) => u.timeZone))];
    $("zone").replaceChildren(...zones.map((z) => el("option", {value: z, text: z})));
    $("zone").value = person($("organizer").value).timeZone || "UTC";
  }
  function fillAttendees() {
    const organizer = $("organizer").value;
    const before = new Set(chosenAttendees());
    const others = tenantInfo().users.filter((u) => u.mail !== organizer);
    const box = $("attendees");
    box.replaceChildren(el("legend", {text: "Attendees"}));
    others.forEach((u, i) => {
      const checked = before.size ? before.has(u.mail) : i === 0;
      box.append(el("label", {}, el("input", {type: "checkbox", value: u.mail, checked}), ` ${u.displayName}`));
    });
  }
  function notice() {
    const q = new URLSearchParams(location.search);
    if (q.get("consent")) {
      const n = $("notice");
      n.textContent = `Back from the consent page: consent ${q.get("consent")} for tenant ${q.get("tenantId")}.`;
      n.hidden = false;
      history.replaceState(null, "", location.pathname);
    }
  }

  async function start() {
    notice();
    const r = await consoleCall("GET", "/console/data/directory");
    if (r.status !== 200) { say("tenant-status", `The console cannot start: ${errorText(r.json)}`, "bad"); return; }
    state.dir = r.json;
    for (const node of document.querySelectorAll(".sandbox-url")) node.textContent = state.dir.sandboxUrl;
    for (const node of document.querySelectorAll(".service-url")) node.textContent = state.dir.serviceUrl;
    $("org").value = state.dir.organization;
    $("tenant").replaceChildren(...state.dir.tenants.map((t) => el("option", {value: t.tenantId,
      text: `${t.displayName} (${t.domain})`})));
    $("week-start").value = state.dir.suggestedWeek;
    fillTenantChoices();

    $("tenant").addEventListener("change", async () => {
      state.cursor = null; state.booking = null; state.find = null;
      $("changes-list").replaceChildren(); $("booking").hidden = true; $("find-week").replaceChildren();
      $("pick").hidden = true; say("find-status", "");
      fillTenantChoices();
      await refreshTenant();
    });
    $("org").addEventListener("change", () => { state.cursor = null; $("changes-list").replaceChildren(); refreshTenant(); });
    $("organizer").addEventListener("change", () => { fillAttendees(); });
    $("consent-real").addEventListener("click", () => realConsent("admin", $("admin-account").value, "consent-link",
      "consent-status"));
    $("consent-shortcut").addEventListener("click", () => shortcut("admin", $("admin-account").value,
      "shortcut-steps", "shortcut-status"));
    $("member-real").addEventListener("click", () => realConsent("user", $("member").value, "member-link",
      "member-status"));
    $("member-shortcut").addEventListener("click", async () => {
      await shortcut("user", $("member").value, "member-steps", "member-status");
      await refreshMembers();
    });
    $("member").addEventListener("change", refreshMembers);
    $("disconnect").addEventListener("click", disconnect);
    $("week-prev").addEventListener("click", () => { $("week-start").value = addDays($("week-start").value, -7); });
    $("week-next").addEventListener("click", () => { $("week-start").value = addDays($("week-start").value, 7); });
    $("find-time").addEventListener("click", findTime);
    $("slot").addEventListener("change", () => pickSlot(Number($("slot").value)));
    $("book").addEventListener("click", book);
    $("reschedule").addEventListener("click", reschedule);
    $("booking-read").addEventListener("click", readBooking);
    $("booking-cancel").addEventListener("click", cancelBooking);
    $("calendars-refresh").addEventListener("click", loadCalendars);
    for (const button of document.querySelectorAll("button[data-response]")) {
      button.addEventListener("click", () => actInOutlook(button.dataset.response));
    }
    $("outlook-delete").addEventListener("click", deleteInOutlook);

    await refreshTenant();
    const kept = JSON.parse(sessionStorage.getItem("tenkc-console-booking") || "null");
    if (kept && kept.tenant === tenantId() && state.tenant) {
      const b = await api("GET", `/tenants/${tenantId()}/bookings/${kept.id}`, {quiet: true});
      if (b.status === 200) { showBooking(b.json); followSubscription(); await loadCalendars(); }
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
