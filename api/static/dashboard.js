// The dashboard: reads the API with the token kept in sessionStorage, draws a learner or a
// course, and reads again whenever GET /events says the data changed. No framework, no build
// step: every element is built with textContent, so no id or title from the API is parsed as
// HTML.
"use strict";

const TOKEN_KEY = "progress.dashboard.token";
const SVG_NS = "http://www.w3.org/2000/svg";
const IDLE_DAYS = 14;
const IDLE_SHOWN = 10;
const RECONNECT_MS = 1000;

// What is shown: which view, of which id; `generation` changes with every new choice, so
// reads and streams of an earlier choice stop touching the page.
const shown = { view: null, id: null, generation: 0, abort: null };

// ---------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = String(text);
  return node;
}

function percent(rate) {
  return `${(Number(rate) * 100).toFixed(1)}%`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "n/a";
  const hours = seconds / 3600;
  return hours < 48 ? `${hours.toFixed(1)} h` : `${(hours / 24).toFixed(1)} days`;
}

function cards(container, entries) {
  container.replaceChildren(
    ...entries.map(([field, label, value]) =>
      el("div", { "data-field": field }, el("dt", {}, label), el("dd", {}, value)),
    ),
  );
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

// ---------------------------------------------------------------- the API

class ApiFailure extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
  }
}

// A clear sentence for each answer the API gives a reader that cannot have the data.
function describe(status, body) {
  const detail = (body && (body.detail || body.error)) || "";
  switch (status) {
    case 401:
      return `Not authorized (401): ${detail}. Enter a valid token above.`;
    case 403:
      return `Forbidden (403): ${detail}. Use a token allowed to read this.`;
    case 404:
      return `Not found (404): ${detail}.`;
    default:
      return `The API answered ${status}: ${detail || "no detail"}.`;
  }
}

async function api(path, signal) {
  const response = await fetch(path, { headers: authHeaders(), signal });
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      // Not JSON (a proxy's page): the status alone says enough.
    }
    throw new ApiFailure(response.status, body);
  }
  return response.json();
}

function showMessage(text) {
  const box = document.getElementById("message");
  box.textContent = text || "";
  box.hidden = !text;
}

// ---------------------------------------------------------------- the learner view

async function readLearner(userId, signal) {
  const base = `/users/${encodeURIComponent(userId)}`;
  const [overview, courses, achievements, competencies] = await Promise.all([
    api(`${base}/progress`, signal),
    api(`${base}/courses?limit=500`, signal),
    api(`${base}/achievements`, signal),
    api(`${base}/competencies`, signal),
  ]);
  return { overview, courses: courses.courses, achievements: achievements.achievements,
           competencies: competencies.competencies };
}

// The run of active days ending on the learner's last active day goes on while that day is
// today or yesterday (the browser's calendar stands in for the learner's time zone).
function streakText(o) {
  if (!o.last_active_day || !o.current_streak_days) return "none yet";
  const days = o.current_streak_days === 1 ? "1 day" : `${o.current_streak_days} days`;
  const last = new Date(`${o.last_active_day}T00:00:00`);
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  const ago = Math.round((today - last) / 86400000);
  return ago <= 1 ? days : `${days}, ended ${o.last_active_day}`;
}

function drawLearner(userId, data) {
  const o = data.overview;
  document.getElementById("learner-name").textContent = userId;
  cards(document.getElementById("learner-summary"), [
    ["completed_courses", "Courses completed", `${o.completed_courses} / ${o.total_courses}`],
    ["completed_lessons", "Lessons completed", `${o.completed_lessons} / ${o.total_lessons}`],
    ["completed_quizzes", "Quizzes passed", `${o.completed_quizzes} / ${o.total_quizzes}`],
    ["completed_assignments", "Assignments", `${o.completed_assignments} / ${o.total_assignments}`],
    ["total_points", "Points", o.total_points],
    ["last_activity_at", "Last activity", when(o.last_activity_at)],
    ["current_streak_days", "Streak", streakText(o)],
  ]);

  const list = document.getElementById("learner-courses");
  list.replaceChildren(
    ...(data.courses.length ? data.courses.map(drawCourseRow)
                            : [el("li", { class: "empty" }, "No courses yet")]),
  );

  const achievements = document.getElementById("learner-achievements");
  achievements.replaceChildren(
    ...(data.achievements.length
      ? data.achievements.map((a) =>
          el("li", { "data-achievement-id": a.achievement_id },
             `${a.name || a.achievement_id}`, a.points === null ? "" : ` (${a.points} points)`,
             `, earned ${when(a.earned_at)}`))
      : [el("li", { class: "empty" }, "None earned yet")]),
  );

  const competencies = document.getElementById("learner-competencies");
  competencies.replaceChildren(
    ...(data.competencies.length
      ? data.competencies.map((c) =>
          el("li", { "data-competency-id": c.competency_id, "data-status": c.status },
             `${c.competency_id}: ${c.status}, level ${c.level}`,
             c.acquired_at ? `, acquired ${when(c.acquired_at)}` : ""))
      : [el("li", { class: "empty" }, "None yet")]),
  );
}

