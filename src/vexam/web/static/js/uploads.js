// The uploads page (SPEC §5): this account's recordings kept on this browser, uploaded with
// the project's tus client and checked against the server's status; progress with speed and
// time left; offline → paused, online → resumed from the server's offset. Other accounts'
// unfinished recordings on this browser are named (masked) and never touched.
// Texts come from the page (zh/en) with {name} placeholders.

import { api, Problem, show } from "./api.js";
import {
  listRecordings,
  markVerified,
  otherAccounts,
  rememberAccount,
  updateRecording,
  uploadAll,
} from "./upload-queue.js";

const app = document.getElementById("uploads-app");
const account = app.dataset.account;
const locale = app.dataset.locale === "en" ? "en" : "zh-CN";
const chunkSize = Number(app.dataset.chunkBytes) || undefined;
const $ = (selector) => document.querySelector(selector);
// A data-text-* attribute with its {placeholders} filled in.
const text = (name, values = {}) =>
  (app.dataset[`text${name}`] || "").replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? ""));
const number = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });

// How often the server's verification is asked for while an upload waits for it: soon
// after the last byte (a short video is checked in about a second), then less often.
const POLL_FIRST_MS = 1000;
const POLL_MAX_MS = 5000;
const STATE_TEXT = {
  waiting: "Waiting",
  uploading: "Uploading",
  uploaded: "Uploaded",
  verified: "Verified",
  invalid: "Invalid",
  hash_mismatch: "HashMismatch",
  expired: "Expired",
  failed: "Failed",
  missing: "Missing",
};
// The server's upload_state → the page's state of a kept recording.
const FROM_SERVER = { received: "uploaded", invalid: "invalid", hash_mismatch: "hash_mismatch", expired: "expired" };

const items = new Map(); // submissionId → { element, record, local }
let queue = null;
let pollTimer = null;
let pollEvery = POLL_FIRST_MS;
let wakeLock = null;
let announced = "";

function bytes(count) {
  if (count >= 1e6) return `${number.format(count / 1e6)} MB`;
  return `${number.format(Math.max(count, 0) / 1e3)} KB`;
}

function duration(seconds) {
  const whole = Math.max(1, Math.round(seconds));
  if (whole < 60) return text("Seconds", { seconds: whole });
  return text("Minutes", { minutes: Math.floor(whole / 60), seconds: whole % 60 });
}

// ------------------------------------------------------------------ the list

function itemFor(submissionId) {
  let item = items.get(submissionId);
  if (!item) {
    const element = $("#upload-item").content.firstElementChild.cloneNode(true);
    element.dataset.testid = `upload-${submissionId}`;
    element.dataset.submission = String(submissionId);
    element.querySelector('[data-slot="retry"]').textContent = text("Retry");
    element.querySelector('[data-slot="retry"]').addEventListener("click", () => retry(submissionId));
    $("#upload-list").append(element);
    item = { element, record: null, local: false };
    items.set(submissionId, item);
  }
  return item;
}

function slot(item, name) {
  return item.element.querySelector(`[data-slot="${name}"]`);
}

