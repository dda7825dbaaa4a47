// The candidate's recordings and their upload state, kept in IndexedDB per account (SPEC §5).
//
// A submitted recording is kept here (`keepRecording`) before anything is sent, so a reload,
// a crash or a network switch loses nothing: `uploadAll` resumes each upload at the address
// kept with it, from the offset the server holds. Every record belongs to one account (the
// signed-in user's id); this module never deletes, changes or sends another account's
// records, and drops a recording's bytes only once the server has verified its upload.
//
// Record: { account, submissionId, examId, examName, subjectName, blob, type, size, sha256,
//   receipt, uploadUrl, sent, state, error, errorCode, keptAt, updatedAt }
// state: waiting | uploading | uploaded (every byte on the server) | verified (blob dropped)
//   | invalid | hash_mismatch | expired | failed (refused: kept, see errorCode and error)

import { TusAbort, TusUpload } from "./tus-client.js";

const DB_NAME = "vexam-uploads";
const DB_VERSION = 1;
const RECORDINGS = "recordings";
const ACCOUNTS = "accounts";
const ENDPOINT = "/api/v1/uploads";
const SHA256_RE = /^[0-9a-f]{64}$/;
// States whose bytes still have to reach the server.
export const UNFINISHED = ["waiting", "uploading", "failed"];
// Refusals that end an upload for good (the recording is kept; support can help).
const FINAL = {
  upload_checksum_mismatch: "hash_mismatch",
  recording_invalid: "invalid",
  upload_expired: "expired",
};

let opened = null;

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function database() {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = () => {
        const db = request.result;
        if (!db.objectStoreNames.contains(RECORDINGS)) {
          const store = db.createObjectStore(RECORDINGS, { keyPath: ["account", "submissionId"] });
          store.createIndex("account", "account");
        }
        if (!db.objectStoreNames.contains(ACCOUNTS)) db.createObjectStore(ACCOUNTS, { keyPath: "account" });
      };
      request.onsuccess = () => {
        const db = request.result;
        // Another tab upgrading the schema: let it, and reopen on the next call.
        db.onversionchange = () => { db.close(); opened = null; };
        resolve(db);
      };
      request.onerror = () => { opened = null; reject(request.error); };
      request.onblocked = () => reject(new Error("IndexedDB is blocked by another tab"));
    });
  }
  return opened;
}

// Run `work(store)` in one transaction; resolves with its result once the transaction commits.
async function inStore(name, mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(name, mode);
    let result;
    Promise.resolve(work(tx.objectStore(name))).then((value) => { result = value; }, reject);
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("IndexedDB transaction aborted"));
  });
}

function ownAccount(account) {
  if (typeof account !== "string" || !account) throw new TypeError("account must be a non-empty string");
  return account;
}

function announce(account, submissionId) {
  // Other tabs (an open uploads page) learn of a new or changed recording.
  try {
    const channel = new BroadcastChannel("vexam-uploads");
    channel.postMessage({ account, submissionId });
    channel.close();
  } catch {
    // No BroadcastChannel: the uploads page still reads IndexedDB when it opens.
  }
}

/**
 * Keep a submitted recording of `account` (the signed-in user's id) for upload.
 * record: { submissionId, examId, examName, subjectName, blob, type, size, sha256 (lowercase
 * hex), receipt (the submit response) }. Resolves once stored. Keeping the same submission
 * again with the same SHA-256 keeps its upload address and progress.
 */
export async function keepRecording(account, record) {
  ownAccount(account);
  const { submissionId, blob } = record || {};
  const sha256 = String(record?.sha256 || "").toLowerCase();
  if (!Number.isInteger(submissionId)) throw new TypeError("submissionId must be an integer");
  if (!(blob instanceof Blob)) throw new TypeError("blob must be a Blob");
  if (!SHA256_RE.test(sha256)) throw new TypeError("sha256 must be 64 hex digits");
  if (record.size !== blob.size) throw new TypeError("size must be the blob's size");
  // Ask the browser not to evict this origin's storage under pressure (best effort).
  navigator.storage?.persist?.().catch(() => {});
  const now = new Date().toISOString();
  await inStore(RECORDINGS, "readwrite", async (store) => {
    const earlier = await promised(store.get([account, submissionId]));
    const same = earlier && earlier.sha256 === sha256 && earlier.blob;
    store.put({
      account,
      submissionId,
      examId: record.examId,
      examName: record.examName || "",
      subjectName: record.subjectName || "",
      blob,
      type: record.type || blob.type,
      size: blob.size,
      sha256,
      receipt: record.receipt || null,
      uploadUrl: same ? earlier.uploadUrl : null,
      sent: same ? earlier.sent : 0,
      state: same && earlier.state !== "uploading" ? earlier.state : "waiting",
      error: null,
      errorCode: null,
      keptAt: same ? earlier.keptAt : now,
      updatedAt: now,
    });
  });
  announce(account, submissionId);
}

/** This account's recordings, the oldest first (blobs included; verified ones have none). */
export async function listRecordings(account) {
  ownAccount(account);
  const rows = await inStore(RECORDINGS, "readonly", (store) =>
    promised(store.index("account").getAll(account)),
  );
  return rows.sort((a, b) => String(a.keptAt).localeCompare(String(b.keptAt)));
}

/** Change fields of one of this account's records (never another account's). */
export async function updateRecording(account, submissionId, changes) {
  ownAccount(account);
  return inStore(RECORDINGS, "readwrite", async (store) => {
    const row = await promised(store.get([account, submissionId]));
    if (!row) return null;
    const next = { ...row, ...changes, account, submissionId, updatedAt: new Date().toISOString() };
    store.put(next);
    return next;
  });
}

