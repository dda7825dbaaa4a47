// A tus 1.0 client (creation, checksum, resume) for the candidate's recordings (SPEC §5).
//
// One `TusUpload` sends one Blob to a tus endpoint in PATCH chunks: it creates the upload
// (POST with Upload-Length and Upload-Metadata) or resumes a known address (HEAD → the
// server's Upload-Offset), then appends chunk after chunk, each with its SHA-256 in
// Upload-Checksum. Lost networks, 5xx and 423 are retried with backoff (and as soon as the
// browser says it is online again); a 409 resumes from the offset the server holds; a lost
// address (404) starts a new upload. Only refusals that no retry can change end `start()`.
// Requests go by XMLHttpRequest for upload progress within a chunk; same-origin cookies.

const TUS_VERSION = "1.0.0";
const MiB = 1024 * 1024;
// Chunks adapt to the link: about TARGET_CHUNK_S seconds each, so a slow phone link loses
// little on a cut and progress moves, while a fast one is not slowed by per-request costs.
const MIN_CHUNK = 256 * 1024;
const MAX_CHUNK = 8 * MiB;
const FIRST_CHUNK = 1 * MiB;
const TARGET_CHUNK_S = 8;
// Backoff between retries (ms); the last value repeats for as long as the page stays open.
const RETRY_DELAYS = [500, 1000, 2000, 4000, 8000, 15000, 30000];
// A request that shows no upload progress for this long is cut and retried.
const STALL_MS = 45000;
// How far back the speed looks (ms).
const SPEED_WINDOW_MS = 8000;
// Lost addresses in a row before giving up (each one starts a new upload).
const MAX_RECREATE = 3;

/** A refusal that retrying does not change; `code` is the server's catalogue code. */
export class TusError extends Error {
  constructor(status, body, fallback) {
    super(body?.detail || fallback || `HTTP ${status}`);
    this.name = "TusError";
    this.status = status;
    this.body = body || {};
    this.code = this.body.code || (status ? `http_${status}` : "network");
  }
}

/** The upload was stopped by `abort()`. */
export class TusAbort extends Error {
  constructor() {
    super("aborted");
    this.name = "TusAbort";
  }
}

// A failed request worth retrying (network gone, server busy or restarting).
class Retry extends Error {
  constructor(reason, status, offset) {
    super(reason);
    this.reason = reason; // offline | network | server | locked | checksum | stalled
    this.status = status;
    this.offset = offset;
  }
}