function render(record, { local = true, status = null } = {}) {
  const item = itemFor(record.submissionId);
  // Progress events run ahead of the stored count (saved every MiB): keep the larger.
  if (item.record?.submissionId === record.submissionId && ["waiting", "uploading"].includes(record.state)) {
    record = { ...record, sent: Math.max(record.sent || 0, item.record.sent || 0) };
  }
  item.record = record;
  item.local = local;
  const { element } = item;
  element.dataset.state = record.state;
  slot(item, "exam").textContent = record.examName || "";
  slot(item, "subject").textContent = record.subjectName || "";
  let stateText = text(STATE_TEXT[record.state] || "Waiting");
  if (status?.state === "waiting" && record.state === "uploading") {
    stateText = status.reason === "offline" || status.retryIn === null
      ? text("OfflineWait")
      : text("ServerWait", { seconds: Math.max(1, Math.round(status.retryIn / 1000)) });
  }
  slot(item, "state").textContent = stateText;
  const bar = slot(item, "bar");
  bar.setAttribute("aria-label", `${record.examName || ""} · ${record.subjectName || ""}`);
  const done = ["uploaded", "verified"].includes(record.state);
  bar.hidden = !local && !done;
  if (done) bar.value = 100;
  else if (record.size && typeof record.sent === "number") bar.value = Math.floor((record.sent / record.size) * 100);
  const detail = slot(item, "detail");
  if (done || !local) detail.textContent = record.size ? bytes(record.size) : "";
  // Speed and time left are shown while bytes move (see `progress`), not while waiting.
  else if (record.state !== "uploading" || !detail.textContent) {
    detail.textContent = text("Progress", { sent: bytes(record.sent || 0), size: bytes(record.size) });
  }
  const receipt = record.receipt;
  slot(item, "receipt").textContent = receipt?.submission_id
    ? text("Receipt", { id: receipt.submission_id, hash: String(receipt.sha256 || record.sha256 || "").slice(0, 12) })
    : "";
  const error = slot(item, "error");
  show(error, record.error ? `${record.error} ${record.errorCode ? text("ErrorCode", { code: record.errorCode }) : ""}`.trim() : "");
  if (record.errorCode) error.dataset.code = record.errorCode;
  else delete error.dataset.code;
  slot(item, "retry").hidden = !(local && record.state === "failed" && record.blob);
  summarise();
}

function progress({ submissionId, sent, size, speed, secondsLeft }) {
  const item = items.get(submissionId);
  if (!item) return;
  item.record = { ...item.record, sent };
  const bar = slot(item, "bar");
  bar.value = Math.floor((sent / size) * 100);
  const parts = [text("Progress", { sent: bytes(sent), size: bytes(size) })];
  if (speed) parts.push(text("Speed", { speed: bytes(speed) }));
  if (secondsLeft !== null && secondsLeft !== undefined && sent < size) parts.push(text("Left", { time: duration(secondsLeft) }));
  slot(item, "detail").textContent = parts.join(" · ");
  item.element.dataset.sent = String(sent);
}

// The polite live region: changes of state only, never every progress event.
function summarise() {
  const all = [...items.values()].filter((item) => item.record);
  const verified = all.filter((item) => item.record.state === "verified").length;
  const message = all.length && verified === all.length
    ? text("AllVerified")
    : all.length ? text("Summary", { done: verified, total: all.length }) : "";
  if (message !== announced) {
    announced = message;
    show($("#summary"), message);
  }
  $("#empty").hidden = all.length > 0;
}

async function refresh() {
  const rows = await listRecordings(account);
  for (const row of rows) render(row);
  return rows;
}

async function warnOtherAccounts() {
  const others = await otherAccounts(account);
  const element = $("#other-accounts");
  if (!others.length) {
    show(element, "");
    return;
  }
  const count = others.reduce((sum, other) => sum + other.count, 0);
  const names = others
    .map((other) => other.label || text("UnknownAccount", { id: `••${String(other.account).slice(-2)}` }))
    .join(locale === "en" ? ", " : "、");
  show(element, text(count === 1 ? "OtherAccount" : "OtherAccounts", { count, account: names }));
  element.dataset.count = String(count);
}

// ------------------------------------------------------------------ the server's side

async function checkServer() {
  let sittings;
  try {
    sittings = await api("GET", "/api/v1/me/sittings");
  } catch (error) {
    // Offline or the server restarting: the next poll asks again.
    if (error instanceof Problem) show($("#error"), error.message);
    return;
  }
  show($("#error"), "");
  const local = new Map((await listRecordings(account)).map((row) => [row.submissionId, row]));
  for (const sitting of sittings) {
    for (const subject of sitting.subjects) {
      const receipt = subject.submission;
      if (!receipt) continue;
      const row = local.get(receipt.submission_id);
      if (row) {
        await follow(row, receipt);
      } else {
        const subjectName = locale === "en" && subject.name_en ? subject.name_en : subject.name;
        const state = receipt.upload_state === "verified" ? "verified" : FROM_SERVER[receipt.upload_state] || "missing";
        render(
          {
            submissionId: receipt.submission_id,
            examName: sitting.exam_name,
            subjectName,
            size: receipt.size_bytes,
            sha256: receipt.sha256,
            receipt,
            state,
            errorCode: receipt.upload_error,
            error: null,
          },
          { local: false },
        );
      }
    }
  }
  schedulePoll();
}

