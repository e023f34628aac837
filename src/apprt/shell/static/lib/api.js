// The platform's API from the shell: JSON in, JSON out, problem+json as ApiError.
// Authentication is the HttpOnly session cookie set by POST /api/v1/login; the shell
// never sees the token.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.title = problem?.title || `HTTP ${status}`;
    this.problems = Array.isArray(problem?.problems) ? problem.problems : [];
  }
}

const listeners = new Set();

/** Called with the ApiError whenever the session is missing or expired (401). */
export function onUnauthenticated(fn) {
  listeners.add(fn);
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, credentials: "same-origin", signal, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { title: "network error", detail: "the platform cannot be reached" });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const problem = typeof data === "object" ? data : { title: response.statusText, detail: data };
    const error = new ApiError(response.status, problem);
    if (response.status === 401) for (const fn of listeners) fn(error);
    throw error;
  }
  return data;
}

/** Plain text (logs). */
export async function apiText(path, { signal } = {}) {
  const response = await fetch(path, { credentials: "same-origin", signal });
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      problem = { title: response.statusText };
    }
    throw new ApiError(response.status, problem);
  }
  return response.text();
}

/** A readable sentence for any error (ApiError problems included). */
export function describeError(error) {
  if (error instanceof ApiError) {
    const details = error.problems.map((p) => p.reason + (p.hint ? ` (${p.hint})` : ""));
    return [error.title, ...details].filter(Boolean).join(": ");
  }
  return String(error?.message || error);
}
