// Which address a deep check dials: only what the pod is. Pure.
//
// The IP is the pod's own (status.podIP, written by its kubelet); the port is a number, or a name
// resolved against the ports the pod's containers declare (a number stands for itself, as in
// lint); the path is the policy's deepCheck.path, which the API's schema already restricts to
// a path on the pod itself — checked again here, since a policy stored under an older CRD never
// met that rule. No host, URL, header or redirect target comes from a policy.
import type { Pod } from "../api/k8s.ts";
import { OWN_ENDPOINT_PATH, type HealthPolicySpec } from "../api/v1alpha1/index.ts";
import { resolvePort } from "../policy/probes/defaults.ts";
import type { Cohort, ProbeTarget } from "./types.ts";

/** Why a pod is not deep-checked; each is reported, never silently skipped. */
export const UNCHECKED_REASONS = [
  "NoDeepCheck",
  "HostNetwork",
  "NotRunning",
  "Terminating",
  "NoPodIP",
  "PortUnresolved",
  "PathRefused",
] as const;
export type UncheckedReason = (typeof UNCHECKED_REASONS)[number];

export type TargetVerdict =
  { target: ProbeTarget } | { unchecked: { reason: UncheckedReason; message: string } };

const POD_TEMPLATE_HASH = "pod-template-hash";
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9a-fA-F:]+$/;
/** Link-local (cloud metadata lives there): never a pod's address. */
const LINK_LOCAL = /^(169\.254\.|fe80:)/i;

const unchecked = (reason: UncheckedReason, message: string): TargetVerdict => ({
  unchecked: { reason, message },
});

/** The deep-check target for a pod selected by a policy, or why it is not checked. */
export function deepCheckTarget(policy: HealthPolicySpec, pod: Pod, cohort: Cohort): TargetVerdict {
  const check = policy.rollout?.deepCheck;
  const name = `${pod.metadata.namespace ?? ""}/${pod.metadata.name}`;
  if (!check) return unchecked("NoDeepCheck", "the policy has no spec.rollout.deepCheck");
  if (pod.spec.hostNetwork)
    return unchecked(
      "HostNetwork",
      `pod ${name} uses hostNetwork: its IP is the node's, so healthgate does not deep-check it; run it without hostNetwork to gate it`,
    );
  if (pod.metadata.deletionTimestamp) return unchecked("Terminating", `pod ${name} is terminating`);
  if (pod.status?.phase !== "Running")
    return unchecked("NotRunning", `pod ${name} is ${pod.status?.phase ?? "not started"}, not Running`);
  const ip = pod.status.podIP;
  if (!ip || !(IPV4.test(ip) || (ip.includes(":") && IPV6.test(ip))) || LINK_LOCAL.test(ip))
    return unchecked(
      "NoPodIP",
      `pod ${name} has no usable pod IP (status.podIP ${JSON.stringify(ip ?? null)})`,
    );

  const port = resolveDeepCheckPort(policy, pod);
  if (typeof port === "string") return unchecked("PortUnresolved", `pod ${name}: ${port}`);
  if (!OWN_ENDPOINT_PATH.test(check.path))
    return unchecked(
      "PathRefused",
      `spec.rollout.deepCheck.path ${JSON.stringify(check.path)} is not a path on the pod itself; use e.g. /health/deep`,
    );

  return {
    target: {
      key: pod.metadata.uid ?? name,
      namespace: pod.metadata.namespace ?? "",
      pod: pod.metadata.name,
      revision: pod.metadata.labels?.[POD_TEMPLATE_HASH] ?? "",
      cohort,
      ip,
      port,
      scheme: check.scheme,
      path: check.path,
      intervalMs: check.intervalSeconds * 1000,
      timeoutMs: check.timeoutSeconds * 1000,
      expect: {
        statuses: [...check.expect.statuses],
        ...(check.expect.bodyContains !== undefined ? { bodyContains: check.expect.bodyContains } : {}),
      },
    },
  };
}

/**
 * deepCheck.port, else spec.endpoints.port, else the first port the governed containers declare.
 * A name must be declared by a governed container; a number stands for itself. Returns the port,
 * or a message saying what is wrong.
 */
function resolveDeepCheckPort(policy: HealthPolicySpec, pod: Pod): number | string {
  const governed = pod.spec.containers.filter(
    (c) => policy.containers === undefined || policy.containers.includes(c.name),
  );
  const wanted = policy.rollout?.deepCheck.port ?? policy.endpoints.port;
  if (wanted === undefined) {
    const first = governed.find((c) => (c.ports ?? []).length > 0)?.ports?.[0]?.containerPort;
    return (
      first ??
      "no port: set spec.rollout.deepCheck.port (or spec.endpoints.port), or declare a container port"
    );
  }
  for (const container of governed) {
    const port = resolvePort(container, wanted);
    if (port !== undefined && port >= 1 && port <= 65535) return port;
  }
  return `port ${JSON.stringify(wanted)} is not declared by ${governed.length === 0 ? "any governed container" : `container ${governed.map((c) => c.name).join(", ")}`}; declare it under ports[] or set spec.rollout.deepCheck.port`;
}
