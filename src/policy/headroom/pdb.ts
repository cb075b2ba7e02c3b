// Disruption budgets, the pure half: the PodDisruptionBudget healthgate would own
// for a target, and what is wrong with the budgets that already cover its pods.
// PDBs do not limit rolling updates (that is maxUnavailable's job, see math.ts);
// they limit evictions, i.e. node drains.
import type { Deployment, PodDisruptionBudget } from "../../api/k8s.ts";
import type { Finding } from "../../api/v1alpha1/index.ts";
import type { OwnedObject } from "../seam.ts";
import { parseIntOrPercent, scaleIntOrPercent } from "./math.ts";

export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY_VALUE = "healthgate";
const NAME_SUFFIX = "-healthgate";
const MAX_NAME_LENGTH = 253;

/** FNV-1a, 32 bits, hex: a short deterministic tag to keep truncated names distinct. */
const fnv1a = (s: string): string => {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
};

/** `<deployment>-healthgate`; a name too long for that is cut and tagged with a hash of the full name. */
export function pdbName(deploymentName: string): string {
  const name = `${deploymentName}${NAME_SUFFIX}`;
  if (name.length <= MAX_NAME_LENGTH) return name;
  const tag = `-${fnv1a(deploymentName)}${NAME_SUFFIX}`;
  return `${deploymentName.slice(0, MAX_NAME_LENGTH - tag.length).replace(/[-.]+$/, "")}${tag}`;
}

export interface PodDisruptionBudgetSpec {
  selector: Deployment["spec"]["selector"];
  maxUnavailable: number;
  unhealthyPodEvictionPolicy: "AlwaysAllow";
}

/**
 * The PDB healthgate owns when `managePodDisruptionBudget` is set: the Deployment's own selector,
 * `maxUnavailable: tolerate` (drains may take what the headroom was sized to lose), and
 * `unhealthyPodEvictionPolicy: AlwaysAllow` so crash-looping pods never deadlock a drain.
 * The writer adds the ownerReference to the Deployment, so the PDB leaves with it.
 */
export function desiredPodDisruptionBudget(deployment: Deployment, tolerate: number): OwnedObject {
  const spec: PodDisruptionBudgetSpec = {
    selector: deployment.spec.selector,
    maxUnavailable: tolerate,
    unhealthyPodEvictionPolicy: "AlwaysAllow",
  };
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: {
      name: pdbName(deployment.metadata.name),
      ...(deployment.metadata.namespace !== undefined ? { namespace: deployment.metadata.namespace } : {}),
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
    },
    spec,
  };
}

/** Whether healthgate made this PDB (by label). */
export const isManagedPdb = (pdb: PodDisruptionBudget): boolean =>
  pdb.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;

/** Whether a PDB is the one healthgate owns for this Deployment (by label and name). */
export const isOwnPdb = (pdb: PodDisruptionBudget, deployment: Deployment): boolean =>
  isManagedPdb(pdb) && pdb.metadata.name === pdbName(deployment.metadata.name);

/**
 * Why a PDB blocks every voluntary eviction of these pods, or undefined. Percentages resolve
 * against the replicas as the disruption controller does (both round up). The status check
 * only counts at steady state — every expected pod healthy and still no disruption allowed —
 * because a budget that is exhausted by unhealthy pods is doing its job.
 */
