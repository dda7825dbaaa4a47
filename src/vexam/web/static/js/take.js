// Taking a mock or formal exam in the phone browser (SPEC §5), through the public sitting API
// only: start or continue the sitting (a handover from another device when asked), the
// exam-time face verification and the device check, then per subject: the question text,
// the orientation, recording with a countdown and face-check frames, reviewing the takes,
// submitting one with its SHA-256, and handing the file to the upload queue.
// Texts come from the page (zh/en); refusals show the server's own localised `detail`.

import { api, csrf, Problem, show } from "./api.js";
import { attach, bestType, deviceInfo, frameOf, freeBytes, openCamera, sha256Hex } from "./take-media.js";
import { dropTakes, keepTake, takesOf } from "./take-store.js";

const app = document.getElementById("take-app");
const $ = (selector) => document.querySelector(selector);
const examId = Number(app.dataset.examId);
const mode = app.dataset.mode;
const account = app.dataset.account;
const english = app.dataset.locale === "en";

const VIDEO_BITS = 2_500_000;
const TIMESLICE_MS = 1000;
const TICK_MS = 200;
const FIRST_FACE_CHECK_MS = 1500;
const COMPLETE_TRIES = 6;
const COMPLETE_RETRY_MS = 3000;
// Spoken countdown marks (seconds left): the visible countdown is not a live region.
const ANNOUNCE_AT = new Set([60, 30, 10]);

const state = {
  sitting: null,
  subject: null, // the subject open in the recording view (from the sitting status)
  orientation: {}, // subject id → the orientation chosen and fixed on this page
  facing: {}, // subject id → the camera chosen where the subject allows either
  recorder: null,
  recording: null, // the running recording as the API answered it
  chunks: [],
  startedAt: 0,
  timers: [],
  stopping: null,
  lastEventAt: 0,
  takes: new Map(), // recording id → take kept on this phone
  urls: new Map(), // recording id → object URL of its blob
  chosen: null,
  measuredKbps: 0,
};

// ------------------------------------------------------------------ small helpers

function text(name, values = {}) {
  let message = app.dataset[`text${name}`] || "";
  for (const [key, value] of Object.entries(values)) message = message.replaceAll(`{${key}}`, String(value));
  return message;
}

const pascal = (value) => value.split(/[_:-]/).map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join("");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const subjectName = (subject) => (english && subject.name_en ? subject.name_en : subject.name);

