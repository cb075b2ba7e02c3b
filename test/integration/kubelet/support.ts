// What the kubelet scenarios share: Enforce policies with fast probe timing (so the kubelet's
// behaviour shows in seconds) and readers for the probes the live pods carry.
import type { V1Pod, V1Probe } from "@kubernetes/client-node";
import type { HealthPolicySpecInput } from "../../../src/api/v1alpha1/index.ts";
import type { Modifier } from "../../support/builders.ts";
import { makePolicy, withMode, withShutdown, type HealthPolicyObject } from "../controller/support.ts";

/** Liveness every 2 s (3 failures: a restart within ~7 s), readiness every 2 s (2 successes to admit). */
export const FAST_TIMING: NonNullable<HealthPolicySpecInput["timing"]> = {
  liveness: { periodSeconds: 2, timeoutSeconds: 1, failureThreshold: 3 },
  readiness: { periodSeconds: 2, timeoutSeconds: 1, failureThreshold: 3, successThreshold: 2 },
};

export const withEndpoints =
  (endpoints: Partial<NonNullable<HealthPolicySpecInput["endpoints"]>>): Modifier<HealthPolicyObject> =>
  (policy) => {
    policy.spec.endpoints = { ...policy.spec.endpoints, ...endpoints };
  };

/** An Enforce policy for app `name` with FAST_TIMING and a 1 s drain (unless a modifier changes them). */
export const fastEnforcePolicy = (name: string, ...modifiers: Modifier<HealthPolicyObject>[]) =>
  makePolicy(
    name,
    withMode("Enforce"),
    withShutdown({ drainSeconds: 1, maxInFlightSeconds: 1 }),
    (policy) => {
      policy.spec.timing = FAST_TIMING;
    },
    ...modifiers,
  );

export type ProbeKind = "liveness" | "readiness" | "startup";

/** The probe of the pod's first container, as the kubelet runs it. */
export function probeOf(pod: V1Pod, kind: ProbeKind): V1Probe | undefined {
  return pod.spec?.containers[0]?.[`${kind}Probe`];
}

/** The HTTP path of the pod's probe, or undefined. */
export function probePath(pod: V1Pod, kind: ProbeKind): string | undefined {
  return probeOf(pod, kind)?.httpGet?.path;
}
