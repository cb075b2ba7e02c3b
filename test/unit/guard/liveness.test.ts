// The liveness witness, pure, with a fake clock: when the background deep check fails on two or
// more sampled stable pods (an outage), liveness failing on them too is DeepInPractice; liveness
// holding is not; one pod failing alone is not an outage.
import { describe, expect, it } from "vitest";
import {
  deepInPracticeMessage,
  isLivenessFailure,
  podEvidence,
  type SampledPod,
  stepWitness,
  type WitnessState,
} from "../../../src/policy/guard/liveness.ts";
import { probesConcern } from "../../../src/policy/probes/concern.ts";
import { parseHealthPolicy } from "../../../src/api/v1alpha1/parse.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const s = (n: number) => T0 + n * 1000;
const config = { failureThreshold: 2, intervalMs: 10_000 };

const pod = (name: string, over: Partial<SampledPod> = {}): SampledPod => ({
  uid: `uid-${name}`,
  name,
  failures: 0,
  restarts: 0,
  restartsAtPass: 0,
  livenessEvents: [],
  ...over,
});
const failing = (name: string, since: number, over: Partial<SampledPod> = {}) =>
  pod(name, { failures: 3, failingSince: since, ...over });

describe("stepWitness", () => {
  const cases: {
    what: string;
    state?: WitnessState;
    pods: SampledPod[];
    now: number;
    revision?: string;
    want: { outage: boolean; finding: boolean; held?: boolean; readEventsOf?: string[] };
  }[] = [
    {
      what: "all passing: nothing",
      pods: [pod("a"), pod("b")],
      now: s(100),
      want: { outage: false, finding: false, readEventsOf: [] },
    },
    {
      what: "one pod failing alone is a sick pod, not an outage",
      pods: [failing("a", s(0), { livenessEvents: [{ at: s(5), firstAt: s(5), count: 3 }] }), pod("b")],
      now: s(30),
      want: { outage: false, finding: false, readEventsOf: [] },
    },
    {
      what: "failures below the threshold are not failing yet",
      pods: [pod("a", { failures: 1, failingSince: s(0) }), pod("b", { failures: 1, failingSince: s(0) })],
      now: s(10),
      want: { outage: false, finding: false },
    },
    {
      what: "two failing with liveness holding: an outage, events to read, no finding",
      pods: [failing("a", s(0)), failing("b", s(1))],
      now: s(20),
      want: { outage: true, finding: false, readEventsOf: ["uid-a", "uid-b"] },
    },
    {
      what: "two failing and a liveness failure on one during the outage: the finding",
      pods: [
        failing("a", s(0), { restarts: 2, livenessEvents: [{ at: s(12), firstAt: s(4), count: 6 }] }),
        failing("b", s(1)),
      ],
      now: s(20),
      want: { outage: true, finding: true },
    },
    {
      what: "a liveness failure long before the outage is not evidence",
      pods: [
        failing("a", s(100), { livenessEvents: [{ at: s(10), firstAt: s(0), count: 3 }] }),
        failing("b", s(100)),
      ],
      now: s(130),
      want: { outage: true, finding: false },
    },
    {
      what: "a liveness failure without a restart is not evidence (a lone timeout restarts nothing)",
      pods: [
        failing("a", s(0), { livenessEvents: [{ at: s(12), firstAt: s(12), count: 1 }] }),
        failing("b", s(0)),
      ],
      now: s(30),
      want: { outage: true, finding: false },
    },
    {
      what: "restarts without a liveness Event are not evidence (a crash is not liveness)",
      pods: [failing("a", s(0), { restarts: 3 }), failing("b", s(0), { restarts: 1 })],
      now: s(30),
      want: { outage: true, finding: false },
    },
    {
      what: "an outage that ends with liveness holding is recorded as held and clears an older finding",
      state: {
        outage: { since: s(200), pods: ["a", "b"] },
        finding: { outageSince: s(0), seenAt: s(20), deepFailing: ["a", "b"], pods: [] },
      },
      pods: [pod("a"), pod("b")],
      now: s(260),
      want: { outage: false, finding: false, held: true },
    },
    {
      what: "an outage that made the finding keeps it when it ends",
      state: {
        outage: { since: s(0), pods: ["a", "b"] },
        finding: { outageSince: s(0), seenAt: s(20), deepFailing: ["a", "b"], pods: [] },
      },
      pods: [pod("a"), pod("b")],
      now: s(60),
      want: { outage: false, finding: true },
    },
    {
      what: "a finding about another revision goes",
      state: {
        finding: { outageSince: s(0), seenAt: s(20), revision: "old", deepFailing: ["a", "b"], pods: [] },
      },
      pods: [pod("a"), pod("b")],
      now: s(60),
      revision: "new",
      want: { outage: false, finding: false },
    },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const { state, readEventsOf } = stepWitness(c.state ?? {}, c.pods, c.now, config, c.revision);
      expect(state.outage !== undefined, "outage").toBe(c.want.outage);
      expect(state.finding !== undefined, "finding").toBe(c.want.finding);
      if (c.want.held !== undefined) expect(state.held !== undefined, "held").toBe(c.want.held);
      if (c.want.readEventsOf) expect(readEventsOf).toEqual(c.want.readEventsOf);
    });
  }

  it("the finding carries the pods, their restarts and the times, and the outage's start", () => {
    const { state } = stepWitness(
      {},
      [
        failing("a", s(10), {
          restarts: 2,
          restartsAtPass: 0,
          livenessEvents: [{ at: s(30), firstAt: s(12), count: 6 }],
        }),
        failing("b", s(11), { restarts: 1, restartsAtPass: 1 }),
      ],
      s(40),
      config,
      "rev1",
    );
    expect(state.finding).toEqual({
      outageSince: s(10),
      seenAt: s(40),
      revision: "rev1",
      deepFailing: ["a", "b"],
      pods: [{ pod: "a", restarts: 2, livenessFailures: 6, firstAt: s(12), lastAt: s(30) }],
    });
    const message = deepInPracticeMessage(state.finding!);
    expect(message).toContain("outage from 2026-01-01T00:00:10Z");
    expect(message).toContain(
      "pod a: 6 liveness failures from 2026-01-01T00:00:12Z to 2026-01-01T00:00:30Z, 2 restarts",
    );
    expect(message).toContain("stable pods a, b");
  });

  it("the outage keeps its start while it lasts; evidence seen earlier in it stays", () => {
    const first = stepWitness(
      {},
      [
        failing("a", s(0), { restarts: 1, livenessEvents: [{ at: s(8), firstAt: s(8), count: 3 }] }),
        failing("b", s(2)),
      ],
      s(20),
      config,
    ).state;
    const later = stepWitness(first, [failing("b", s(2)), failing("c", s(25))], s(40), config).state;
    expect(later.outage?.since).toBe(s(0));
    expect(later.outage?.pods).toEqual(["a", "b", "c"]);
    expect(later.finding?.pods.map((p) => p.pod)).toEqual(["a"]);
  });

  it("counts events from one interval before the first failed check (the dependency may have failed then)", () => {
    const e = podEvidence(
      failing("a", s(100), { livenessEvents: [{ at: s(95), firstAt: s(80), count: 2 }] }),
      s(100),
      config,
    );
    expect(e).toMatchObject({ livenessFailures: 2, firstAt: s(90), lastAt: s(95) });
  });
});

