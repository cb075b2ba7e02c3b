import { describe, expect, it } from "vitest";
import type { Container } from "../../../src/api/k8s.ts";
import {
  detectionFigures,
  ejectSeconds,
  livenessPeriodForObjectives,
  objectiveMisses,
  policyTiming,
  readinessPeriodForObjectives,
  readmitSeconds,
  restartSeconds,
} from "../../../src/policy/detection.ts";
import { probeTiming } from "../../../src/policy/probes/defaults.ts";
import { makePolicy } from "./build.ts";

// DESIGN.md's example: readiness 5 s × 3 + 1, success 2; liveness 10 s × 3 + 1 + probe grace 15.
const designContainer: Container = {
  name: "web",
  readinessProbe: {
    httpGet: { path: "/readyz", port: 8080 },
    periodSeconds: 5,
    timeoutSeconds: 1,
    failureThreshold: 3,
    successThreshold: 2,
  },
  livenessProbe: {
    httpGet: { path: "/healthz", port: 8080 },
    periodSeconds: 10,
    timeoutSeconds: 1,
    failureThreshold: 3,
    terminationGracePeriodSeconds: 15,
  },
};

describe("detection figures", () => {
  it("DESIGN.md's example: eject 16, readmit 10, restart 31 + 15 = 46", () => {
    expect(detectionFigures(designContainer, { containers: [designContainer] })).toEqual({
      container: "web",
      ejectSeconds: 16,
      readmitSeconds: 10,
      restartSeconds: 46,
    });
  });

  it.each([
    // name, probe fields, eject, readmit
    { name: "Kubernetes defaults (10 × 3 + 1; 10 × 1)", probe: {}, eject: 31, readmit: 10 },
    {
      name: "literal zeros mean the defaults",
      probe: { periodSeconds: 0, timeoutSeconds: 0, failureThreshold: 0, successThreshold: 0 },
      eject: 31,
      readmit: 10,
    },
    {
      name: "fast: 2 × 3 + 1; 2 × 2",
      probe: { periodSeconds: 2, failureThreshold: 3, successThreshold: 2 },
      eject: 7,
      readmit: 4,
    },
    {
      name: "slow timeout counts once: 10 × 1 + 5",
      probe: { periodSeconds: 10, failureThreshold: 1, timeoutSeconds: 5 },
      eject: 15,
      readmit: 10,
    },
  ])("readiness $name → eject $eject, readmit $readmit", ({ probe, eject, readmit }) => {
    const timing = probeTiming(probe);
    expect(ejectSeconds(timing)).toBe(eject);
    expect(readmitSeconds(timing)).toBe(readmit);
  });

  it.each([
    { name: "defaults, pod grace default 30", probe: {}, pod: {}, restart: 61 },
    { name: "pod grace 10", probe: {}, pod: { terminationGracePeriodSeconds: 10 }, restart: 41 },
    {
      name: "probe grace wins over the pod's",
      probe: { terminationGracePeriodSeconds: 5 },
      pod: { terminationGracePeriodSeconds: 120 },
      restart: 36,
    },
    {
      name: "5 × 6 + 2 + 0",
      probe: { periodSeconds: 5, failureThreshold: 6, timeoutSeconds: 2 },
      pod: { terminationGracePeriodSeconds: 0 },
      restart: 32,
    },
  ])("liveness $name → restart $restart", ({ probe, pod, restart }) => {
    const container: Container = { name: "c", livenessProbe: { tcpSocket: { port: 1 }, ...probe } };
    expect(detectionFigures(container, { containers: [container], ...pod }).restartSeconds).toBe(restart);
  });

  it("leaves figures out for absent probes", () => {
    expect(detectionFigures({ name: "bare" }, { containers: [] })).toEqual({ container: "bare" });
  });

  it("restartSeconds adds the kill grace", () => {
    expect(restartSeconds(probeTiming({ periodSeconds: 10 }), 15)).toBe(46);
  });
});

