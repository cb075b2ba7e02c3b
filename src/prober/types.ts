// The prober's data: what it dials (a target) and what it saw (a result). Pure: shared by the
// worker, the main-thread handle and the assessment in src/policy/rollout.

/** New pods of a rollout, or the sample of stable pods checked beside them. Metrics say this, never the pod. */
export type Cohort = "new" | "stable";
export const COHORTS: readonly Cohort[] = ["new", "stable"];

export type Scheme = "HTTP" | "HTTPS";

/** What a passing deep check looks like (spec.rollout.deepCheck.expect). */
export interface DeepCheckExpectation {
  statuses: readonly number[];
  bodyContains?: string | undefined;
}

/**
 * One pod to deep-check. Built only by {@link deepCheckTarget} (src/prober/targets.ts): the pod's
 * own IP, a port the pod declares (or a number), a path the API's schema admits. Nothing here is
 * a host, URL or header taken from a policy.
 */
export interface ProbeTarget {
  /** The pod's uid: a recreated pod under the same name is another target. */
  key: string;
  namespace: string;
  pod: string;
  /** The pod's pod-template-hash: which revision it runs. */
  revision: string;
  cohort: Cohort;
  ip: string;
  port: number;
  scheme: Scheme;
  path: string;
  intervalMs: number;
  /** Covers connect, TLS, headers and the whole body. */
  timeoutMs: number;
  expect: DeepCheckExpectation;
}

/**
 * Why a probe produced no complete answer. Transport errors mean the pod was not reached or said
 * nothing; the others mean it answered, wrongly. The rollout needs the two apart: errors on new
 * and stable pods alike mean healthgate cannot reach pods (a NetworkPolicy), not a bad revision.
 */
export const TRANSPORT_ERROR_CLASSES = [
  /** ECONNREFUSED: nothing listens on the port. */
  "refused",
  /** The connection was reset or closed before a response began. */
  "reset",
  /** No route, or the address is not there. */
  "unreachable",
  /** No response headers within the timeout (connect and TLS included). */
  "timeout-before-answer",
  /** The TLS handshake failed (certificates are not verified; this is a protocol mismatch). */
  "tls",
  /** Any other error before a response began (kept with its code in `detail`). */
  "other",
] as const;

export const ANSWER_ERROR_CLASSES = [
  /** Bytes came back that are not HTTP. */
  "protocol",
  /** Headers came, the body did not finish within the timeout. */
  "timeout-during-body",
  /** Headers came, then the connection broke. */
  "reset-during-body",
] as const;

export type TransportErrorClass = (typeof TRANSPORT_ERROR_CLASSES)[number];
export type AnswerErrorClass = (typeof ANSWER_ERROR_CLASSES)[number];
export type ErrorClass = TransportErrorClass | AnswerErrorClass;

/** What one probe saw: data, never an exception. */
export interface Measurement {
  /** Wall-clock start (epoch ms). */
  startedAt: number;
  durationMs: number;
  /** The response's status, when headers arrived. */
  statusCode?: number;
  /** Body bytes received (the read stops at the cap; one chunk may pass it). */
  bytesRead: number;
  /** The body was longer than the cap: the connection was closed after it. */
  truncated: boolean;
  errorClass?: ErrorClass;
  /** The error code or message behind errorClass, for logs (ECONNRESET, HPE_INVALID_CONSTANT). */
  detail?: string;
  /** Whether the first bytes of the body (up to the cap) contain expect.bodyContains; absent when not asked. */
  bodyMatched?: boolean;
}

/** pass: answered as expected; fail: answered, wrongly; error: not reached (a transport error). */
export type Outcome = "pass" | "fail" | "error";

/** A measurement of one target, with who it was and how late it started. */
export interface DeepCheckResult extends Measurement {
  key: string;
  namespace: string;
  pod: string;
  revision: string;
  cohort: Cohort;
  outcome: Outcome;
  /** How long after its scheduled time the probe started (the prober's own health). */
  latenessMs: number;
}

/** The most body a probe reads; the kubelet reads 10 KiB. */
export const BODY_CAP_BYTES = 64 * 1024;
