// The official tus-js-client (npm) uploads one file to a live vexam server, for
// tests/uploads/test_tus_js_client.py. Every PATCH carries Upload-Checksum (sha256 of the
// chunk: tus-js-client has no checksum option, so the onBeforeRequest hook adds it); the
// upload is aborted after the first chunks and resumed by a new Upload from its URL, as an
// app restarted after a crash would. Prints one JSON line with what happened.
//
// usage: node upload.mjs <endpoint> <file> <chunk-bytes> <abort-after-bytes>
// env:   VEXAM_UPLOAD_HEADERS (JSON object), VEXAM_UPLOAD_METADATA (JSON object)
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import tus from "tus-js-client";

const [endpoint, file, chunkArg, abortArg] = process.argv.slice(2);
const chunkSize = Number(chunkArg);
const abortAfter = Number(abortArg);
const headers = JSON.parse(process.env.VEXAM_UPLOAD_HEADERS ?? "{}");
const metadata = JSON.parse(process.env.VEXAM_UPLOAD_METADATA ?? "{}");
const data = readFileSync(file);
const seen = { patches: 0, checksummed: 0, resumedFrom: null, statuses: [] };

function withChecksum(req) {
  if (req.getMethod() !== "PATCH") return;
  const offset = Number(req.getHeader("Upload-Offset"));
  const chunk = data.subarray(offset, Math.min(offset + chunkSize, data.length));
  const digest = createHash("sha256").update(chunk).digest("base64");
  req.setHeader("Upload-Checksum", `sha256 ${digest}`);
  seen.patches += 1;
  seen.checksummed += 1;
}

function record(req, res) {
  seen.statuses.push(`${req.getMethod()} ${res.getStatus()}`);
  if (req.getMethod() === "HEAD" && seen.resumedFrom === null) {
    seen.resumedFrom = Number(res.getHeader("Upload-Offset"));
  }
}

function options(extra) {
  return {
    endpoint,
    headers,
    metadata,
    chunkSize,
    uploadSize: data.length,
    retryDelays: [0, 500, 1000],
    removeFingerprintOnSuccess: true,
    storeFingerprintForResuming: false,
    onBeforeRequest: withChecksum,
    onAfterResponse: record,
    ...extra,
  };
}

// First run: create the upload, send chunks, abort once `abortAfter` bytes are in.
const url = await new Promise((resolve, reject) => {
  const first = new tus.Upload(data, options({
    onError: reject,
    onSuccess: () => reject(new Error("finished before the abort")),
    onChunkComplete(_size, accepted) {
      if (accepted >= abortAfter) {
        first.abort(false).then(() => resolve(first.url), reject);
      }
    },
  }));
  first.start();
});
const abortedAt = seen.patches;

// Second run: a new Upload that knows only the URL: HEAD, then PATCH from the server's offset.
const finalUrl = await new Promise((resolve, reject) => {
  const second = new tus.Upload(data, options({
    uploadUrl: url,
    onError: reject,
    onSuccess: () => resolve(second.url),
  }));
  second.start();
});
console.log(JSON.stringify({ url, finalUrl, abortedAtPatch: abortedAt, ...seen }));
