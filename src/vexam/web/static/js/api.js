// The public JSON API as the candidate app calls it: same-origin cookies, the page's CSRF
// token, and refusals as `Problem` (the server's catalogue code and its localised detail).

export const csrf = document.querySelector('meta[name="csrf-token"]')?.content;

export class Problem extends Error {
  constructor(body, status) {
    super(body?.detail || String(status));
    this.body = body || {};
    this.status = status;
    this.code = this.body.code || "unknown";
  }
}

/** Call `url` with `method`; a JSON body unless `body` is FormData; resolves to the JSON. */
export async function api(method, url, body) {
  const headers = { Accept: "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new Problem(data, response.status);
  return data;
}

/** Show `message` in `element` (hidden when empty). */
export function show(element, message) {
  element.textContent = message;
  element.hidden = !message;
}