function drawCourseRow(course) {
  const pct = Number(course.percent_complete);
  const fill = el("div", { class: "fill", style: `width: ${Math.min(100, pct)}%` });
  const bar = el("div", {
    class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
    "aria-valuenow": pct,
  }, fill);
  return el(
    "li",
    { "data-course-id": course.course_id, "data-status": course.status, "data-percent": pct },
    el("div", { class: "course-head" },
       el("strong", {}, course.course_id),
       el("span", { class: "course-status" }, course.status)),
    bar,
    el("div", { class: "course-detail" },
       el("span", { class: "percent" }, `${pct.toFixed(2)}%`),
       ` · lessons ${course.completed_lessons}/${course.total_lessons}`,
       ` · quizzes ${course.completed_quizzes}/${course.total_quizzes}`,
       ` · assignments ${course.completed_assignments}/${course.total_assignments}`,
       ` · last activity ${when(course.last_activity_at)}`),
  );
}

// ---------------------------------------------------------------- the course view

async function readCourse(courseId, signal) {
  const base = `/courses/${encodeURIComponent(courseId)}`;
  const [stats, idle] = await Promise.all([
    api(`${base}/stats?idle_days=${IDLE_DAYS}`, signal),
    api(`${base}/learners?idle_days=${IDLE_DAYS}&sort=last_activity_at&limit=${IDLE_SHOWN}`,
        signal),
  ]);
  return { stats, idle };
}

function drawCourse(courseId, data) {
  const s = data.stats;
  document.getElementById("course-title").textContent =
    s.title ? `${s.title} (${courseId})` : courseId;
  cards(document.getElementById("course-summary"), [
    ["enrolled", "Enrolled", s.enrolled],
    ["completion_rate", "Completion rate", percent(s.completion_rate)],
    ["median", "Median time to complete", duration(s.time_to_complete_seconds.median)],
    ["p90", "90th percentile", duration(s.time_to_complete_seconds.p90)],
  ]);
  drawStatus(s);
  drawFunnel(s);
  drawQuizzes(s.quizzes);

  document.getElementById("course-idle").textContent =
    `${s.idle.learners} of ${s.enrolled} learners idle for ${s.idle.days} days or more` +
    (data.idle.total > data.idle.learners.length ? ` (the ${IDLE_SHOWN} idle longest below)` : "");
  document.getElementById("course-idle").dataset.idle = s.idle.learners;
  document.getElementById("course-idle-learners").replaceChildren(
    ...data.idle.learners.map((l) =>
      el("li", { "data-user-id": l.user_id },
         `${l.user_id}: ${Number(l.percent_complete).toFixed(2)}%, last activity ${when(l.last_activity_at)}`)),
  );
}

// One stacked bar of completed / in progress / not started, with a legend of the counts.
function drawStatus(s) {
  const width = 600;
  const parts = [
    ["completed", "done", "Completed", s.completed],
    ["in_progress", "doing", "In progress", s.in_progress],
    ["not_started", "todo", "Not started", s.not_started],
  ];
  const chart = svg("svg", { width, height: 28, viewBox: `0 0 ${width} 28`, role: "img",
                             "aria-label": "status of enrolled learners" });
  chart.append(svg("rect", { class: "track", x: 0, y: 0, width, height: 28, rx: 4 }));
  let x = 0;
  for (const [field, cls, , count] of parts) {
    const w = s.enrolled ? (count / s.enrolled) * width : 0;
    chart.append(svg("rect", { class: cls, x, y: 0, width: w, height: 28, "data-field": field }));
    x += w;
  }
  const legend = el("div", { class: "legend" },
    ...parts.map(([field, cls, label, count]) =>
      el("span", { "data-field": field, "data-count": count },
         el("span", { class: `swatch ${cls}` }), `${label}: ${count}`)));
  document.getElementById("course-status").replaceChildren(chart, legend);
}

// The funnel: one horizontal bar per module, in course order, as long as the share of
// enrolled learners who completed it.
function drawFunnel(s) {
  const labelWidth = 200;
  const barWidth = 360;
  const row = 30;
  const height = Math.max(1, s.modules.length) * row;
  const chart = svg("svg", { width: labelWidth + barWidth + 150, height, role: "img",
                             "aria-label": "module funnel" });
  s.modules.forEach((m, i) => {
    const y = i * row;
    const g = svg("g", { "data-module-id": m.module_id, "data-completed": m.completed,
                         "data-rate": m.completion_rate });
    g.append(svg("text", { x: 0, y: y + 19 }, m.title || m.module_id));
    g.append(svg("rect", { class: "track", x: labelWidth, y: y + 5, width: barWidth,
                           height: 20, rx: 3 }));
    g.append(svg("rect", { class: "done", x: labelWidth, y: y + 5,
                           width: barWidth * Number(m.completion_rate), height: 20, rx: 3 }));
    g.append(svg("text", { class: "funnel-value", x: labelWidth + barWidth + 8, y: y + 19 },
                 `${m.completed} / ${s.enrolled} (${percent(m.completion_rate)})`));
    chart.append(g);
  });
  const box = document.getElementById("course-funnel");
  box.replaceChildren(
    s.modules.length ? chart : el("p", { class: "empty" }, "The course has no modules yet"));
}