export function blocksEveryDrain(
  pdb: PodDisruptionBudget,
  replicas: number,
): { field: string; why: string } | undefined {
  const { minAvailable, maxUnavailable } = pdb.spec;
  if (maxUnavailable !== undefined) {
    const parsed = parseIntOrPercent(maxUnavailable);
    if (parsed && scaleIntOrPercent(parsed, replicas, true) === 0) {
      return {
        field: "spec.maxUnavailable",
        why: `maxUnavailable ${maxUnavailable} allows no eviction at all`,
      };
    }
  }
  if (minAvailable !== undefined) {
    const parsed = parseIntOrPercent(minAvailable);
    if (parsed && scaleIntOrPercent(parsed, replicas, true) >= replicas) {
      return {
        field: "spec.minAvailable",
        why: `minAvailable ${minAvailable} with ${replicas} replica${replicas === 1 ? "" : "s"} allows no eviction`,
      };
    }
  }
  const status = pdb.status;
  if (
    status?.disruptionsAllowed === 0 &&
    status.expectedPods !== undefined &&
    status.expectedPods > 0 &&
    (status.currentHealthy ?? 0) >= status.expectedPods
  ) {
    return {
      field: "status.disruptionsAllowed",
      why: `all ${status.expectedPods} pods are healthy and it still allows 0 disruptions`,
    };
  }
  return undefined;
}

export interface DisruptionBudgets {
  ownedObjects: OwnedObject[];
  findings: Finding[];
}

/**
 * The PDB to own (if asked and no one else's PDB covers the pods) and findings about the
 * budgets covering the pods. `pdbs` are those whose selector matches the Deployment's pods.
 * healthgate's own PDB is left out of the analysis: its spec is the desired one, and when it is
 * no longer desired the writer deletes it.
 */
export function assessDisruptionBudgets(input: {
  deployment: Deployment;
  pdbs: readonly PodDisruptionBudget[];
  tolerate: number;
  manage: boolean;
}): DisruptionBudgets {
  const { deployment, tolerate, manage } = input;
  const name = deployment.metadata.name;
  const replicas = deployment.spec.replicas ?? 1;
  const others = [...input.pdbs]
    .filter((pdb) => !isOwnPdb(pdb, deployment))
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
  const findings: Finding[] = [];

  if (others.length >= 2) {
    findings.push({
      rule: "PodDisruptionBudgetOverlap",
      severity: "error",
      message:
        `PodDisruptionBudgets ${others.map((p) => p.metadata.name).join(", ")} all cover the pods of Deployment ${name}; ` +
        `the eviction API refuses to evict a pod covered by more than one, so every node drain stalls on these pods. ` +
        `Keep one budget and delete the others (or narrow their selectors)`,
    });
  }
  for (const pdb of others) {
    const blocked = replicas > 0 ? blocksEveryDrain(pdb, replicas) : undefined;
    if (blocked) {
      findings.push({
        rule: "PodDisruptionBudgetBlocksDrain",
        severity: "error",
        field: blocked.field,
        message:
          `PodDisruptionBudget ${pdb.metadata.name} blocks every drain of Deployment ${name}'s pods: ${blocked.why}, so ` +
          `node drains and cluster upgrades stall. Allow at least ${tolerate} disruption${tolerate === 1 ? "" : "s"} ` +
          `(e.g. maxUnavailable: ${tolerate}) or run more replicas than minAvailable`,
      });
    }
    if (pdb.spec.unhealthyPodEvictionPolicy !== "AlwaysAllow") {
      findings.push({
        rule: "PodDisruptionBudgetUnhealthyPolicy",
        severity: "info",
        field: "spec.unhealthyPodEvictionPolicy",
        message:
          `PodDisruptionBudget ${pdb.metadata.name} does not set unhealthyPodEvictionPolicy: AlwaysAllow, so crash-looping ` +
          `pods of Deployment ${name} count against the budget and can deadlock a drain; set it to AlwaysAllow`,
      });
    }
  }

  if (!manage) return { ownedObjects: [], findings };
  if (others.length > 0) {
    findings.push({
      rule: "PodDisruptionBudgetNotManaged",
      severity: "info",
      message:
        `managePodDisruptionBudget is set, but PodDisruptionBudget ${others.map((p) => p.metadata.name).join(", ")} ` +
        `already covers the pods of Deployment ${name}; healthgate does not add its own (two budgets over one pod make ` +
        `eviction fail). Delete that budget to let healthgate manage one, or unset managePodDisruptionBudget`,
    });
    return { ownedObjects: [], findings };
  }
  return { ownedObjects: [desiredPodDisruptionBudget(deployment, tolerate)], findings };
}