function clock(seconds) {
  const whole = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

const megabytes = (bytes) => text("Megabytes", { n: (bytes / 1_000_000).toFixed(1) });

function when(iso) {
  // The server's time in the school's zone, e.g. 2027-01-10 09:30:12 (GMT+8).
  const parts = {};
  const format = new Intl.DateTimeFormat("en-GB", {
    timeZone: app.dataset.timezone || "Asia/Shanghai",
    year: "numeric", month: "2-digit", day: "2-digit", hourCycle: "h23",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  for (const part of format.formatToParts(new Date(iso))) parts[part.type] = part.value;
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} (${parts.timeZoneName})`;
}

const recordView = () => !$("#step-record").hidden;

function status(message) {
  show($(recordView() ? "#record-status" : "#take-status"), message);
}

function fail(error) {
  let message = error instanceof Problem || error instanceof Error ? error.message : String(error);
  // fetch() rejects with a TypeError when no answer came: say so in the reader's language.
  if (error instanceof TypeError) message = text("Network");
  const box = $("#take-error");
  show(box, message);
  box.dataset.code = error instanceof Problem ? error.code : "";
  if (recordView()) show($("#record-status"), message);
}

function clearError() {
  show($("#take-error"), "");
  $("#take-error").dataset.code = "";
}

// ------------------------------------------------------------------ camera

function frameForm(frame) {
  const body = new FormData();
  body.append("frame", frame, "frame.jpg");
  return body;
}

// The subject's camera; where it lets the candidate choose, the one they switched to.
function facingOf(subject) {
  if (!subject) return "user";
  if (subject.camera === "either" && state.facing[subject.subject_id]) return state.facing[subject.subject_id];
  return subject.camera === "back" ? "environment" : "user";
}

// ------------------------------------------------------------------ the sitting

function remember(sitting) {
  const url = new URL(window.location.href);
  url.searchParams.set("mode", sitting.mode);
  url.searchParams.set("sitting", String(sitting.id));
  window.history.replaceState(null, "", url);
  app.dataset.sittingId = String(sitting.id);
}

async function startSitting(handover) {
  clearError();
  $("#start-sitting").disabled = true;
  $("#handover-button").disabled = true;
  status(text("Starting"));
  try {
    const sitting = await api("POST", `/api/v1/exams/${examId}/sittings`, { mode, handover });
    remember(sitting);
    $("#handover").hidden = true;
    await render(sitting);
  } catch (error) {
    status("");
    fail(error);
    // Another device holds the exam: say what a handover does and offer it.
    if (error instanceof Problem && error.code === "exam_active_on_other_device") $("#handover").hidden = false;
  } finally {
    $("#start-sitting").disabled = false;
    $("#handover-button").disabled = false;
  }
}

async function refresh() {
  const id = app.dataset.sittingId;
  if (!id) return;
  try {
    await render(await api("GET", `/api/v1/sittings/${id}`));
  } catch (error) {
    fail(error);
  }
}

function checksDone(sitting) {
  return (
    sitting.face_verified_on_this_device && !sitting.face_check_required && sitting.device_checked_on_this_device
  );
}

const ACTIVE = new Set(["verify_face", "check_device", "record", "submit", "done"]);

async function render(sitting) {
  state.sitting = sitting;
  app.dataset.nextStep = sitting.next_step;
  $("#start-sitting").hidden = true;
  await loadTakes(sitting);
  const active = ACTIVE.has(sitting.next_step);
  if (!recordView()) status(text(`Step${pascal(sitting.next_step)}`));
  app.dataset.failed = sitting.state === "failed" ? "true" : "false";
  showWarnings(sitting.warnings);

  const needsChecks = active && !checksDone(sitting) && sitting.next_step !== "done";
  $("#step-checks").hidden = !needsChecks;
  const faceDone = sitting.face_verified_on_this_device && !sitting.face_check_required;
  $("#face-state").textContent = faceDone ? text(`Face${pascal(sitting.face_state)}`) : text("FaceNeeded");
  $("#face-state").dataset.done = String(faceDone);
  $("#device-state").textContent = sitting.device_checked_on_this_device ? text("DevicePassed") : text("FaceNeeded");
  $("#device-state").dataset.done = String(sitting.device_checked_on_this_device);

  renderSubjects(sitting);
  if (state.subject) {
    const fresh = sitting.subjects.find((s) => s.subject_id === state.subject.subject_id);
    if (fresh) {
      state.subject = fresh;
      renderRecordView();
    }
  }
  if (needsChecks) previewForChecks();
}

async function previewForChecks() {
  // The candidate sees themselves before pressing the button; a refusal is said then.
  try {
    await attach($("#face-preview"), await openCamera("user"), "user");
  } catch {
    // said by runChecks when the candidate asks for the checks
  }
}

function renderSubjects(sitting) {
  const list = $("#subjects");
  list.replaceChildren();
  const template = $("#subject-template");
  const active = ACTIVE.has(sitting.next_step);
  const ready = checksDone(sitting);
  for (const subject of sitting.subjects) {
    const item = template.content.firstElementChild.cloneNode(true);
    item.setAttribute("data-testid", `subject-${subject.position}`);
    item.dataset.state = subject.state;
    item.dataset.subjectId = String(subject.subject_id);
    item.querySelector(".take-subject-name").textContent = subjectName(subject);
    item.querySelector(".take-attempts").textContent = text("Attempts", {
      left: subject.attempts_left,
      allowed: subject.attempts_allowed,
    });
    item.querySelector(".take-limit").textContent = text("Limit", { time: clock(subject.max_seconds) });
    item.querySelector(".take-state").textContent = text(`State${pascal(subject.state)}`);
    if (subject.submission) fillReceipt(item.querySelector(".take-receipt"), subject.submission, false);
    const button = item.querySelector(".take-open");
    const canRecord = subject.attempts_left > 0 && ["not_started", "recording", "ready_to_submit"].includes(subject.state);
    const canSubmit = subject.state === "ready_to_submit";
    button.hidden = !active || !(canRecord || canSubmit);
    button.textContent = canSubmit ? text("Review") : text("Record");
    button.disabled = !ready && !canSubmit;
    button.setAttribute("data-testid", `open-subject-${subject.position}`);
    button.addEventListener("click", () => openSubject(subject));
    // Submitted but not yet handed to the upload queue (the page was closed in between).
    const waiting = subject.submission && state.takes.get(subject.submission.recording_id);
    if (waiting) {
      const keep = document.createElement("button");
      keep.type = "button";
      keep.className = "secondary";
      keep.textContent = text("KeepForUpload");
      keep.setAttribute("data-testid", `keep-subject-${subject.position}`);
      keep.addEventListener("click", () => showReceipt(subject, subject.submission, waiting));
      item.append(keep);
    }
    list.append(item);
  }
  $("#step-subjects").hidden = recordView() || !$("#step-receipt").hidden;
}

// ------------------------------------------------------------------ checks before recording

function uploadKbps() {
  // The browser's own estimate where it has one, else what the face frame's upload took.
  const link = navigator.connection && navigator.connection.downlink;
  return Math.max(0, Math.round(link ? link * 1000 : state.measuredKbps));
}

function showWarnings(warnings) {
  const list = $("#device-warnings");
  list.replaceChildren();
  for (const warning of warnings) {
    const key = warning.startsWith("formal_would_refuse") ? "FormalRefuses" : pascal(warning.replace("device_differs_from_mock", "device_differs"));
    const item = document.createElement("li");
    item.dataset.warning = warning;
    item.textContent = text(`Warning${key}`) || warning;
    list.append(item);
  }
}

async function runChecks(button) {
  clearError();
  button.disabled = true;
  const sitting = state.sitting;
  try {
    let stream;
    try {
      stream = await openCamera("user");
    } catch {
      fail(text("CameraDenied"));
      return;
    }
    const video = $("#face-preview");
    await attach(video, stream, "user");
    status(text("Checking"));
    if (!sitting.face_verified_on_this_device || sitting.face_check_required) {
      const frame = await frameOf(video);
      const started = performance.now();
      const verdict = await api("POST", `/api/v1/sittings/${sitting.id}/face-verification`, frameForm(frame));
      const seconds = Math.max(0.05, (performance.now() - started) / 1000);
      state.measuredKbps = (frame.size * 8) / seconds / 1000;
      $("#face-state").textContent = text(`Face${pascal(verdict.result)}`);
    }
    if (!sitting.device_checked_on_this_device) {
      const tracks = stream.getTracks();
      const checked = await api("POST", `/api/v1/sittings/${sitting.id}/device-check`, {
        ...deviceInfo(),
        camera: tracks.some((t) => t.kind === "video" && t.readyState === "live"),
        microphone: tracks.some((t) => t.kind === "audio" && t.readyState === "live"),
        free_bytes: await freeBytes(),
        upload_kbps: uploadKbps(),
      });
      showWarnings(checked.warnings);
    }
    await refresh();
  } catch (error) {
    status("");
    fail(error);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------ the recording view

function orientationOf(subject) {
  return subject.orientation === "choice" ? state.orientation[subject.subject_id] || "" : subject.orientation;
}

function applyOrientation(orientation) {
  app.dataset.orientation = orientation;
  $("#stage").dataset.orientation = orientation;
  // Best effort: most browsers refuse outside fullscreen; the layout follows the choice anyway.
  try {
    const lock = screen.orientation && screen.orientation.lock && screen.orientation.lock(orientation);
    if (lock && lock.catch) lock.catch(() => {});
  } catch {
    // not supported here
  }
}

function unlockOrientation() {
  try {
    if (screen.orientation && screen.orientation.unlock) screen.orientation.unlock();
  } catch {
    // not supported here
  }
}

function setPrompt(visible) {
  $("#prompt-panel").hidden = !visible;
  const toggle = $("#prompt-toggle");
  toggle.setAttribute("aria-expanded", String(visible));
  toggle.textContent = visible ? text("PromptHide") : text("PromptShow");
}

async function openSubject(subject) {
  clearError();
  state.subject = subject;
  state.chosen = null;
  $("#step-subjects").hidden = true;
  $("#step-checks").hidden = true;
  clearReceipt();
  $("#step-record").hidden = false;
  app.dataset.view = "record";
  $("#record-title").textContent = subjectName(subject);
  $("#prompt-text").textContent = subject.prompt || text("NoPrompt");
  setPrompt(true);
  show($("#record-status"), "");
  renderRecordView();
  $("#record-title").focus();
  const orientation = orientationOf(subject);
  if (orientation && subject.attempts_left > 0) await readyCamera(orientation);
}

function renderRecordView() {
  const subject = state.subject;
  $("#record-attempts").textContent = `${text("Attempts", {
    left: subject.attempts_left,
    allowed: subject.attempts_allowed,
  })} · ${text("Limit", { time: clock(subject.max_seconds) })}`;
  const orientation = orientationOf(subject);
  const recording = Boolean(state.recorder);
  $("#orientation-form").hidden = Boolean(orientation) || subject.attempts_left === 0;
  $("#orientation-fixed").hidden = !orientation;
  if (orientation) $("#orientation-fixed").textContent = text(`Orientation${pascal(orientation)}`);
  $("#recorder").hidden = !orientation || (subject.attempts_left === 0 && !recording);
  $("#record-start").hidden = recording || subject.attempts_left === 0 || state.sitting.state === "failed";
  $("#record-stop").hidden = !recording;
  $("#switch-camera").hidden = recording || subject.camera !== "either";
  $("#rec-badge").hidden = !recording;
  $("#back-to-list").hidden = recording;
  renderTakes();
}

async function readyCamera(orientation) {
  applyOrientation(orientation);
  renderRecordView();
  const facing = facingOf(state.subject);
  const start = $("#record-start");
  start.disabled = true;
  try {
    const stream = await openCamera(facing, orientation);
    await attach($("#preview"), stream, facing);
    if (!state.recorder) status(text("ReadyToRecord"));
    // The camera and its buttons in view, whichever way the phone is held.
    $("#recorder").scrollIntoView({ block: "nearest" });
  } catch {
    fail(text("CameraDenied"));
  } finally {
    start.disabled = false;
  }
}

function closeSubject() {
  if (state.recorder) return;
  state.subject = null;
  unlockOrientation();
  $("#step-record").hidden = true;
  app.dataset.view = "list";
  clearReceipt();
  $("#step-subjects").hidden = false;
  refresh();
}

function clearReceipt() {
  // The next submission's receipt starts empty: nothing of this one may be mistaken for it.
  const section = $("#step-receipt");
  section.hidden = true;
  section.dataset.submissionId = "";
  for (const value of section.querySelectorAll("dd")) value.textContent = "";
  const kept = $("#kept-status");
  kept.textContent = "";
  kept.dataset.state = "";
  $("#keep-again").hidden = true;
  $("#upload-link").hidden = true;
}

// ------------------------------------------------------------------ recording

function later(ms, work) {
  state.timers.push(setTimeout(work, ms));
}

function every(ms, work) {
  state.timers.push(setInterval(work, ms));
}

function clearTimers() {
  state.timers.forEach((timer) => { clearTimeout(timer); clearInterval(timer); });
  state.timers = [];
}

async function startRecording() {
  clearError();
  const subject = state.subject;
  const type = bestType();
  if (type === null) {
    fail(text("Unsupported"));
    return;
  }
  const button = $("#record-start");
  button.disabled = true;
  try {
    const orientation = orientationOf(subject);
    const stream = await openCamera(facingOf(subject), orientation);
    await attach($("#preview"), stream, facingOf(subject));
    // Made before the attempt is used: a recorder this phone cannot make costs no attempt.
    const recorder = new MediaRecorder(stream, type ? { mimeType: type, videoBitsPerSecond: VIDEO_BITS } : { videoBitsPerSecond: VIDEO_BITS });
    const recording = await api(
      "POST",
      `/api/v1/sittings/${state.sitting.id}/subjects/${subject.subject_id}/recordings`,
      subject.orientation === "choice" ? { orientation } : {},
    );
    state.recording = recording;
    state.recorder = recorder;
    const chunks = [];
    state.chunks = chunks;
    state.stopping = null;
    // This recorder's own pieces: a voided recorder's last piece never joins the next take.
    recorder.ondataavailable = (event) => {
      if (event.data && event.data.size) chunks.push(event.data);
      // Timers sleep in a hidden page (a "flag" policy keeps recording there); the recorder's
      // own pieces still arrive every second, so the limit is kept all the same.
      if (state.recorder === recorder) tick();
    };
    recorder.start(TIMESLICE_MS);
    state.startedAt = performance.now();
    app.dataset.recording = "true";
    subject.attempts_left = Math.max(0, subject.attempts_left - 1);
    renderRecordView();
    status(text("Recording"));
    tick();
    every(TICK_MS, tick);
    later(FIRST_FACE_CHECK_MS, faceCheck);
    if (subject.face_check_seconds > 0) every(subject.face_check_seconds * 1000, faceCheck);
  } catch (error) {
    fail(error);
    await refresh();
  } finally {
    button.disabled = false;
  }
}

function tick() {
  if (!state.recording) return;
  const elapsed = (performance.now() - state.startedAt) / 1000;
  const left = state.recording.max_seconds - elapsed;
  $("#countdown").textContent = clock(left);
  $("#countdown").dataset.seconds = String(Math.max(0, Math.ceil(left)));
  const whole = Math.ceil(left);
  if (ANNOUNCE_AT.has(whole) && whole < state.recording.max_seconds && state.announced !== whole) {
    state.announced = whole;
    status(text("Remaining", { time: clock(whole) }));
  }
  // The limit stops the recording: the server voids one that runs past it.
  if (left <= 0) stopRecording(true);
}

function finishRecorder(recorder, chunks) {
  return new Promise((resolve) => {
    const done = () => resolve(new Blob(chunks, { type: recorder.mimeType || "video/webm" }));
    if (recorder.state === "inactive") {
      done();
      return;
    }
    recorder.addEventListener("stop", done, { once: true });
    recorder.stop();
  });
}

function resetRecording() {
  clearTimers();
  state.recorder = null;
  state.recording = null;
  state.chunks = [];
  state.announced = null;
  app.dataset.recording = "false";
}

function stopRecording(atLimit = false) {
  if (state.stopping || !state.recorder) return state.stopping;
  state.stopping = (async () => {
    clearTimers();
    const recorder = state.recorder;
    const recording = state.recording;
    const elapsed = (performance.now() - state.startedAt) / 1000;
    const duration = Math.round(Math.min(elapsed, recording.max_seconds) * 1000) / 1000;
    $("#record-stop").disabled = true;
    const blob = await finishRecorder(recorder, state.chunks);
    resetRecording();
    renderRecordView();
    status(text("Saving"));
    const take = {
      recordingId: recording.id,
      account,
      sittingId: state.sitting.id,
      subjectId: recording.subject_id,
      attempt: recording.attempt,
      blob,
      type: blob.type,
      size: blob.size,
      duration,
      recordedAt: new Date().toISOString(),
    };
    try {
      // Kept on the phone before the server hears of it: a crash now loses nothing.
      await keepTake(take).catch(() => {});
      state.takes.set(recording.id, take);
      await completeSoon(recording.id, duration);
      state.chosen = recording.id;
      const kept = text("TakeKept", { n: recording.attempt });
      await refresh();
      status(atLimit ? `${text("LimitReached")} ${kept}` : kept);
    } catch (error) {
      state.takes.delete(recording.id);
      await dropTakes([recording.id]).catch(() => {});
      await refresh();
      fail(error);
    } finally {
      $("#record-stop").disabled = false;
      state.stopping = null;
    }
  })();
  return state.stopping;
}

/** Tell the server the recording stopped; a lost answer is asked again for a while (the
 * server accepts the stop up to 30 s after the limit). */
async function completeSoon(recordingId, duration) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await api("POST", `/api/v1/recordings/${recordingId}/complete`, { duration_seconds: duration });
    } catch (error) {
      if (attempt > 1 && error instanceof Problem && error.code === "recording_not_open") {
        // The earlier call reached the server after all: its answer was what got lost.
        const sitting = await api("GET", `/api/v1/sittings/${state.sitting.id}`);
        const done = sitting.subjects.flatMap((s) => s.recordings).find((r) => r.id === recordingId);
        if (done && done.state === "completed") return done;
      }
      if (!(error instanceof TypeError) || attempt >= COMPLETE_TRIES) throw error;
      await sleep(COMPLETE_RETRY_MS);
    }
  }
}

/** End a recording the server voided: nothing of it is kept. */
async function discardRecording(message) {
  const recorder = state.recorder;
  if (recorder) {
    clearTimers();
    resetRecording();
    if (recorder.state !== "inactive") recorder.stop();
    if (state.subject) renderRecordView();
  }
  // Said even when another answer ended the recording first: the latest reason is the one
  // the candidate needs (the exam's policy over a refused face check, say).
  await refresh();
  status(message);
  show($("#take-error"), message);
}

async function faceCheck() {
  const recording = state.recording;
  if (!recording || !state.recorder || state.recorder.state !== "recording") return;
  try {
    const frame = await frameOf($("#preview"));
    const verdict = await api("POST", `/api/v1/recordings/${recording.id}/face-checks`, frameForm(frame));
    if (state.recording !== recording) return;
    if (verdict.recording_state === "voided") {
      await discardRecording(text("FaceChecksEnded"));
      closeSubject();
      return;
    }
    status(verdict.passed ? text("Recording") : text("FaceCheckMissed"));
  } catch (error) {
    // A lost frame is not the candidate's fault: recording goes on, the next check follows.
    if (error instanceof Problem && error.code === "recording_not_open" && state.recording === recording) {
      await discardRecording(error.message);
    }
  }
}

// ------------------------------------------------------------------ interruptions

function reportLeaving(via) {
  const recording = state.recording;
  if (!recording || !state.recorder || state.recorder.state !== "recording") return;
  // visibilitychange and pagehide often come together for one leave: report it once.
  const now = Date.now();
  if (now - state.lastEventAt < 1000) return;
  state.lastEventAt = now;
  const headers = { Accept: "application/json", "Content-Type": "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const body = {
    kind: "left_page",
    recording_id: recording.id,
    client_at: new Date().toISOString(),
    detail: { via },
  };
  // keepalive: the report is delivered even when the page is going away.
  fetch(`/api/v1/sittings/${state.sitting.id}/events`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
    credentials: "same-origin",
    keepalive: true,
  })
    .then(async (response) => {
      const data = await response.json().catch(() => null);
      if (!response.ok) throw new Problem(data, response.status);
      return policyApplied(data, recording);
    })
    .catch((error) => fail(error));
}

async function policyApplied(result, recording) {
  app.dataset.lastEvent = result.action;
  app.dataset.eventsReported = String(Number(app.dataset.eventsReported || 0) + 1);
  if (result.action === "flag") {
    status(text("EventFlag"));
    show($("#take-error"), text("EventFlag"));
    return;
  }
  const voided = result.voided_recording_ids.includes(recording.id) || result.sitting_failed;
  if (!voided) return;
  await discardRecording(result.action === "fail_exam" ? text("EventFail") : text("EventVoid"));
}

function onVisibility() {
  if (document.visibilityState === "hidden") reportLeaving("visibilitychange");
}

// ------------------------------------------------------------------ takes and submission

async function loadTakes(sitting) {
  const known = new Map();
  for (const subject of sitting.subjects) {
    for (const recording of subject.recordings) known.set(recording.id, { recording, subject });
  }
  try {
    const useless = [];
    for (const take of await takesOf(account, sitting.id)) {
      const found = known.get(take.recordingId);
      // A voided recording, or a subject that got another take, can never use this one.
      const submission = found && found.subject.submission;
      if (found && (found.recording.state === "voided" || (submission && submission.recording_id !== take.recordingId))) {
        useless.push(take.recordingId);
        state.takes.delete(take.recordingId);
        continue;
      }
      if (!state.takes.has(take.recordingId)) state.takes.set(take.recordingId, take);
    }
    if (useless.length) await dropTakes(useless);
  } catch {
    // No IndexedDB (private mode): the takes of this page still live in memory.
  }
}

function urlOf(recordingId, blob) {
  if (!state.urls.has(recordingId)) state.urls.set(recordingId, URL.createObjectURL(blob));
  return state.urls.get(recordingId);
}

function renderTakes() {
  const subject = state.subject;
  const list = $("#takes");
  list.replaceChildren();
  const done = subject.recordings.filter((recording) => recording.state === "completed");
  const submittable = subject.state === "ready_to_submit" && !subject.submission;
  let usable = 0;
  for (const recording of done) {
    const take = state.takes.get(recording.id);
    const item = document.createElement("li");
    item.setAttribute("data-testid", `take-${recording.attempt}`);
    item.dataset.recordingId = String(recording.id);
    const title = document.createElement("p");
    const seconds = recording.duration_seconds ?? take?.duration ?? 0;
    title.textContent = `${text("Take", { n: recording.attempt })} · ${clock(seconds)}${take ? ` · ${megabytes(take.blob.size)}` : ""}`;
    item.append(title);
    if (take) {
      usable += 1;
      const video = document.createElement("video");
      video.controls = true;
      video.playsInline = true;
      video.preload = "metadata";
      video.src = urlOf(recording.id, take.blob);
      video.setAttribute("aria-label", text("Take", { n: recording.attempt }));
      const pick = document.createElement("label");
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "take";
      radio.value = String(recording.id);
      radio.disabled = !submittable;
      radio.checked = state.chosen === recording.id;
      radio.setAttribute("data-testid", `pick-${recording.attempt}`);
      radio.addEventListener("change", () => { state.chosen = recording.id; $("#confirm-submit").hidden = true; });
      pick.append(radio, ` ${text("UseTake")}`);
      item.append(video, pick);
    } else {
      const missing = document.createElement("p");
      missing.className = "muted";
      missing.textContent = text("TakeMissing");
      item.append(missing);
    }
    list.append(item);
  }
  if (state.chosen === null || !state.takes.has(state.chosen)) {
    const last = [...done].reverse().find((recording) => state.takes.has(recording.id));
    state.chosen = last ? last.id : null;
    const radio = last && list.querySelector(`input[value="${last.id}"]`);
    if (radio) radio.checked = true;
  }
  $("#review").hidden = done.length === 0;
  $("#submit-take").hidden = !submittable || usable === 0 || Boolean(state.recorder);
}

function askSubmit() {
  const recording = state.subject.recordings.find((r) => r.id === state.chosen);
  if (!recording) return;
  $("#confirm-text").textContent = text("ConfirmSubmit", { n: recording.attempt });
  $("#confirm-submit").hidden = false;
  $("#confirm-yes").focus();
}

async function submitChosen() {
  clearError();
  const subject = state.subject;
  const take = state.takes.get(state.chosen);
  if (!take) return;
  $("#confirm-yes").disabled = true;
  $("#submit-take").disabled = true;
  try {
    status(text("Hashing"));
    const sha256 = await sha256Hex(take.blob);
    take.sha256 = sha256;
    const receipt = await api(
      "POST",
      `/api/v1/sittings/${state.sitting.id}/subjects/${subject.subject_id}/submission`,
      { recording_id: take.recordingId, sha256, size_bytes: take.blob.size },
    );
    keepReceipt(receipt);
    await keepTake({ ...take, receipt }).catch(() => {});
    state.takes.set(take.recordingId, { ...take, receipt });
    $("#confirm-submit").hidden = true;
    await showReceipt(subject, receipt, { ...take, receipt });
  } catch (error) {
    fail(error);
    await refresh();
  } finally {
    $("#confirm-yes").disabled = false;
    $("#submit-take").disabled = false;
  }
}

function keepReceipt(receipt) {
  // The receipt stays on the phone too, per account: proof of what was handed in, and when.
  try {
    const key = `vexam-receipts:${account}`;
    const kept = JSON.parse(localStorage.getItem(key) || "{}");
    kept[receipt.submission_id] = receipt;
    localStorage.setItem(key, JSON.stringify(kept));
  } catch {
    // storage full or blocked: the receipt is on the server and on screen
  }
}

function fillReceipt(list, receipt, full) {
  list.replaceChildren();
  const rows = [
    [$("#receipt-number").previousElementSibling.textContent, `#${receipt.submission_id}`],
    [$("#receipt-time").previousElementSibling.textContent, when(receipt.submitted_at)],
  ];
  if (full) rows.push([$("#receipt-size").previousElementSibling.textContent, megabytes(receipt.size_bytes)]);
  rows.push([
    $("#receipt-upload").previousElementSibling.textContent,
    text(`Upload${pascal(receipt.upload_state)}`) || receipt.upload_state,
  ]);
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    list.append(dt);
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dd);
  }
  list.hidden = false;
}