describe("objective misses", () => {
  const figures = { container: "web", ejectSeconds: 16, readmitSeconds: 10, restartSeconds: 46 };
  it.each([
    {
      name: "all met",
      objectives: { maxEjectSeconds: 16, maxReadmitSeconds: 10, maxRestartSeconds: 46 },
      missed: [],
    },
    { name: "eject missed by one", objectives: { maxEjectSeconds: 15 }, missed: ["maxEjectSeconds"] },
    {
      name: "readmit and restart missed",
      objectives: { maxReadmitSeconds: 5, maxRestartSeconds: 45 },
      missed: ["maxReadmitSeconds", "maxRestartSeconds"],
    },
    { name: "no objectives", objectives: undefined, missed: [] },
  ])("$name", ({ objectives, missed }) => {
    expect(objectiveMisses(figures, objectives).map((m) => m.objective)).toEqual(missed);
  });
  it("a missing figure misses nothing", () => {
    expect(objectiveMisses({ container: "x" }, { maxEjectSeconds: 2 })).toEqual([]);
  });
});

describe("timing derived from objectives", () => {
  const knobs = { timeoutSeconds: 1, failureThreshold: 3, successThreshold: 2 };
  it.each([
    // the longest period p with 3p + 1 ≤ eject and 2p ≤ readmit
    { name: "DESIGN's eject 20 → p = 6 (19 s)", objectives: { maxEjectSeconds: 20 }, period: 6 },
    { name: "eject 16 → p = 5 (16 s)", objectives: { maxEjectSeconds: 16 }, period: 5 },
    {
      name: "readmit 10 binds: p = 5",
      objectives: { maxEjectSeconds: 60, maxReadmitSeconds: 10 },
      period: 5,
    },
    {
      name: "impossible eject 2 → the shortest valid period, 2",
      objectives: { maxEjectSeconds: 2 },
      period: 2,
    },
    { name: "no readiness objective", objectives: { maxRestartSeconds: 60 }, period: undefined },
  ])("readiness: $name", ({ objectives, period }) => {
    expect(readinessPeriodForObjectives(objectives, knobs)).toBe(period);
  });

  it.each([
    { name: "restart 60 with grace 15 → (60 − 1 − 15) / 3 = 14", grace: 15, restart: 60, period: 14 },
    { name: "restart 60 with grace 30 → 9", grace: 30, restart: 60, period: 9 },
    { name: "grace alone exceeds the objective → 2 (reported as a miss)", grace: 90, restart: 60, period: 2 },
  ])("liveness: $name", ({ grace, restart, period }) => {
    expect(
      livenessPeriodForObjectives(
        { maxRestartSeconds: restart },
        { timeoutSeconds: 1, failureThreshold: 3, killGraceSeconds: grace },
      ),
    ).toBe(period);
  });

  it("policyTiming derives 3 / 1 / 2 and the longest periods, and meets the objectives", () => {
    const policy = makePolicy({
      timing: { objectives: { maxEjectSeconds: 20, maxReadmitSeconds: 12, maxRestartSeconds: 60 } },
    });
    const timing = policyTiming(policy, 25);
    expect(timing.readiness).toEqual({
      periodSeconds: 6,
      timeoutSeconds: 1,
      failureThreshold: 3,
      successThreshold: 2,
      initialDelaySeconds: 0,
    });
    expect(timing.liveness).toMatchObject({
      periodSeconds: 11,
      timeoutSeconds: 1,
      failureThreshold: 3,
      successThreshold: 1,
    });
    expect(ejectSeconds(timing.readiness)).toBeLessThanOrEqual(20);
    expect(readmitSeconds(timing.readiness)).toBeLessThanOrEqual(12);
    expect(restartSeconds(timing.liveness, 25)).toBeLessThanOrEqual(60);
  });

  it("explicit timing wins field by field", () => {
    const policy = makePolicy({
      timing: {
        readiness: { periodSeconds: 10 },
        liveness: { failureThreshold: 5, terminationGracePeriodSeconds: 15 },
        objectives: { maxEjectSeconds: 20, maxRestartSeconds: 60 },
      },
    });
    const timing = policyTiming(policy, 30);
    expect(timing.readiness).toMatchObject({ periodSeconds: 10, failureThreshold: 3, successThreshold: 2 });
    // (60 − 1 − 15) / 5 = 8.8 → 8, using the probe-level grace
    expect(timing.liveness).toMatchObject({
      periodSeconds: 8,
      failureThreshold: 5,
      terminationGracePeriodSeconds: 15,
    });
  });

  it("without objectives: readiness 5 s, liveness 10 s", () => {
    const timing = policyTiming(makePolicy(), 30);
    expect(timing.readiness.periodSeconds).toBe(5);
    expect(timing.liveness.periodSeconds).toBe(10);
  });
});
