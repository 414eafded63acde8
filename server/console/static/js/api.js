// The console's only way to the server: the public GraphQL API, over HTTP (queries and
// mutations) and graphql-transport-ws (subscriptions), with the user's token.

const ENDPOINT = "/tasker/graphql";
const TOKEN_KEY = "tasker.token";
const AUTH_CODES = new Set(["AUTHENTICATION_FAILED", "UNAUTHENTICATED"]);

/** A failure to show in words: `message` is the server's own, `code` its stable code. */
export class ApiError extends Error {
  constructor(message, { code = null, details = null, status = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.details = details;
    this.status = status;
  }
}

/** The token is missing, invalid or expired: the app sends the user to the token field. */
export class AuthError extends ApiError {
  constructor(message, options) {
    super(message || "Your token is missing, invalid or expired.", options);
    this.name = "AuthError";
  }
}

// Session storage only: the token leaves with the browser tab, never persists on disk.
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => value ? sessionStorage.setItem(TOKEN_KEY, value.trim())
                        : sessionStorage.removeItem(TOKEN_KEY),
};

const authListeners = new Set();
/** Called with the AuthError whenever the server refuses the token. */
export function onAuthFailure(listener) { authListeners.add(listener); }

function failAuth(error) {
  for (const listener of authListeners) listener(error);
  return error;
}

function errorFromGraphQL(errors, status) {
  const first = errors[0] || {};
  const code = (first.extensions && first.extensions.code) || null;
  const message = errors.map((e) => e.message).filter(Boolean).join("; ") || "Request failed";
  if (AUTH_CODES.has(code) || status === 401) return failAuth(new AuthError(message, { code, status }));
  return new ApiError(message, { code, status });
}

function errorFromEnvelope(body, status) {
  const env = body && body.error;
  const message = (env && env.message) || `The server answered HTTP ${status}`;
  const options = { code: env && env.code, details: env && env.details, status };
  return status === 401 ? failAuth(new AuthError(message, options)) : new ApiError(message, options);
}

/** Run a query or mutation; resolves to `data`, rejects with ApiError/AuthError. */
export async function gql(query, variables = {}) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const bearer = token.get();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let response;
  try {
    response = await fetch(ENDPOINT, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  } catch (err) {
    throw new ApiError(`Cannot reach the server (${err.message}).`, { code: "NETWORK" });
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: described below */ }
  if (body && Array.isArray(body.errors) && body.errors.length) throw errorFromGraphQL(body.errors, response.status);
  if (!response.ok) throw errorFromEnvelope(body, response.status);
  if (!body || typeof body.data !== "object") throw new ApiError("The server sent an unreadable answer.");
  return body.data;
}

/** A mutation result union: the object, or an ApiError built from its `... on Error` member. */
export function unwrap(result) {
  if (result && typeof result.code === "string" && typeof result.message === "string" && !result.id) {
    const details = Array.isArray(result.details) ? result.details : null;
    throw new ApiError(result.message, { code: result.code, details });
  }
  return result;
}

let socket = null;
let socketReady = null;
let nextId = 1;
const sinks = new Map();

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${ENDPOINT}`;
}

function openSocket() {
  if (socketReady) return socketReady;
  socketReady = new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(), "graphql-transport-ws");
    let acked = false;
    ws.onopen = () => {
      const bearer = token.get();
      const payload = bearer ? { Authorization: `Bearer ${bearer}` } : {};
      ws.send(JSON.stringify({ type: "connection_init", payload }));
    };
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type === "connection_ack") { acked = true; socket = ws; resolve(ws); return; }
      if (msg.type === "ping") { ws.send(JSON.stringify({ type: "pong" })); return; }
      const sink = sinks.get(msg.id);
      if (!sink) return;
      if (msg.type === "next") {
        if (msg.payload.errors && msg.payload.errors.length) sink.error(errorFromGraphQL(msg.payload.errors));
        else sink.next(msg.payload.data);
      } else if (msg.type === "error") {
        sinks.delete(msg.id);
        sink.error(errorFromGraphQL(Array.isArray(msg.payload) ? msg.payload : [msg.payload || {}]));
      } else if (msg.type === "complete") {
        sinks.delete(msg.id);
        sink.complete();
      }
    };
    ws.onclose = (event) => {
      socket = null; socketReady = null;
      // 4401/4403: the server refused the connection's token.
      const auth = event.code === 4401 || event.code === 4403;
      const error = auth ? failAuth(new AuthError(event.reason || null, { status: 401 }))
                         : new ApiError(`Live updates disconnected (${event.reason || event.code}).`, { code: "WS_CLOSED" });
      if (!acked) reject(error);
      for (const [id, sink] of sinks) { sinks.delete(id); sink.error(error); }
    };
  });
  return socketReady;
}

/** Subscribe; returns a function that stops it. `sink` has next(data), error(err), complete(). */
export function subscribe(query, variables, sink) {
  const id = String(nextId++);
  let stopped = false;
  openSocket().then((ws) => {
    if (stopped) return;
    sinks.set(id, sink);
    ws.send(JSON.stringify({ id, type: "subscribe", payload: { query, variables } }));
  }, (err) => { if (!stopped) sink.error(err); });
  return () => {
    stopped = true;
    if (sinks.delete(id) && socket) socket.send(JSON.stringify({ id, type: "complete" }));
  };
}

/** Close the live connection (after the token changes, so the next one carries the new one). */
export function resetLive() {
  if (socket) socket.close(1000, "token changed");
  socket = null; socketReady = null;
}