// A kept recording takes the server's word: verified drops its bytes; refusals are kept.
async function follow(row, receipt) {
  let next = null;
  if (receipt.upload_state === "verified" && row.state !== "verified") {
    next = await markVerified(account, row.submissionId);
  } else if (["invalid", "hash_mismatch", "expired"].includes(receipt.upload_state) && row.state !== receipt.upload_state) {
    next = await updateRecording(account, row.submissionId, {
      state: FROM_SERVER[receipt.upload_state],
      errorCode: receipt.upload_error || receipt.upload_state,
      error: text(STATE_TEXT[receipt.upload_state]),
    });
  } else if (receipt.upload_state === "received" && ["waiting", "failed"].includes(row.state)) {
    next = await updateRecording(account, row.submissionId, { state: "uploaded", sent: row.size });
  }
  if (next) render(next);
}

function schedulePoll() {
  clearTimeout(pollTimer);
  const waiting = [...items.values()].some((item) => item.record?.state === "uploaded");
  if (!waiting) {
    pollEvery = POLL_FIRST_MS;
    return;
  }
  pollTimer = setTimeout(checkServer, pollEvery);
  pollEvery = Math.min(pollEvery * 2, POLL_MAX_MS);
}

// ------------------------------------------------------------------ uploading

async function keepAwake(on) {
  // The phone must not sleep mid-upload ("keep this page open"); best effort.
  try {
    if (on && !wakeLock && navigator.wakeLock) {
      wakeLock = await navigator.wakeLock.request("screen");
      // The browser releases it when the page is hidden; it is asked again when visible.
      wakeLock.addEventListener("release", () => { wakeLock = null; });
    }
    if (!on && wakeLock) {
      await wakeLock.release();
      wakeLock = null;
    }
  } catch {
    wakeLock = null;
  }
}

function startUploads() {
  if (queue || navigator.onLine === false) return;
  keepAwake(true);
  const running = uploadAll(account, {
    chunkSize,
    onProgress: progress,
    onState: (record, status) => {
      if (record) render(record, { status });
      if (status?.state === "uploaded") {
        pollEvery = POLL_FIRST_MS;
        checkServer();
      }
    },
  });
  queue = running;
  running.done
    .catch((error) => show($("#error"), error.message || String(error)))
    .finally(async () => {
      if (queue === running) queue = null;
      keepAwake(false);
      await checkServer();
      // A recording kept meanwhile (another tab) is picked up on the next start.
      const rows = await listRecordings(account);
      if (!queue && rows.some((row) => row.blob && row.state === "waiting") && navigator.onLine !== false) startUploads();
    });
}

async function retry(submissionId) {
  const record = await updateRecording(account, submissionId, { state: "waiting", error: null, errorCode: null });
  if (record) render(record);
  startUploads();
}

function goneOffline() {
  $("#offline").hidden = false;
  // Pause: the in-flight PATCH is cut; the server keeps what it holds.
  queue?.abort();
  queue = null;
}

function backOnline() {
  $("#offline").hidden = true;
  startUploads();
  checkServer();
}

async function main() {
  if (!window.indexedDB) {
    show($("#error"), text("NoStorage"));
    return;
  }
  try {
    await rememberAccount(account, app.dataset.accountLabel);
    await refresh();
    await warnOtherAccounts();
  } catch (error) {
    show($("#error"), `${text("NoStorage")} (${error.message || error})`);
    return;
  }
  summarise();
  window.addEventListener("offline", goneOffline);
  window.addEventListener("online", backOnline);
  if (navigator.onLine === false) $("#offline").hidden = false;
  try {
    new BroadcastChannel("vexam-uploads").onmessage = async (event) => {
      if (event.data?.account !== account) return warnOtherAccounts();
      await refresh();
      startUploads();
    };
  } catch {
    // No BroadcastChannel: a reload shows recordings kept in another tab.
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      if (queue) keepAwake(true);
      startUploads();
      checkServer();
    }
  });
  await checkServer();
  startUploads();
  app.dataset.ready = "true";
}

main();
