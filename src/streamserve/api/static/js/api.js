// The server's own API, called the way any OpenAI client calls it. Paths are relative to the page,
// so the playground also works behind a proxy that serves the server under a sub-path.

import { readEvents } from "./sse.js";

const KEY_STORAGE = "streamserve.apiKey";

// An error in OpenAI's envelope ({"error": {message, type, param, code}}), or a network failure.
export class ApiError extends Error {
  constructor(message, { status = null, type = null, param = null, code = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
  }

  // One line a person can read: "400 invalid_request_error (param: tools): ...".
  describe() {
    const head = [this.status, this.type].filter((part) => part !== null && part !== "").join(" ");
    const param = this.param ? ` (param: ${this.param})` : "";
    return `${head ? head + param + ": " : ""}${this.message}`;
  }
}

// The API key lives in sessionStorage: this tab only, gone when it closes, never in localStorage.
export const apiKey = {
  get: () => sessionStorage.getItem(KEY_STORAGE),
  set: (key) => sessionStorage.setItem(KEY_STORAGE, key),
  clear: () => sessionStorage.removeItem(KEY_STORAGE),
};

function headers() {
  const result = { "Content-Type": "application/json" };
  const key = apiKey.get();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall back to the status line
  }
  const error = body && typeof body.error === "object" && body.error !== null ? body.error : {};
  return new ApiError(error.message || response.statusText || "request failed", {
    status: response.status, type: error.type ?? null, param: error.param ?? null, code: error.code ?? null,
  });
}

async function call(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`cannot reach the server: ${error.message}`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function listModels() {
  const response = await call("v1/models", { headers: headers() });
  const body = await response.json();
  return body.data;
}

// A non-streamed chat completion: the whole answer in one JSON body.
export async function chat(body, signal) {
  const response = await call("v1/chat/completions", {
    method: "POST", headers: headers(), body: JSON.stringify({ ...body, stream: false }), signal,
  });
  return response.json();
}

// A streamed chat completion: yields each chunk; a mid-stream error event is thrown as an ApiError.
export async function* streamChat(body, signal) {
  const response = await call("v1/chat/completions", {
    method: "POST",
    headers: headers(),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  for await (const event of readEvents(response)) {
    if (event.error) {
      const e = event.error;
      throw new ApiError(e.message || "the stream failed", { type: e.type ?? null, param: e.param ?? null, code: e.code ?? null });
    }
    yield event;
  }
}

// The Prometheus text of /metrics (no key needed).
export async function metricsText(signal) {
  const response = await call("metrics", { signal, cache: "no-store" });
  return response.text();
}
