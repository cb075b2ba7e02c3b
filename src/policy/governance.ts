import type { Deployment } from "../api/k8s.ts";
import type { HealthPolicy } from "../api/v1alpha1/index.ts";
import { selectorMatches } from "./selector.ts";

/** What governance reads of a policy: its identity, age, selector and targetRef. */
export interface SelectingPolicy {
  metadata: Pick<HealthPolicy["metadata"], "name" | "namespace" | "creationTimestamp">;
  spec: Pick<HealthPolicy["spec"], "selector" | "targetRef">;
}

/** What governance reads of a Deployment: its name, namespace and labels. */
export interface SelectedDeployment {
  metadata: Pick<Deployment["metadata"], "name" | "namespace" | "labels">;
}

/** Whether a policy selects a Deployment (same namespace; selector and targetRef must both match when set). */
export function policySelects(policy: SelectingPolicy, deployment: SelectedDeployment): boolean {
  if ((policy.metadata.namespace ?? "") !== (deployment.metadata.namespace ?? "")) return false;
  const { selector, targetRef } = policy.spec;
  if (!selector && !targetRef) return false;
  if (targetRef && targetRef.name !== deployment.metadata.name) return false;
  if (selector && !selectorMatches(selector, deployment.metadata.labels)) return false;
  return true;
}

/** Oldest first: creationTimestamp, then name (DESIGN.md: the oldest policy governs). */
export function comparePolicyAge(a: SelectingPolicy, b: SelectingPolicy): number {
  const ta = a.metadata.creationTimestamp ?? "";
  const tb = b.metadata.creationTimestamp ?? "";
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

/** The policy that governs a Deployment among those that select it, or undefined. */
export function governingPolicy<P extends SelectingPolicy>(
  policies: readonly P[],
  deployment: SelectedDeployment,
): P | undefined {
  return policies.filter((p) => policySelects(p, deployment)).sort(comparePolicyAge)[0];
}
