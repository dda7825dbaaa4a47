// What the recording page asks of the phone itself (SPEC §5): the camera and microphone, the
// preview, check frames, the recording type, the file's SHA-256 and the device's own facts.
// No page state and no text here: take.js decides what to do with them.

// Best first: MP4/H.264 plays everywhere reviewers watch; WebM where MP4 cannot be recorded.
const TYPES = [
  "video/mp4;codecs=avc1.42E01E,opus",
  "video/mp4;codecs=avc1,opus",
  "video/mp4;codecs=avc1.42E01E,mp4a.40.2",
  "video/mp4;codecs=avc1",
  "video/mp4",
  "video/webm;codecs=vp9,opus",
  "video/webm;codecs=vp8,opus",
  "video/webm",
];
const FRAME_MAX_SIDE = 640;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// The one open camera stream, what it was opened for, and an opening in flight.
const camera = { stream: null, streamKey: "", opening: null, openingKey: "" };

/** Stop the camera and microphone. */
export function stopCamera() {
  if (camera.stream) camera.stream.getTracks().forEach((track) => track.stop());
  camera.stream = null;
  camera.streamKey = "";
}

/** The camera and microphone, facing `facing`; reopened only when the wish changes. */
export async function openCamera(facing, orientation = "") {
  const key = `${facing}:${orientation}`;
  // One opening at a time: two at once would leave one stream running and record the other.
  if (camera.opening && camera.openingKey === key) return camera.opening;
  if (camera.opening) await camera.opening.catch(() => {});
  const live = camera.stream && camera.stream.getTracks().every((track) => track.readyState === "live");
  if (live && camera.streamKey === key) return camera.stream;
  stopCamera();
  const [width, height] = orientation === "portrait" ? [720, 1280] : [1280, 720];
  camera.openingKey = key;
  camera.opening = navigator.mediaDevices
    .getUserMedia({
      // A plain preference: `exact` fails on phones (and test cameras) that cannot say.
      video: { facingMode: facing, width: { ideal: width }, height: { ideal: height } },
      // Music and speech are judged: the phone must not "clean" the sound.
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    })
    .then((stream) => {
      camera.stream = stream;
      camera.streamKey = key;
      return stream;
    })
    .finally(() => {
      camera.opening = null;
      camera.openingKey = "";
    });
  return camera.opening;
}

/** Show `stream` in `video`, mirrored where it films the candidate; resolves once it plays. */
export async function attach(video, stream, facing) {
  const settings = stream.getVideoTracks()[0]?.getSettings?.() || {};
  // The preview of the front camera is mirrored for comfort (CSS only): the recorded stream
  // and the check frames are the camera's own image, never mirrored.
  video.classList.toggle("mirrored", (settings.facingMode || facing) === "user");
  if (video.srcObject !== stream) video.srcObject = stream;
  await video.play().catch(() => {});
  for (let i = 0; i < 100 && !video.videoWidth; i += 1) await sleep(50);
}

/** A JPEG of what `video` shows, at most FRAME_MAX_SIDE wide: the camera's own picture. */
export function frameOf(video) {
  const scale = Math.min(1, FRAME_MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
}

/** What the device check reports of this browser: device class, system and version. */
export function deviceInfo() {
  const ua = navigator.userAgent;
  let osName = "other";
  let osVersion = "0";
  let found;
  if ((found = ua.match(/HarmonyOS[ /]?(\d+(?:\.\d+)*)/i))) [osName, osVersion] = ["harmonyos", found[1]];
  else if ((found = ua.match(/Android (\d+(?:\.\d+)*)/))) [osName, osVersion] = ["android", found[1]];
  else if ((found = ua.match(/(?:iPhone|CPU) OS (\d+(?:_\d+)*)/))) [osName, osVersion] = ["ios", found[1].replaceAll("_", ".")];
  else if (/Windows/.test(ua)) osName = "windows";
  else if (/Mac OS X/.test(ua)) osName = navigator.maxTouchPoints > 1 ? "ios" : "macos";
  else if (/Linux|CrOS/.test(ua)) osName = "linux";
  const mobileOs = ["android", "harmonyos", "ios"].includes(osName);
  let deviceClass = "desktop";
  if (/iPad|Tablet/.test(ua) || (osName === "android" && !/Mobile/.test(ua)) || (osName === "ios" && !/iPhone/.test(ua))) {
    deviceClass = mobileOs ? "tablet" : "desktop";
  } else if (mobileOs && /Mobile|iPhone/.test(ua)) {
    deviceClass = "phone";
  }
  return { device_class: deviceClass, os_name: osName, os_version: osVersion };
}

/** Free storage this site may use, in bytes (0 when the browser will not say). */
export async function freeBytes() {
  try {
    const estimate = await navigator.storage.estimate();
    return Math.max(0, Math.floor((estimate.quota || 0) - (estimate.usage || 0)));
  } catch {
    return 0;
  }
}

/** The recording type to ask for: "" lets the browser choose; null: it cannot record. */
export function bestType() {
  if (typeof MediaRecorder === "undefined") return null;
  return TYPES.find((type) => MediaRecorder.isTypeSupported(type)) || "";
}

/** The SHA-256 of `blob`, lowercase hex. */
export async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
