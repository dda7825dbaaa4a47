// Takes recorded on this phone, kept in IndexedDB until one of them is handed to the upload
// queue: a reload or a crash between recording and submitting loses no video (SPEC §5).
// Each take belongs to one account, so several accounts on one phone never see each other's.

const DB_NAME = "vexam-takes";
const STORE = "takes";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

let opened = null;

function database() {
  if (!opened) {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      const store = req.result.createObjectStore(STORE, { keyPath: "recordingId" });
      store.createIndex("sitting", ["account", "sittingId"]);
    };
    opened = request(req);
  }
  return opened;
}

async function transaction(mode, work) {
  const db = await database();
  const tx = db.transaction(STORE, mode);
  const result = work(tx.objectStore(STORE));
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
  return result;
}

/** Keep `take` ({recordingId, account, sittingId, subjectId, blob, type, duration, ...}). */
export async function keepTake(take) {
  await transaction("readwrite", (store) => store.put(take));
}

/** The takes `account` keeps for one sitting. */
export async function takesOf(account, sittingId) {
  const db = await database();
  const index = db.transaction(STORE).objectStore(STORE).index("sitting");
  return request(index.getAll([account, sittingId]));
}

/** Forget takes no longer needed (handed to the upload queue, or never to be submitted). */
export async function dropTakes(recordingIds) {
  await transaction("readwrite", (store) => recordingIds.forEach((id) => store.delete(id)));
}
