// The device self-check (SPEC §7): camera, microphone, upload speed to the server, free
// storage and browser support, each measured here with a verdict (ok / warn / fail).
// The measuring functions are exported for other pages; texts come from the page (zh/en).

import { csrf, Problem } from "./api.js";

export const RESULT_KEY = "vexam.deviceCheck";

// Thresholds: a phone picture of at least 640×480; speech well above silence; a 100 MB
// recording uploaded in under ~3.5 min (ok) or ~27 min (warn); space for a few recordings.
const MIN_SHORT_SIDE = 480;
const QUIET_LEVEL = 0.01;
const OK_MBPS = 4;
const SLOW_MBPS = 0.5;
const OK_FREE_BYTES = 2 * 1024 ** 3;
const LOW_FREE_BYTES = 512 * 1024 ** 2;
const LISTEN_MS = 1500;
const PROBE_BYTES = [512 * 1024, 4 * 1024 * 1024];
const RECORDER_TYPES = [
  "video/mp4;codecs=avc1,opus",
  "video/mp4",
  "video/webm;codecs=vp9,opus",
  "video/webm;codecs=vp8,opus",
  "video/webm",
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Open the camera; {verdict, width, height, stream} (the caller stops the stream). */
export async function checkCamera() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 }, height: { ideal: 720 } },
      audio: false,
    });
    const settings = stream.getVideoTracks()[0]?.getSettings() || {};
    const width = settings.width || 0;
    const height = settings.height || 0;
    return { verdict: Math.min(width, height) >= MIN_SHORT_SIDE ? "ok" : "warn", width, height, stream };
  } catch (error) {
    return { verdict: "fail", error: error.name || String(error) };
  }
}

/** Listen to the microphone for a moment; {verdict, level}; `onLevel(0..1)` drives a meter. */
export async function checkMicrophone(onLevel = () => {}) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  } catch (error) {
    return { verdict: "fail", error: error.name || String(error) };
  }
  const AudioCtx = window.AudioContext || window.webkitAudioContext;
  if (!AudioCtx) {
    stream.getTracks().forEach((track) => track.stop());
    return { verdict: "warn", level: 0 };
  }
  const audio = new AudioCtx();
  try {
    await audio.resume();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 2048;
    audio.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    let loudest = 0;
    const until = performance.now() + LISTEN_MS;
    while (performance.now() < until) {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const value of samples) sum += value * value;
      const level = Math.sqrt(sum / samples.length);
      loudest = Math.max(loudest, level);
      onLevel(Math.min(1, level * 4));
      await sleep(50);
    }
    return { verdict: loudest >= QUIET_LEVEL ? "ok" : "warn", level: loudest };
  } finally {
    stream.getTracks().forEach((track) => track.stop());
    audio.close();
  }
}