async function showReceipt(subject, receipt, take) {
  $("#step-record").hidden = true;
  $("#step-subjects").hidden = true;
  $("#step-receipt").hidden = false;
  app.dataset.view = "receipt";
  $("#receipt-subject").textContent = subjectName(subject);
  $("#receipt-number").textContent = `#${receipt.submission_id}`;
  $("#receipt-time").textContent = when(receipt.submitted_at);
  $("#receipt-size").textContent = `${megabytes(receipt.size_bytes)} (${receipt.size_bytes})`;
  $("#receipt-sha").textContent = receipt.sha256;
  $("#receipt-upload").textContent = text(`Upload${pascal(receipt.upload_state)}`) || receipt.upload_state;
  $("#step-receipt").dataset.submissionId = String(receipt.submission_id);
  show($("#take-status"), text("Submitted"));
  $("#receipt-title").focus();
  state.subject = null;
  unlockOrientation();
  await handOver(subject, receipt, take);
}

async function uploadQueue() {
  if (!state.queue) {
    // A failed module load is remembered by the browser: a retry asks for a fresh copy.
    state.queueTries = (state.queueTries || 0) + 1;
    const address = state.queueTries > 1 ? `./upload-queue.js?try=${state.queueTries}` : "./upload-queue.js";
    state.queue = await import(address);
  }
  return state.queue;
}

