// Small network helpers for starting and probing local components.
import { readFileSync } from "node:fs";
import { readlink } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { setTimeout as delay } from "node:timers/promises";

/**
 * The first port of the kernel's ephemeral range (where it picks local ports of outgoing
 * connections and of listen(0)); 32768, Linux's default, where /proc does not say.
 */
function ephemeralStart(): number {
  try {
    const first = Number(
      readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0],
    );
    return Number.isInteger(first) && first > 1024 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

/** Above 10080, the highest port fetch() refuses to connect to ("bad port", the Fetch standard). */
const PORTS_FROM = 10_081;

function tryListen(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", (err: NodeJS.ErrnoException) =>
      err.code === "EADDRINUSE" || err.code === "EACCES" ? resolve(undefined) : reject(err),
    );
    server.listen(port, host, () => {
      const { port: bound } = server.address() as net.AddressInfo;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A TCP port that was free on `host` a moment ago, for a process started next to listen on.
 * Picked at random below the ephemeral range: a port the kernel picked (listen(0)) is free again
 * once closed, and until the process binds it, any outgoing connection on the machine may take
 * it as its local port (EADDRINUSE, seen under a busy test run). Below that range only another
 * listener can.
 */
export async function freePort(host: string): Promise<number> {
  const end = ephemeralStart();
  for (let attempt = 0; end > PORTS_FROM && attempt < 50; attempt++) {
    const port = await tryListen(host, PORTS_FROM + Math.floor(Math.random() * (end - PORTS_FROM)));
    if (port !== undefined) return port;
  }
  const port = await tryListen(host, 0);
  if (port === undefined) throw new Error(`no free TCP port on ${host}`);
  return port;
}

export interface TlsClient {
  caFile: string;
  /** Client certificate and key; without them the request is anonymous. */
  certFile?: string;
  keyFile?: string;
}

export interface HttpResult {
  status: number;
  body: string;
}

/** GET `url` (http or https with client certificate), never following redirects. */
export function httpGet(url: string, tls?: TlsClient, timeoutMs = 5_000): Promise<HttpResult> {
  return httpRequest("GET", url, { ...(tls ? { tls } : {}), timeoutMs });
}

export interface HttpRequestOptions {
  tls?: TlsClient;
  /** Sent as application/json. */
  json?: unknown;
  timeoutMs?: number;
}

/** One HTTP(S) request, never following redirects; resolves with any status. */
export function httpRequest(
  method: string,
  url: string,
  options: HttpRequestOptions = {},
): Promise<HttpResult> {
  const { tls, json, timeoutMs = 5_000 } = options;
  const body = json === undefined ? undefined : JSON.stringify(json);
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on("error", reject);
    };
    const headers = body === undefined ? {} : { "content-type": "application/json" };
    const req = url.startsWith("https:")
      ? https.request(
          url,
          {
            method,
            headers,
            ...(tls
              ? {
                  ca: readFileSync(tls.caFile),
                  ...(tls.certFile && tls.keyFile
                    ? { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }
                    : {}),
                }
              : {}),
          },
          onResponse,
        )
      : http.request(url, { method, headers }, onResponse);
    req.setTimeout(timeoutMs, () =>
      req.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)),
    );
    req.on("error", reject);
    req.end(body);
  });
}

export interface PollOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** What is awaited, for the error message: "kube-apiserver /readyz". */
  what: string;
  /** Settles when waiting is pointless (a component died); its rejection is rethrown. */
  abort?: Promise<never>;
}

/**
 * Calls `check` until it returns a value other than undefined. Errors thrown by
 * `check` count as "not yet"; the last one is reported on timeout.
 */
export async function pollUntil<T>(check: () => Promise<T | undefined>, options: PollOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let last: string;
  let aborted: unknown;
  let abortedSet = false;
  options.abort?.catch((err: unknown) => {
    aborted = err;
    abortedSet = true;
  });
  for (;;) {
    if (abortedSet) throw aborted;
    try {
      const value = await check();
      if (value !== undefined) return value;
      last = "not ready yet";
    } catch (err) {
      last = (err as Error).message;
    }
    if (abortedSet) throw aborted;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what} (last: ${last})`);
    }
    await delay(options.intervalMs ?? 100);
  }
}

/** The identity of this process's network namespace, e.g. "net:[4026531840]". */
export function currentNetns(): Promise<string> {
  return readlink("/proc/self/ns/net");
}