async function postProbe(bytes) {
  const headers = { "Content-Type": "application/octet-stream", Accept: "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const started = performance.now();
  const response = await fetch("/device-check/upload", {
    method: "POST",
    headers,
    body: new Uint8Array(bytes),
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Problem(data, response.status);
  return { seconds: (performance.now() - started) / 1000, received: data.received };
}

/** Time uploads of a few MB to the server; {verdict, mbps} or {verdict: "fail", problem}. */
export async function checkUpload(maxBytes = PROBE_BYTES[1]) {
  try {
    // A small warm-up first (connection, TLS), then the measured transfer.
    const warm = await postProbe(PROBE_BYTES[0]);
    let measured = warm;
    let size = PROBE_BYTES[0];
    if (warm.seconds < 3) {
      size = Math.min(maxBytes, PROBE_BYTES[1]);
      measured = await postProbe(size);
    }
    const mbps = (measured.received * 8) / Math.max(measured.seconds, 0.001) / 1e6;
    const verdict = mbps >= OK_MBPS ? "ok" : mbps >= SLOW_MBPS ? "warn" : "fail";
    return { verdict, mbps, bytes: size };
  } catch (error) {
    return { verdict: "fail", problem: error instanceof Problem ? error : null };
  }
}

/** The browser's estimate of the storage this site may still use; {verdict, free}. */
export async function checkStorage() {
  if (!navigator.storage?.estimate) return { verdict: "warn", free: null };
  try {
    const { quota = 0, usage = 0 } = await navigator.storage.estimate();
    const free = Math.max(0, quota - usage);
    const verdict = free >= OK_FREE_BYTES ? "ok" : free >= LOW_FREE_BYTES ? "warn" : "fail";
    return { verdict, free };
  } catch {
    return { verdict: "warn", free: null };
  }
}

/** What the exam pages need from the browser; {verdict, type, missing[], orientation, phone}. */
export function checkSupport() {
  const missing = [];
  const type = window.MediaRecorder
    ? RECORDER_TYPES.find((candidate) => MediaRecorder.isTypeSupported(candidate)) || ""
    : "";
  if (!type) missing.push("recorder");
  if (!window.indexedDB) missing.push("indexeddb");
  if (!window.crypto?.subtle) missing.push("crypto");
  if (!window.isSecureContext) missing.push("secure");
  const orientation = Boolean(screen.orientation && screen.orientation.lock);
  const agent = navigator.userAgentData;
  const phone = agent?.mobile ?? /Android|iPhone|HarmonyOS|Mobile/i.test(navigator.userAgent);
  const verdict = missing.length ? "fail" : orientation && phone ? "ok" : "warn";
  return { verdict, type, missing, orientation, phone };
}

// ------------------------------------------------------------------ the page

const app = document.getElementById("device-check-app");

function text(name, values = {}) {
  const template = app.dataset[`text${name}`] || "";
  return template.replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? ""));
}

function report(key, verdict, advice) {
  const row = app.querySelector(`[data-check="${key}"]`);
  row.dataset.verdict = verdict;
  const label = { ok: "Ok", warn: "Warn", fail: "Fail", checking: "Checking" }[verdict];
  row.querySelector('[data-role="verdict"]').textContent = text(label);
  row.querySelector('[data-role="advice"]').textContent = advice;
}

const gb = (bytes) => (bytes / 1024 ** 3).toFixed(1);

async function runAll(button) {
  button.disabled = true;
  const summary = document.getElementById("check-summary");
  summary.hidden = true;
  for (const key of ["camera", "microphone", "upload", "storage", "support"]) report(key, "checking", "");
  const verdicts = {};

  const camera = await checkCamera();
  verdicts.camera = camera.verdict;
  const video = document.getElementById("check-video");
  if (camera.stream) {
    // The picture stays in view while the other checks run, so the candidate sees the framing.
    video.srcObject = camera.stream;
    video.parentElement.hidden = false;
    video.play().catch(() => {});
  }
  report("camera", camera.verdict, camera.verdict === "fail"
    ? text("CameraFail")
    : text(camera.verdict === "ok" ? "CameraOk" : "CameraLow", camera));

  const meter = document.getElementById("mic-level");
  const mic = await checkMicrophone((level) => { meter.value = level; });
  verdicts.microphone = mic.verdict;
  report("microphone", mic.verdict, text({ ok: "MicOk", warn: "MicQuiet", fail: "MicFail" }[mic.verdict]));

  const upload = await checkUpload(Number(app.dataset.probeMaxBytes) || undefined);
  verdicts.upload = upload.verdict;
  if (upload.mbps === undefined) {
    report("upload", "fail", upload.problem ? upload.problem.message : text("UploadFail"));
  } else {
    const values = {
      speed: upload.mbps >= 10 ? Math.round(upload.mbps) : upload.mbps.toFixed(1),
      minutes: Math.max(1, Math.ceil((100 * 8) / upload.mbps / 60)),
    };
    report("upload", upload.verdict, text(upload.verdict === "ok" ? "UploadOk" : "UploadSlow", values));
  }

  const storage = await checkStorage();
  verdicts.storage = storage.verdict;
  if (storage.free === null) report("storage", "warn", text("StorageUnknown"));
  else report("storage", storage.verdict, text(storage.verdict === "ok" ? "StorageOk" : "StorageLow", { free: gb(storage.free) }));

  const support = checkSupport();
  verdicts.support = support.verdict;
  if (support.verdict === "fail") {
    const names = { recorder: "FeatureRecorder", indexeddb: "FeatureIndexeddb", crypto: "FeatureCrypto", secure: "FeatureSecure" };
    report("support", "fail", text("SupportFail", { missing: support.missing.map((key) => text(names[key])).join(", ") }));
  } else {
    const container = support.type.split(";")[0].split("/")[1] === "mp4" ? "MP4" : "WebM";
    const advice = [text("SupportOk", { type: container })];
    if (!support.phone) advice.push(text("SupportNotPhone"));
    if (!support.orientation) advice.push(text("SupportOrientation"));
    report("support", support.verdict, advice.join(" "));
  }

  camera.stream?.getTracks().forEach((track) => track.stop());
  video.parentElement.hidden = true;
  video.srcObject = null;
  const all = Object.values(verdicts);
  const overall = all.includes("fail") ? "fail" : all.includes("warn") ? "warn" : "ok";
  summary.className = `alert ${overall === "fail" ? "error" : "notice"}`;
  summary.dataset.verdict = overall;
  summary.textContent = text({ ok: "SummaryOk", warn: "SummaryWarn", fail: "SummaryFail" }[overall]);
  summary.hidden = false;
  try {
    // The home page reads this to know whether this phone has been checked.
    localStorage.setItem(RESULT_KEY, JSON.stringify({ at: Date.now(), verdict: overall, verdicts }));
  } catch {
    // Private browsing: the check still showed its verdicts.
  }
  button.disabled = false;
}

if (app) {
  const button = document.getElementById("run-check");
  button.addEventListener("click", () => runAll(button));
}
