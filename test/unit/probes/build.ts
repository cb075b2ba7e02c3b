// Builders for probe tests: a container with modifiers, so each table row
// states only what it is about.
import type { Container, PodSpec, Probe } from "../../../src/api/k8s.ts";
import {
  healthPolicySpec,
  type HealthPolicySpec,
  type HealthPolicySpecInput,
} from "../../../src/api/v1alpha1/index.ts";
import { defaultPolicySpec, type RuleContext } from "../../../src/policy/probes/index.ts";

export type ContainerModifier = (c: Container) => Container;

/** A well-behaved container: shallow liveness and readiness, hysteresis, drain. Every rule is quiet on it. */
export function makeContainer(...modifiers: ContainerModifier[]): Container {
  const base: Container = {
    name: "web",
    image: "web:1",
    ports: [{ name: "http", containerPort: 8080 }],
    livenessProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 10, failureThreshold: 3 },
    readinessProbe: {
      httpGet: { path: "/readyz", port: "http" },
      periodSeconds: 5,
      failureThreshold: 3,
      successThreshold: 2,
    },
    lifecycle: { preStop: { sleep: { seconds: 5 } } },
  };
  return modifiers.reduce((c, m) => m(c), base);
}

export const withLiveness =
  (probe: Probe | undefined): ContainerModifier =>
  (c) => ({ ...c, livenessProbe: probe });
export const withReadiness =
  (probe: Probe | undefined): ContainerModifier =>
  (c) => ({ ...c, readinessProbe: probe });
export const withStartup =
  (probe: Probe | undefined): ContainerModifier =>
  (c) => ({ ...c, startupProbe: probe });
export const patchLiveness =
  (patch: Partial<Probe>): ContainerModifier =>
  (c) => ({ ...c, livenessProbe: { ...c.livenessProbe, ...patch } });
export const patchReadiness =
  (patch: Partial<Probe>): ContainerModifier =>
  (c) => ({ ...c, readinessProbe: { ...c.readinessProbe, ...patch } });
export const withPorts =
  (ports: Container["ports"]): ContainerModifier =>
  (c) => ({ ...c, ports });
export const withLifecycle =
  (lifecycle: Container["lifecycle"]): ContainerModifier =>
  (c) => ({ ...c, lifecycle });
export const withName =
  (name: string): ContainerModifier =>
  (c) => ({ ...c, name });

export const httpGet = (path: string, port: number | string = "http", extra: Partial<Probe> = {}): Probe => ({
  httpGet: { path, port },
  ...extra,
});
export const exec = (...command: string[]): Probe => ({ exec: { command } });

/** A policy spec through the zod schema (defaults applied); a targetRef is added so the schema accepts it. */
export function makePolicy(spec: Partial<HealthPolicySpecInput> = {}): HealthPolicySpec {
  return healthPolicySpec.parse({ targetRef: { name: "web" }, endpoints: {}, ...spec });
}

export function makeContext(
  container: Container,
  opts: { policy?: HealthPolicySpec; pod?: Partial<PodSpec> } = {},
): RuleContext {
  return {
    container,
    podSpec: { containers: [container], ...opts.pod },
    workload: { kind: "Deployment", name: "web", namespace: "shop" },
    policy: opts.policy ?? defaultPolicySpec(),
  };
}
