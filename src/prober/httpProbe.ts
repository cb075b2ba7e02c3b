// One deep check: one GET on a fresh connection, bounded in time and bytes. Never throws — every
// way it can go wrong is a Measurement with an error class.
//
// As the kubelet's prober: a fresh connection per probe (no agent, no keep-alive, the socket
// destroyed at the end; without an agent Node sends Connection: close), HTTPS without certificate verification, no redirect followed (a 3xx is
// just a status). Stricter than it: one deadline covers connect, TLS, headers and the whole
// body (a target that drips a byte a second costs the timeout, not forever), and the body read
// stops at BODY_CAP_BYTES, after which the connection is closed.
import http from "node:http";
import https from "node:https";
import tls from "node:tls";
import { BODY_CAP_BYTES, type ErrorClass, type Measurement, type ProbeTarget } from "./types.ts";

const USER_AGENT = "healthgate-deep-check/1";
/**
 * One TLS context for every HTTPS probe: certificates are not verified, so it needs no CA store,
 * and without it each connection would build a context of its own (the root store included).
 */
let secureContext: tls.SecureContext | undefined;

const TRANSPORT_CODES: Record<string, ErrorClass> = {
  ECONNREFUSED: "refused",
  ECONNRESET: "reset",
  EPIPE: "reset",
  ECONNABORTED: "reset",
  EHOSTUNREACH: "unreachable",
  ENETUNREACH: "unreachable",
  EHOSTDOWN: "unreachable",
  EADDRNOTAVAIL: "unreachable",
};

/** The class of an error from the request or response, given whether headers had arrived. */
export function classifyError(err: NodeJS.ErrnoException, answered: boolean): ErrorClass {
  const code = err.code ?? "";
  if (code.startsWith("HPE_")) return "protocol";
  if (answered) return "reset-during-body";
  const transport = TRANSPORT_CODES[code];
  if (transport) return transport;
  if (code.startsWith("ERR_SSL") || code.startsWith("ERR_TLS") || code === "EPROTO" || "library" in err)
    return "tls";
  return "other";
}

export interface RunningProbe {
  measurement: Promise<Measurement>;
  /** Ends the probe at once (the target was removed); its measurement is then of no use. */
  cancel(): void;
}

/** Probes once; `await probeOnce(target).measurement`. */
export function probeOnce(target: ProbeTarget): RunningProbe {
  const startedAt = Date.now();
  const t0 = performance.now();
  const needle = target.expect.bodyContains;
  let cancel = () => undefined as void;
  const measurement = new Promise<Measurement>((resolve) => {
    let statusCode: number | undefined;
    let bytesRead = 0;
    let truncated = false;
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let done = false;

    const finish = (errorClass?: ErrorClass, detail?: string) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      req.destroy();
      const m: Measurement = {
        startedAt,
        durationMs: performance.now() - t0,
        bytesRead,
        truncated,
        ...(statusCode !== undefined ? { statusCode } : {}),
        ...(errorClass !== undefined ? { errorClass } : {}),
        ...(detail !== undefined ? { detail } : {}),
      };
      if (needle !== undefined && statusCode !== undefined && errorClass === undefined)
        m.bodyMatched = Buffer.concat(kept, keptBytes).includes(needle);
      resolve(m);
    };
    cancel = () => finish("other", "cancelled");

    const request = target.scheme === "HTTPS" ? https.request : http.request;
    const req = request({
      host: target.ip,
      port: target.port,
      path: target.path,
      method: "GET",
      agent: false,
      headers: { "User-Agent": USER_AGENT },
      rejectUnauthorized: false,
      ...(target.scheme === "HTTPS" ? { secureContext: (secureContext ??= tls.createSecureContext()) } : {}),
    });
    const deadline = setTimeout(
      () =>
        finish(
          statusCode === undefined ? "timeout-before-answer" : "timeout-during-body",
          `no complete answer within ${target.timeoutMs} ms`,
        ),
      target.timeoutMs,
    );

    req.on("error", (err: NodeJS.ErrnoException) =>
      finish(classifyError(err, statusCode !== undefined), err.code ?? err.message),
    );
    req.on("response", (res) => {
      statusCode = res.statusCode;
      res.on("data", (chunk: Buffer) => {
        bytesRead += chunk.length;
        if (needle !== undefined && keptBytes < BODY_CAP_BYTES) {
          const part = chunk.subarray(0, BODY_CAP_BYTES - keptBytes);
          kept.push(part);
          keptBytes += part.length;
        }
        if (bytesRead >= BODY_CAP_BYTES) {
          truncated = bytesRead > BODY_CAP_BYTES || !res.complete;
          finish();
        }
      });
      res.on("end", () => finish());
      res.on("error", (err: NodeJS.ErrnoException) =>
        finish(classifyError(err, true), err.code ?? err.message),
      );
      res.on("close", () => (res.complete ? finish() : finish("reset-during-body", "closed mid-body")));
    });
    req.end();
  });
  return { measurement, cancel: () => cancel() };
}