async function handOver(subject, receipt, take) {
  const kept = $("#kept-status");
  kept.dataset.state = "keeping";
  kept.textContent = text("Keeping");
  $("#keep-again").hidden = true;
  $("#keep-again").onclick = () => handOver(subject, receipt, take);
  try {
    // The upload page owns the queue: it uploads what is kept there, resumably.
    const { keepRecording, rememberAccount } = await uploadQueue();
    // Named by its masked phone, so another account signing in on this phone is told whose
    // recordings wait here.
    await rememberAccount?.(account, app.dataset.maskedPhone || "");
    await keepRecording(account, {
      submissionId: receipt.submission_id,
      examId,
      // The upload page names each recording: a mock one says so.
      examName: mode === "mock" ? `${app.dataset.examName} · ${$('[data-testid="take-mode"]').textContent.trim()}` : app.dataset.examName,
      subjectName: subjectName(subject),
      blob: take.blob,
      type: take.blob.type || take.type,
      size: take.blob.size,
      sha256: receipt.sha256,
      receipt,
    });
    kept.dataset.state = "kept";
    kept.textContent = text("Kept");
    $("#upload-link").hidden = false;
    // The queue holds the submitted file now; the other takes of the subject cannot be
    // submitted any more.
    const done = subject.recordings.map((recording) => recording.id);
    await dropTakes([...new Set([...done, take.recordingId])]).catch(() => {});
    for (const id of done) state.takes.delete(id);
    state.takes.delete(take.recordingId);
  } catch {
    kept.dataset.state = "failed";
    kept.textContent = text("KeepFailed");
    $("#keep-again").hidden = false;
  }
}

