// The candidate's home (SPEC §3–§5): certification, my exams and what to do next, computed
// from the public JSON API only and kept current by polling, so a decision by support, a
// payment or an upload shows up without reloading. Texts come from the page (zh/en).
// "Now" is the server's clock (the Date header), never the phone's.

import { Problem, show } from "./api.js";
import { RESULT_KEY } from "./device-check.js";
import { summary } from "./upload-queue.js";

const app = document.getElementById("home-app");
const POLL_MS = 5000;
const $ = (selector) => app.querySelector(selector);
const attr = (name) => app.getAttribute(`data-text-${name}`) || "";
const fill = (template, values = {}) =>
  template.replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? ""));

// Lower comes first when several exams each have a next step.
const RANK = [
  "upload_error", "upload", "formal_open", "confirm", "pay", "device_check", "mock",
  "formal_wait", "see_exams", "checking", "verified", "failed", "closed",
];
const catalog = new Map(); // exam_id -> catalogue entry (names in both languages, window, zone)
let shown = "";

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Problem(data, response.status);
  const date = Date.parse(response.headers.get("Date") || "");
  return { data, now: Number.isNaN(date) ? null : date };
}

/** An instant as the pages show it, in `zone`: 2026-06-01 10:15 (北京时间 / Asia/Shanghai). */
function when(iso, zone) {
  let instant = new Date(iso);
  if (instant.getSeconds() || instant.getMilliseconds()) {
    // Rounded up to the minute, as on the server: "until 10:42" must never be too late.
    instant = new Date(Math.ceil(instant.getTime() / 60000) * 60000);
  }
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).formatToParts(instant).map((part) => [part.type, part.value]),
  );
  const label = zone === "Asia/Shanghai" && app.dataset.beijing ? app.dataset.beijing : zone;
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} (${label})`;
}

const money = (cents) => `¥${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;

function deviceChecked() {
  try {
    const result = JSON.parse(localStorage.getItem(RESULT_KEY) || "null");
    return Boolean(result && result.verdict !== "fail");
  } catch {
    return false;
  }
}

async function ensureCatalog(applications) {
  for (const application of applications) {
    if (catalog.has(application.exam_id)) continue;
    const query = encodeURIComponent(application.exam_name.slice(0, 100));
    const { data } = await getJson(`/api/v1/exam-catalog?q=${query}`);
    for (const entry of data) catalog.set(entry.exam_id, entry);
  }
}

function examName(application) {
  const entry = catalog.get(application.exam_id);
  if (app.dataset.locale === "en" && entry?.exam_name_en) return entry.exam_name_en;
  return application.exam_name;
}

/** What one application asks for next: {step, values, href, action}. */
function stepOf(application, sittings, now) {
  const id = application.exam_id;
  const entry = catalog.get(id);
  const zone = entry?.timezone || app.dataset.timezone;
  const values = { exam: examName(application) };
  const take = (mode) => `/exams/${id}/take?mode=${mode}`;
  if (application.status === "matched") return { step: "confirm", values, href: `/exams/${id}/confirm`, action: "confirm" };
  const paid = application.fee_cents <= 0 || application.payment?.status === "paid";
  if (!paid) return { step: "pay", values: { ...values, fee: money(application.fee_cents) }, href: `/exams#exam-${id}`, action: "pay" };

  const formal = sittings.find((sitting) => sitting.exam_id === id && sitting.mode === "formal");
  const mocks = sittings.filter((sitting) => sitting.exam_id === id && sitting.mode === "mock");
  const mockOpen = application.mock === "open";
  if (formal) {
    const receipts = formal.subjects.map((subject) => subject.submission).filter(Boolean);
    if (receipts.some((receipt) => receipt.upload_error)) return { step: "upload_error", values, href: "/uploads", action: "upload" };
    const waiting = receipts.filter((receipt) => ["pending", "receiving"].includes(receipt.upload_state));
    if (waiting.length && now < Date.parse(formal.upload_ends_at)) {
      return {
        step: "upload",
        values: { ...values, count: waiting.length, deadline: when(formal.upload_ends_at, zone) },
        href: "/uploads",
        action: "upload",
      };
    }
    if (formal.state === "failed") return { step: "failed", values, href: "/exams", action: "exams" };
    if (formal.window === "open" && formal.next_step !== "done") {
      return { step: "formal_open", values: { ...values, end: when(formal.window_ends_at, zone) }, href: take("formal"), action: "formal" };
    }
    if (receipts.length && receipts.every((receipt) => receipt.upload_state === "verified")) {
      return { step: "verified", values, href: "/exams", action: "exams" };
    }
    if (receipts.some((receipt) => receipt.upload_state === "received")) return { step: "checking", values, href: "/exams", action: "exams" };
    if (formal.window === "closed" || formal.next_step === "done") return { step: "closed", values, href: "/exams", action: "exams" };
  }
  if (!entry) {
    // The catalogue search did not return this exam (too many with its name): say only what
    // is known without its window, and send to the exam list, which has it.
    if (!deviceChecked()) return { step: "device_check", values, href: "/device-check", action: "device_check" };
    if (mockOpen && !mocks.length) return { step: "mock", values, href: take("mock"), action: "mock" };
    return { step: "see_exams", values, href: `/exams#exam-${id}`, action: "exams" };
  }
  const starts = Date.parse(entry.formal_starts_at);
  const ends = Date.parse(entry.formal_ends_at);
  if (now >= ends && !formal) return { step: "closed", values, href: "/exams", action: "exams" };
  if (!deviceChecked()) return { step: "device_check", values, href: "/device-check", action: "device_check" };
  if (now >= starts) {
    return { step: "formal_open", values: { ...values, end: when(entry.formal_ends_at, zone) }, href: take("formal"), action: "formal" };
  }
  if (mockOpen && !mocks.length) return { step: "mock", values, href: take("mock"), action: "mock" };
  return {
    step: "formal_wait",
    values: { ...values, start: when(entry.formal_starts_at, zone), end: when(entry.formal_ends_at, zone) },
    href: mockOpen ? take("mock") : "/exams",
    action: mockOpen ? "mock" : "exams",
  };
}

function identityStep(identity) {
  const due = identity.review?.due_at ? when(identity.review.due_at, app.dataset.timezone) : "";
  switch (identity.next_step) {
    case "verify_face": return { step: "certify_face", values: {}, href: "/identity", action: "certify" };
    case "request_review": return { step: "certify_review", values: {}, href: "/identity", action: "certify" };
    case "wait_for_review": return { step: "wait_review", values: { due }, href: "/identity", action: "certify" };
    default: return { step: "certify", values: {}, href: "/identity", action: "certify" };
  }
}

async function load() {
  const { data: identity, now: identityNow } = await getJson("/api/v1/identity");
  const certified = identity.status === "certified";
  let applications = [];
  let sittings = [];
  let now = identityNow ?? Date.now();
  if (certified) {
    const mine = await getJson("/api/v1/me/applications");
    applications = mine.data;
    now = mine.now ?? now;
    if (applications.some((application) => application.status === "enrolled")) {
      sittings = (await getJson("/api/v1/me/sittings")).data;
    }
    await ensureCatalog(applications);
  }
  const exams = applications.map((application) => {
    const entry = catalog.get(application.exam_id);
    const period = entry
      ? `${when(entry.formal_starts_at, entry.timezone)} – ${when(entry.formal_ends_at, entry.timezone)}`
      : "";
    return { id: application.exam_id, name: examName(application), period, ...stepOf(application, sittings, now) };
  });
  let next;
  if (!certified) next = identityStep(identity);
  else if (!exams.length) next = { step: "apply", values: {}, href: "/exams#find", action: "apply" };
  else next = [...exams].sort((a, b) => RANK.indexOf(a.step) - RANK.indexOf(b.step))[0];
  return { status: identity.status, next, exams };
}

function link(step) {
  const anchor = document.createElement("a");
  anchor.href = step.href;
  anchor.textContent = attr(`action-${step.action}`);
  return anchor;
}

function render(model) {
  const panel = $('[data-testid="next-step"]');
  panel.dataset.step = model.next.step;
  panel.querySelector('[data-role="text"]').textContent = fill(attr(`step-${model.next.step}`), model.next.values);
  const action = panel.querySelector('[data-role="action"]');
  action.href = model.next.href;
  action.textContent = attr(`action-${model.next.action}`);
  action.hidden = false;

  const cert = $('[data-testid="cert-state"]');
  cert.dataset.status = model.status;
  cert.textContent = attr(`cert-${model.status}`);

  const list = $('[data-testid="home-exams"]');
  list.replaceChildren(...model.exams.map((exam) => {
    const item = document.createElement("li");
    item.dataset.testid = `home-exam-${exam.id}`;
    item.dataset.step = exam.step;
    const name = document.createElement("strong");
    name.setAttribute("translate", "no"); // an exam name is data, not interface text
    name.textContent = exam.name;
    const what = document.createElement("span");
    // Under the exam's name, its step is said without repeating the name.
    what.textContent = fill(attr(`step-${exam.step}`).replace(/^\{exam\}\s*[:：]\s*/, ""), exam.values);
    item.append(name, what);
    if (exam.period) {
      const period = document.createElement("small");
      period.className = "muted";
      period.dataset.testid = "home-exam-window";
      period.textContent = `${attr("formal-window")}: ${exam.period}`;
      item.append(period);
    }
    item.append(link(exam));
    return item;
  }));
  $('[data-testid="home-no-exams"]').hidden = model.exams.length > 0 || model.status !== "certified";
}

async function refresh() {
  try {
    const model = await load();
    const signature = JSON.stringify(model);
    // Re-rendered only when something changed, so screen readers hear changes, not ticks.
    if (signature !== shown) {
      shown = signature;
      render(model);
    }
  } catch {
    // Offline for a moment, or signed out elsewhere: keep what is shown, try again later.
  }
}

async function poll() {
  if (document.visibilityState !== "hidden") await refresh();
  setTimeout(poll, POLL_MS);
}

// Signing out (to let another account in) never deletes this account's recordings, but the
// candidate must know that they wait on this phone: the first press warns, the second signs out.
const signOut = document.getElementById("sign-out");
signOut?.addEventListener("submit", async (event) => {
  if (signOut.dataset.warned) return;
  event.preventDefault();
  let waiting = 0;
  try {
    waiting = (await summary(signOut.dataset.account)).unfinished;
  } catch {
    // No IndexedDB here: nothing can be waiting on this phone.
  }
  signOut.dataset.warned = "1";
  if (!waiting) {
    signOut.submit();
    return;
  }
  show(signOut.querySelector('[data-testid="sign-out-warning"]'),
    fill(signOut.dataset.textUnfinished || "", { count: waiting }));
  signOut.querySelector('[data-testid="sign-out-uploads"]').hidden = false;
  signOut.querySelector('button[type="submit"]').textContent = signOut.dataset.textAnyway || "";
});

if (app) {
  refresh().then(() => setTimeout(poll, POLL_MS));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
}