describe("isLivenessFailure", () => {
  it("reads the kubelet's Unhealthy Events for liveness only", () => {
    expect(
      isLivenessFailure("Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 503"),
    ).toBe(true);
    expect(
      isLivenessFailure("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"),
    ).toBe(false);
    expect(isLivenessFailure("Killing", "Container web failed liveness probe, will be restarted")).toBe(
      false,
    );
  });
});

describe("LivenessShallow from the witness", () => {
  const parsed = parseHealthPolicy({
    apiVersion: "healthgate.io/v1alpha1",
    kind: "HealthPolicy",
    metadata: { name: "web", namespace: "ns" },
    spec: { targetRef: { name: "web" } },
  });
  if (!parsed.ok) throw new Error("policy");
  const deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "web", namespace: "ns" },
    spec: {
      selector: { matchLabels: { app: "web" } },
      template: {
        metadata: { labels: { app: "web" } },
        spec: {
          containers: [
            {
              name: "web",
              ports: [{ name: "http", containerPort: 8080 }],
              livenessProbe: { httpGet: { path: "/healthz", port: "http" } },
            },
          ],
        },
      },
    },
  };
  const snapshot = (livenessWitness?: Parameters<typeof deepInPracticeMessage>[0]) =>
    ({
      policy: parsed.policy,
      deployment,
      replicaSets: [],
      pods: [],
      pdbs: [],
      nodeZones: {},
      now: new Date(s(100)),
      ...(livenessWitness ? { livenessWitness } : {}),
    }) as unknown as Parameters<typeof probesConcern>[0];

  it("a shallow path is Shallow without evidence, DeepInPractice with it (and an Event for the flip)", () => {
    const shallow = probesConcern(snapshot()).conditions.find((c) => c.type === "LivenessShallow");
    expect(shallow).toMatchObject({ status: "True", reason: "Shallow" });
    const finding = {
      outageSince: s(0),
      seenAt: s(20),
      deepFailing: ["a", "b"],
      pods: [{ pod: "a", restarts: 1, livenessFailures: 3, firstAt: s(4), lastAt: s(12) }],
    };
    const c = probesConcern(snapshot(finding));
    expect(c.conditions.find((x) => x.type === "LivenessShallow")).toMatchObject({
      status: "False",
      reason: "DeepInPractice",
    });
    expect(c.events.find((e) => e.reason === "DeepInPractice")?.type).toBe("Warning");
  });
});
