// The seam every concern plugs into (DESIGN.md, "The seam"). Per target — one
// Deployment governed by one policy — the reconciler gathers a snapshot, runs
// each concern as a pure function snapshot → Contribution, and ONE writer
// merges the contributions into at most one spec apply, one Deployment-status
// apply, one policy-status write and one apply per owned object.
import type {
  ConditionType,
  DetectionFigures,
  Finding,
  GuardFigures,
  HeadroomFigures,
  HealthPolicy,
  RolloutFigures,
} from "../api/v1alpha1/index.ts";
import type {
  Container,
  Deployment,
  HorizontalPodAutoscaler,
  Pod,
  PodDisruptionBudget,
  PodUsageSample,
  Probe,
  ReplicaSet,
} from "../api/k8s.ts";
import type { GuardAssessment } from "./guard/assess.ts";
import type { DeepInPractice } from "./guard/liveness.ts";

/** Everything a concern may look at, read once per reconcile. Never mutated. */
export interface TargetSnapshot {
  /** The governing policy, parsed with the zod schema (defaults applied). */
  readonly policy: HealthPolicy;
  readonly deployment: Deployment;
  /** ReplicaSets owned by the Deployment. */
  readonly replicaSets: readonly ReplicaSet[];
  /** Pods owned by those ReplicaSets. */
  readonly pods: readonly Pod[];
  /** The autoscaling/v2 HPA whose scaleTargetRef is this Deployment, if any. */
  readonly hpa?: HorizontalPodAutoscaler;
  /** PodDisruptionBudgets in the namespace whose selector matches the Deployment's pods. */
  readonly pdbs: readonly PodDisruptionBudget[];
  /** Node name → topology.kubernetes.io/zone, for nodes that carry the label. */
  readonly nodeZones: Readonly<Record<string, string>>;
  /** metrics.k8s.io samples for the target's pods over the window; "unavailable" when the API is absent. */
  readonly usage?: readonly PodUsageSample[] | "unavailable";
  /** The correlated-failure guard's look at the pods (src/policy/guard), when the controller keeps its history. */
  readonly guard?: GuardAssessment;
  /** Liveness seen failing together with the background deep check (src/policy/guard/liveness.ts). */
  readonly livenessWitness?: DeepInPractice;
  readonly now: Date;
}

export interface ConditionIntent {
  type: ConditionType;
  status: "True" | "False" | "Unknown";
  /** CamelCase. */
  reason: string;
  /** Says what is wrong and what to do. */
  message: string;
}

export interface EventIntent {
  regarding: "Policy" | "Deployment";
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  /**
   * Sent with this reconcile, not only when a condition of the same reason flips: for reports
   * of something that happened (a flapping pod), which the concern makes once per occurrence.
   */
  immediate?: boolean;
}

/** Probe, preStop and grace fields of one container that healthgate owns in Enforce mode. */
export interface OwnedContainerFields {
  name: Container["name"];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: Container["lifecycle"];
}

/** The pod-template fields healthgate owns; the writer sends them all in ONE server-side apply. */
export interface OwnedSpec {
  terminationGracePeriodSeconds?: number;
  containers: OwnedContainerFields[];
}

/** An object the policy owns (e.g. its PodDisruptionBudget); the writer adds the ownerReference. */
export interface OwnedObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: unknown;
}

export interface Contribution {
  concern: "probes" | "headroom" | "rollout" | "guard";
  ownedSpec?: OwnedSpec;
  conditions: ConditionIntent[];
  findings: Finding[];
  figures: {
    detection?: DetectionFigures[];
    headroom?: HeadroomFigures;
    rollout?: RolloutFigures;
    guard?: GuardFigures;
  };
  events: EventIntent[];
  ownedObjects?: OwnedObject[];
  /** Ask to be reconciled again after this long even if nothing changes (timed work). */
  requeueAfterSeconds?: number;
}

/** A concern is a pure function of the snapshot. */
export type Concern = (snapshot: TargetSnapshot) => Contribution;

export const emptyContribution = (concern: Contribution["concern"]): Contribution => ({
  concern,
  conditions: [],
  findings: [],
  figures: {},
  events: [],
});