// ------------------------------------------------------------------ start

function start() {
  $("#start-sitting").addEventListener("click", () => startSitting(false));
  $("#handover-button").addEventListener("click", () => startSitting(true));
  $("#verify-face").addEventListener("click", (event) => runChecks(event.currentTarget));
  $("#prompt-toggle").addEventListener("click", () => setPrompt($("#prompt-panel").hidden));
  $("#orientation-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new FormData(event.target).get("orientation");
    state.orientation[state.subject.subject_id] = chosen;
    readyCamera(chosen);
  });
  $("#record-start").addEventListener("click", startRecording);
  $("#switch-camera").addEventListener("click", () => {
    const subject = state.subject;
    state.facing[subject.subject_id] = facingOf(subject) === "user" ? "environment" : "user";
    readyCamera(orientationOf(subject));
  });
  $("#record-stop").addEventListener("click", () => stopRecording(false));
  $("#submit-take").addEventListener("click", askSubmit);
  $("#confirm-yes").addEventListener("click", submitChosen);
  $("#confirm-no").addEventListener("click", () => { $("#confirm-submit").hidden = true; });
  $("#back-to-list").addEventListener("click", closeSubject);
  $("#receipt-back").addEventListener("click", closeSubject);
  document.addEventListener("visibilitychange", onVisibility);
  window.addEventListener("pagehide", () => reportLeaving("pagehide"));
  window.addEventListener("beforeunload", (event) => {
    if (state.recorder) event.preventDefault();
  });
  $("#record-title").tabIndex = -1;
  $("#receipt-title").tabIndex = -1;
  if (app.dataset.sittingId) refresh();
  app.dataset.ready = "true";
}

start();
