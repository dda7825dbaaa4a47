// Identity certification in the phone browser (SPEC §3), through the public JSON API only:
// photograph or type the card, the live head-turn check, the manual review and appeals.
// Texts come from the page (zh/en); refusals show the server's own localised `detail`.

import { api, Problem, show } from "./api.js";

const app = document.getElementById("identity-app");
const text = (name) => app.dataset[`text${name}`] || "";
const $ = (selector) => document.querySelector(selector);

// Frames of the live check: ~1.2 s facing the camera, then the turn, 10 frames in ~3.6 s.
const FRAME_INTERVAL_MS = 400;
const FRAMES = 10;
const FACING_FRAMES = 3;
const FRAME_MAX_SIDE = 640;
const POLL_MS = 5000;

const showError = (message) => { show($("#notice"), ""); show($("#error"), message); };
const showNotice = (message) => { show($("#error"), ""); show($("#notice"), message); };

function offerAppeal(problem) {
  if (problem.code !== "identity_conflict" && problem.code !== "candidate_number_taken") return;
  const section = $("#step-appeal");
  section.querySelector('[name="kind"]').value = problem.code;
  section.hidden = false;
}

function fail(error) {
  if (!(error instanceof Problem)) {
    showError(error.message || String(error));
    return;
  }
  showError(error.message);
  offerAppeal(error);
}

// ------------------------------------------------------------------ step 1: the document

function fillFromCard(fields) {
  const form = $("#identity-form");
  for (const [name, field] of Object.entries(fields)) {
    const input = form.elements[name];
    const label = form.querySelector(`[data-field="${name}"]`);
    if (!input || !label) continue;
    input.value = field.value ?? "";
    label.classList.toggle("doubtful", Boolean(field.doubtful));
    label.querySelector("small").textContent = field.doubtful ? "⚠" : "";
  }
}

async function uploadCard(read) {
  const file = $("#card-photo").files[0];
  if (!file) {
    $("#card-photo").focus();
    return;
  }
  const body = new FormData();
  body.append("file", file);
  body.append("document_type", $("#document-type").value);
  body.append("read", read ? "true" : "false");
  showNotice(read ? text("Reading") : "");
  try {
    const result = await api("POST", "/api/v1/identity/id-photo", body);
    $("#id-photo-id").value = result.photo_id;
    if (result.fields) fillFromCard(result.fields);
    showNotice(text("ReadDone"));
  } catch (error) {
    // An unclear photo is kept: it still serves the face comparison with typed details.
    if (error instanceof Problem && error.body.photo_id) $("#id-photo-id").value = error.body.photo_id;
    fail(error);
  }
}

function documentChanged() {
  const kind = $("#document-type").value;
  $("#kind-field").hidden = kind !== "other";
  // Only the resident ID card is photographed; the others are typed and checked by a person.
  $("#photo-field").hidden = kind !== "resident_id";
  if (kind !== "resident_id") $("#id-photo-id").value = "";
}

async function submitIdentity(event) {
  event.preventDefault();
  const form = event.target;
  const data = Object.fromEntries(new FormData(form));
  const body = {};
  for (const [key, value] of Object.entries(data)) {
    if (value !== "") body[key] = value;
  }
  if (body.document_type !== "other") delete body.document_kind;
  if (body.id_photo_id) body.id_photo_id = Number(body.id_photo_id);
  try {
    await api("POST", "/api/v1/identity/certification", body);
    window.location.reload();
  } catch (error) {
    fail(error);
  }
}

// ------------------------------------------------------------------ step 2: the live check

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function frameOf(video) {
  // The preview is mirrored by CSS only; the canvas gets the camera's own, unmirrored image.
  const scale = Math.min(1, FRAME_MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
}

async function openCamera(video) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } },
    audio: false,
  });
  video.srcObject = stream;
  await video.play();
  while (!video.videoWidth) await sleep(50);
  return stream;
}

async function faceCheck(button) {
  const video = $("#preview");
  const prompt = $("#prompt");
  button.disabled = true;
  let stream = null;
  try {
    const challenge = await api("POST", "/api/v1/identity/face/challenge");
    try {
      stream = await openCamera(video);
    } catch {
      showError(text("CameraDenied"));
      return;
    }
    show($("#error"), "");
    prompt.dataset.direction = challenge.direction;
    prompt.textContent = text("Face");
    const frames = [];
    for (let i = 0; i < FRAMES; i += 1) {
      if (i === FACING_FRAMES) prompt.textContent = text(challenge.direction === "left" ? "Left" : "Right");
      frames.push(await frameOf(video));
      await sleep(FRAME_INTERVAL_MS);
    }
    prompt.textContent = text("Sending");
    const body = new FormData();
    body.append("challenge_id", challenge.challenge_id);
    frames.forEach((frame, i) => body.append("frames", frame, `frame-${i}.jpg`));
    await api("POST", "/api/v1/identity/face", body);
    window.location.reload();
  } catch (error) {
    prompt.textContent = "";
    fail(error);
    if (error instanceof Problem && error.code === "face_attempts_exhausted") {
      await sleep(1500);
      window.location.reload();
    }
    const left = error instanceof Problem ? error.body.attempts_left : undefined;
    const counter = $('[data-testid="attempts-left"]');
    if (counter && left !== undefined) counter.textContent = left;
  } finally {
    if (stream) stream.getTracks().forEach((track) => track.stop());
    button.disabled = false;
  }
}

// ------------------------------------------------------------------ review, appeals, status

async function requestReview(event) {
  event.preventDefault();
  try {
    await api("POST", "/api/v1/identity/manual-review", new FormData(event.target));
    window.location.reload();
  } catch (error) {
    fail(error);
  }
}

async function sendAppeal(event) {
  event.preventDefault();
  const form = event.target;
  const identity = $("#identity-form");
  const body = { kind: form.elements.kind.value, message: form.elements.message.value };
  if (identity) {
    body.name = identity.elements.name.value || undefined;
    body.id_number = identity.elements.id_number.value || undefined;
    body.candidate_number = identity.elements.candidate_number.value || undefined;
  }
  try {
    await api("POST", "/api/v1/identity/appeals", body);
    showNotice(text("AppealSent"));
    $("#step-appeal").hidden = true;
  } catch (error) {
    fail(error);
  }
}

async function cancelAppeal(button) {
  try {
    await api("POST", `/api/v1/identity/appeals/${button.dataset.cancelAppeal}/cancel`);
    window.location.reload();
  } catch (error) {
    fail(error);
  }
}

async function poll() {
  // A decision by support shows up without signing in again: the page follows the state.
  const shown = $("#status-text").dataset.status;
  try {
    const state = await api("GET", "/api/v1/identity");
    if (state.status !== shown && !document.querySelector("button:disabled")) {
      window.location.reload();
      return;
    }
  } catch {
    // Offline for a moment: try again at the next tick.
  }
  setTimeout(poll, POLL_MS);
}

function start() {
  $("#document-type")?.addEventListener("change", documentChanged);
  $("#read-card")?.addEventListener("click", () => uploadCard(true));
  $("#keep-photo")?.addEventListener("click", () => uploadCard(false));
  $("#identity-form")?.addEventListener("submit", submitIdentity);
  $("#start-face")?.addEventListener("click", (event) => faceCheck(event.currentTarget));
  $("#review-form")?.addEventListener("submit", requestReview);
  $("#appeal-form")?.addEventListener("submit", sendAppeal);
  for (const button of document.querySelectorAll("[data-cancel-appeal]")) {
    button.addEventListener("click", () => cancelAppeal(button));
  }
  setTimeout(poll, POLL_MS);
}

start();