/** The server verified the upload: drop the bytes, keep the receipt and state. */
export async function markVerified(account, submissionId) {
  return updateRecording(account, submissionId, { blob: null, state: "verified", sent: null, error: null, errorCode: null });
}

/** Remove one of this account's records entirely, only once its upload is verified. */
export async function forget(account, submissionId) {
  ownAccount(account);
  return inStore(RECORDINGS, "readwrite", async (store) => {
    const row = await promised(store.get([account, submissionId]));
    if (!row || row.state !== "verified") return false;
    store.delete([account, submissionId]);
    return true;
  });
}

/** Remember how to name `account` to the next person who signs in here (a masked phone). */
export async function rememberAccount(account, label) {
  ownAccount(account);
  await inStore(ACCOUNTS, "readwrite", (store) =>
    store.put({ account, label: label || "", seenAt: new Date().toISOString() }),
  );
}

/**
 * Other accounts with recordings not yet uploaded on this browser:
 * [{ account, label (masked phone, or "" if unknown), count, bytes }]. Read only.
 */
export async function otherAccounts(account) {
  ownAccount(account);
  const db = await database();
  const [rows, accounts] = await new Promise((resolve, reject) => {
    const tx = db.transaction([RECORDINGS, ACCOUNTS], "readonly");
    const all = tx.objectStore(RECORDINGS).getAll();
    const names = tx.objectStore(ACCOUNTS).getAll();
    tx.oncomplete = () => resolve([all.result, names.result]);
    tx.onerror = () => reject(tx.error);
  });
  const labels = new Map(accounts.map((row) => [row.account, row.label]));
  const found = new Map();
  for (const row of rows) {
    if (row.account === account || !row.blob || !UNFINISHED.includes(row.state)) continue;
    const entry = found.get(row.account) || { account: row.account, label: labels.get(row.account) || "", count: 0, bytes: 0 };
    entry.count += 1;
    entry.bytes += row.size || 0;
    found.set(row.account, entry);
  }
  return [...found.values()];
}

/** What a page needs for a banner: { unfinished: this account's count, others: otherAccounts }. */
export async function summary(account) {
  const mine = await listRecordings(account);
  return {
    unfinished: mine.filter((row) => row.blob && UNFINISHED.includes(row.state)).length,
    others: await otherAccounts(account),
  };
}

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content;
}

// One tab uploads a recording at a time (others wait), so two open pages do not fight.
async function exclusively(name, work) {
  if (!navigator.locks?.request) return work();
  return navigator.locks.request(name, work);
}

/**
 * Upload every unfinished recording of `account`, one after another, resuming where the
 * server is. options: { onProgress({submissionId, sent, size, speed, secondsLeft}),
 * onState(record), chunkSize }. Returns { done: Promise, abort() }: `done` resolves when no
 * upload is left to try (refused ones are kept with their error).
 */
export function uploadAll(account, options = {}) {
  ownAccount(account);
  let current = null;
  let stopped = false;
  const run = async () => {
    const tried = new Set();
    for (;;) {
      if (stopped) return;
      const rows = await listRecordings(account);
      const next = rows.find(
        (row) => row.blob && (row.state === "waiting" || row.state === "uploading") && !tried.has(row.submissionId),
      );
      if (!next) return;
      tried.add(next.submissionId);
      await exclusively(`vexam-upload-${account}-${next.submissionId}`, () => uploadOne(next));
    }
  };
  const uploadOne = async (row) => {
    if (stopped) return;
    // Read again under the lock: another tab may have finished it meanwhile.
    const fresh = (await listRecordings(account)).find((r) => r.submissionId === row.submissionId);
    if (!fresh || !fresh.blob || !["waiting", "uploading"].includes(fresh.state)) return;
    const headers = {};
    const csrf = csrfToken();
    if (csrf) headers["X-CSRF-Token"] = csrf;
    let record = await updateRecording(account, row.submissionId, { state: "uploading", error: null, errorCode: null });
    options.onState?.(record, { state: "uploading" });
    let lastSaved = 0;
    current = new TusUpload(fresh.blob, {
      endpoint: ENDPOINT,
      url: fresh.uploadUrl,
      headers,
      chunkSize: options.chunkSize,
      metadata: {
        submission_id: String(row.submissionId),
        filename: `submission-${row.submissionId}.${(fresh.type || "").includes("mp4") ? "mp4" : "webm"}`,
        filetype: fresh.type || "",
        sha256: fresh.sha256,
      },
      // Kept at once: after a reload the upload resumes at this address.
      onUrl: (url) => updateRecording(account, row.submissionId, { uploadUrl: url }),
      onProgress: (progress) => {
        options.onProgress?.({ submissionId: row.submissionId, ...progress });
        // The server's offset is the truth; this is only for showing progress after a reload.
        if (progress.sent - lastSaved > 1024 * 1024) {
          lastSaved = progress.sent;
          updateRecording(account, row.submissionId, { sent: progress.sent }).catch(() => {});
        }
      },
      onStatus: (status) => options.onState?.(record, status),
    });
    try {
      await current.start();
      record = await updateRecording(account, row.submissionId, { state: "uploaded", sent: fresh.size });
      options.onState?.(record, { state: "uploaded" });
    } catch (error) {
      if (error instanceof TusAbort) {
        record = await updateRecording(account, row.submissionId, { state: "waiting" });
        options.onState?.(record, { state: "waiting" });
        return;
      }
      const state = FINAL[error.code] || "failed";
      record = await updateRecording(account, row.submissionId, {
        state,
        errorCode: error.code || "unknown",
        error: error.message || String(error),
      });
      options.onState?.(record, { state, error });
    } finally {
      current = null;
    }
  };
  const done = run();
  return {
    done,
    abort() {
      stopped = true;
      current?.abort();
    },
  };
}