function drawQuizzes(quizzes) {
  const body = document.querySelector("#course-quizzes tbody");
  body.replaceChildren(
    ...(quizzes.length
      ? quizzes.map((q) =>
          el("tr", { "data-quiz-id": q.quiz_id },
             el("td", {}, q.title || q.quiz_id), el("td", {}, q.learners),
             el("td", {}, q.attempts), el("td", {}, q.passed),
             el("td", { "data-field": "pass_rate" }, percent(q.pass_rate)),
             el("td", {}, q.mean_score === null ? "n/a" : Number(q.mean_score).toFixed(1))))
      : [el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No quizzes"))]),
  );
}

// ---------------------------------------------------------------- reading and live updates

const VIEWS = {
  learner: { param: "user_id", read: readLearner, draw: drawLearner, section: "learner-view" },
  course: { param: "course_id", read: readCourse, draw: drawCourse, section: "course-view" },
};

// One read at a time; a change that arrives during a read asks for one more after it.
let reading = null;
let readAgain = false;

async function refresh() {
  if (reading) {
    readAgain = true;
    return reading;
  }
  reading = (async () => {
    do {
      readAgain = false;
      await readOnce();
    } while (readAgain);
  })();
  try {
    await reading;
  } finally {
    reading = null;
  }
}

async function readOnce() {
  const { view, id, generation, abort } = shown;
  if (!view) return;
  const spec = VIEWS[view];
  try {
    const data = await spec.read(id, abort.signal);
    if (generation !== shown.generation) return;
    spec.draw(id, data);
    showMessage("");
    document.getElementById(spec.section).hidden = false;
    document.body.dataset.reads = String(Number(document.body.dataset.reads || 0) + 1);
  } catch (error) {
    if (generation !== shown.generation || error.name === "AbortError") return;
    document.getElementById(spec.section).hidden = true;
    showMessage(error instanceof ApiFailure ? error.message : `Cannot reach the API: ${error}`);
  }
}

function setLive(state, text) {
  document.body.dataset.live = state;
  document.getElementById("live-status").textContent = text;
}

// Follows GET /events with fetch, not EventSource, because EventSource cannot send the
// Authorization header. Reads once on every (re)connection ("ready"), then on every change.
async function follow(generation, signal) {
  const { view, id } = shown;
  const url = `/events?${VIEWS[view].param}=${encodeURIComponent(id)}`;
  while (generation === shown.generation) {
    try {
      const response = await fetch(url, { headers: authHeaders(), signal });
      if (response.status === 401 || response.status === 403) {
        setLive("off", "Live updates off: the token may not follow this.");
        return;
      }
      if (response.ok) await readEvents(response.body, generation);
    } catch (error) {
      if (error.name === "AbortError") return;
    }
    if (generation !== shown.generation) return;
    setLive("reconnecting", "Live updates: reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

async function readEvents(body, generation) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done || generation !== shown.generation) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = block.split("\n").find((line) => line.startsWith("event:"));
      const name = event ? event.slice(6).trim() : null;
      if (name === "ready") {
        setLive("live", "Live: the page follows changes as they are committed.");
        refresh();
      } else if (name === "change") {
        refresh();
      }
    }
  }
}

function show(view, id) {
  if (shown.abort) shown.abort.abort();
  shown.view = view;
  shown.id = id;
  shown.generation += 1;
  shown.abort = new AbortController();
  for (const spec of Object.values(VIEWS)) document.getElementById(spec.section).hidden = true;
  document.getElementById("welcome").hidden = true;
  const params = new URLSearchParams({ [VIEWS[view].param]: id });
  history.replaceState(null, "", `${location.pathname}?${params}`);
  setLive("connecting", "Live updates: connecting…");
  refresh();
  follow(shown.generation, shown.abort.signal);
}

function start() {
  const tokenInput = document.getElementById("token");
  tokenInput.value = token();
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, tokenInput.value.trim());
    if (shown.view) show(shown.view, shown.id);
  });
  document.getElementById("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    tokenInput.value = "";
    if (shown.view) show(shown.view, shown.id);
  });
  document.getElementById("pick-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const view = event.submitter ? event.submitter.value : "learner";
    const id = document.getElementById(view === "course" ? "course-id" : "user-id").value.trim();
    if (id) show(view, id);
  });

  const params = new URLSearchParams(location.search);
  for (const [view, spec] of Object.entries(VIEWS)) {
    const id = params.get(spec.param);
    if (id) {
      document.getElementById(view === "course" ? "course-id" : "user-id").value = id;
      show(view, id);
      return;
    }
  }
}

start();