function base64(bytes) {
  let text = "";
  const view = new Uint8Array(bytes);
  for (let i = 0; i < view.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, view.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/** Upload-Metadata: `key base64(value)` pairs (values as UTF-8). */
export function encodeMetadata(metadata) {
  const encoder = new TextEncoder();
  return Object.entries(metadata)
    .filter(([, value]) => value !== undefined && value !== null)
    .map(([key, value]) => `${key} ${base64(encoder.encode(String(value)))}`)
    .join(",");
}

async function sha256Header(blob) {
  // crypto.subtle exists in secure contexts only (https, localhost); the header is optional.
  if (!globalThis.crypto?.subtle) return null;
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return `sha256 ${base64(digest)}`;
}

function parseProblem(xhr) {
  try {
    return JSON.parse(xhr.responseText || "null");
  } catch {
    return null;
  }
}

export class TusUpload {
  /**
   * @param {Blob} blob the bytes to send
   * @param {object} options
   *   endpoint: creation URL (e.g. "/api/v1/uploads"); url: a known upload address to resume;
   *   metadata: {key: value}; headers: extra request headers (e.g. X-CSRF-Token);
   *   chunkSize: fixed chunk size in bytes (default: adaptive, 256 KiB–8 MiB);
   *   checksum: send Upload-Checksum per chunk (default true);
   *   onUrl(url|null): the address to keep (store it to resume after a reload);
   *   onProgress({sent, size, speed, secondsLeft}): bytes the server holds or is receiving;
   *   onStatus({state, reason, retryIn, error}): "uploading" | "waiting" (a retry is due).
   */
  constructor(blob, options = {}) {
    this.blob = blob;
    this.size = blob.size;
    this.options = options;
    this.url = options.url || null;
    this.offset = 0;
    this.fixedChunk = options.chunkSize || null;
    this.chunk = this.fixedChunk || FIRST_CHUNK;
    this.samples = [];
    this.aborted = false;
    this.xhr = null;
    this.wake = null;
  }

  /** Upload every byte; resolves {url, offset, alreadyComplete} or rejects TusError/TusAbort. */
  async start() {
    this.aborted = false;
    const goOffline = () => this.xhr?.abort();
    window.addEventListener("offline", goOffline);
    try {
      return await this._run();
    } finally {
      window.removeEventListener("offline", goOffline);
    }
  }

  /** Stop now: the in-flight request is cut; the server keeps what it holds. */
  abort() {
    this.aborted = true;
    this.xhr?.abort();
    this.wake?.();
  }

  async _run() {
    let failures = 0;
    let recreated = 0;
    for (;;) {
      this._check();
      try {
        if (this.url) {
          this.offset = await this._head();
          this.samples = []; // the server's offset may be behind what was being sent
        } else {
          const created = await this._create();
          if (created.alreadyComplete) return { url: null, offset: this.size, alreadyComplete: true };
        }
        this._progress(this.offset);
        while (this.offset < this.size) {
          this._status("uploading");
          this.offset = await this._patch(this.offset);
          failures = 0;
          recreated = 0;
        }
        return { url: this.url, offset: this.offset, alreadyComplete: false };
      } catch (error) {
        if (this.aborted) throw new TusAbort();
        if (error instanceof TusError && error.code === "lost") {
          // The server no longer knows this address (replaced or swept): start again.
          recreated += 1;
          if (recreated > MAX_RECREATE) throw new TusError(404, error.body);
          this.url = null;
          this.options.onUrl?.(null);
          continue;
        }
        if (error instanceof TusError && error.code === "upload_finished") {
          return { url: this.url, offset: this.size, alreadyComplete: true };
        }
        if (!(error instanceof Retry)) throw error;
        if (error.reason === "conflict") continue; // re-HEAD at once: the server's offset wins
        await this._wait(RETRY_DELAYS[Math.min(failures, RETRY_DELAYS.length - 1)], error.reason);
        failures += 1;
      }
    }
  }

  _check() {
    if (this.aborted) throw new TusAbort();
  }

  _status(state, extra = {}) {
    this.options.onStatus?.({ state, ...extra });
  }

  // Wait `delay` ms before the next try, or until the browser is back online.
  async _wait(delay, reason) {
    const offline = navigator.onLine === false;
    this._status("waiting", { reason: offline ? "offline" : reason, retryIn: offline ? null : delay });
    await new Promise((resolve) => {
      let timer = null;
      const done = () => {
        clearTimeout(timer);
        window.removeEventListener("online", done);
        this.wake = null;
        resolve();
      };
      this.wake = done;
      window.addEventListener("online", done);
      // Offline: the online event wakes us; a long timer still retries in case it never comes.
      timer = setTimeout(done, offline ? RETRY_DELAYS[RETRY_DELAYS.length - 1] : delay);
    });
    this._check();
  }

  _headers(extra) {
    return { "Tus-Resumable": TUS_VERSION, ...(this.options.headers || {}), ...extra };
  }

  _request(method, url, headers, body, onSent) {
    return new Promise((resolve, reject) => {
      this._check();
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open(method, url, true);
      xhr.withCredentials = true;
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      let stall = null;
      const arm = () => {
        clearTimeout(stall);
        stall = setTimeout(() => {
          xhr.stalled = true;
          xhr.abort();
        }, STALL_MS);
      };
      const finish = (fn) => {
        clearTimeout(stall);
        if (this.xhr === xhr) this.xhr = null;
        fn();
      };
      if (onSent) xhr.upload.onprogress = (event) => { arm(); onSent(event.loaded); };
      xhr.onload = () => finish(() => resolve(xhr));
      xhr.onerror = () => finish(() => reject(new Retry(navigator.onLine === false ? "offline" : "network")));
      xhr.onabort = () => finish(() => {
        if (this.aborted) reject(new TusAbort());
        else reject(new Retry(xhr.stalled ? "stalled" : navigator.onLine === false ? "offline" : "network"));
      });
      arm();
      xhr.send(body ?? null);
    });
  }

  // Sort an answer into: fine (returned), retry later, the offset moved, lost, or refused.
  _judge(xhr, ok) {
    if (ok.includes(xhr.status)) return xhr;
    const body = parseProblem(xhr);
    const offset = xhr.getResponseHeader("Upload-Offset");
    if (xhr.status === 409 && body?.code === "upload_offset_mismatch") {
      throw new Retry("conflict", 409, offset === null ? null : Number(offset));
    }
    if (xhr.status === 404 && this.url && body?.code !== "submission_not_found") {
      throw new TusError(404, { ...body, code: "lost" });
    }
    if (xhr.status === 423) throw new Retry("locked", 423);
    if (xhr.status === 460) throw new Retry("checksum", 460);
    if (xhr.status === 0 || xhr.status === 408 || xhr.status === 429 || xhr.status >= 500) {
      throw new Retry("server", xhr.status);
    }
    throw new TusError(xhr.status, body);
  }

  async _create() {
    const headers = this._headers({ "Upload-Length": String(this.size) });
    const metadata = encodeMetadata(this.options.metadata || {});
    if (metadata) headers["Upload-Metadata"] = metadata;
    const xhr = await this._request("POST", this.options.endpoint, headers, null);
    if (xhr.status === 409 && parseProblem(xhr)?.code === "upload_already_complete") {
      return { alreadyComplete: true };
    }
    this._judge(xhr, [201]);
    const location = xhr.getResponseHeader("Location");
    if (!location) throw new TusError(xhr.status, null, "no Location");
    // Location may be relative (vexam answers /api/v1/uploads/<id>): resolve it.
    this.url = new URL(location, new URL(this.options.endpoint, window.location.href)).href;
    this.offset = Number(xhr.getResponseHeader("Upload-Offset") || 0);
    this.options.onUrl?.(this.url);
    return { alreadyComplete: false };
  }

  async _head() {
    const xhr = await this._request("HEAD", this.url, this._headers({}), null);
    if (xhr.status === 404) throw new TusError(404, { code: "lost" });
    if (xhr.status === 410) throw new TusError(410, { code: "upload_expired" });
    this._judge(xhr, [200, 204]);
    const offset = Number(xhr.getResponseHeader("Upload-Offset"));
    if (!Number.isFinite(offset) || offset < 0 || offset > this.size) {
      throw new TusError(xhr.status, null, "bad Upload-Offset");
    }
    return offset;
  }

  async _patch(offset) {
    const size = Math.min(this.chunk, this.size - offset);
    const body = this.blob.slice(offset, offset + size);
    const headers = this._headers({
      "Content-Type": "application/offset+octet-stream",
      "Upload-Offset": String(offset),
    });
    if (this.options.checksum !== false) {
      const checksum = await sha256Header(body);
      if (checksum) headers["Upload-Checksum"] = checksum;
    }
    const began = performance.now();
    const xhr = await this._request("PATCH", this.url, headers, body, (loaded) =>
      this._progress(offset + Math.min(loaded, size)),
    );
    this._judge(xhr, [204]);
    const next = Number(xhr.getResponseHeader("Upload-Offset"));
    if (!Number.isFinite(next) || next <= offset || next > this.size) {
      throw new TusError(xhr.status, null, "bad Upload-Offset");
    }
    this._adapt(next - offset, performance.now() - began);
    this._progress(next);
    return next;
  }

  _adapt(bytes, ms) {
    if (this.fixedChunk || ms <= 0) return;
    const wanted = (bytes / ms) * 1000 * TARGET_CHUNK_S;
    // Grow at most 2× per chunk; shrink at once when the link slows down.
    const next = Math.min(wanted, this.chunk * 2);
    this.chunk = Math.max(MIN_CHUNK, Math.min(MAX_CHUNK, Math.round(next / 65536) * 65536));
  }

  _progress(sent) {
    const now = performance.now();
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > SPEED_WINDOW_MS) this.samples.shift();
    const [t0, b0] = this.samples[0];
    const speed = now - t0 > 250 && sent > b0 ? ((sent - b0) / (now - t0)) * 1000 : null;
    const secondsLeft = speed ? (this.size - sent) / speed : null;
    this.options.onProgress?.({ sent, size: this.size, speed, secondsLeft });
  }
}
