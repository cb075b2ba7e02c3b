import { describe, expect, it } from "vitest";
import type { PodTemplateSpec } from "../../../src/api/k8s.ts";
import {
  carriesDecision,
  decisionOf,
  enforcedCondition,
  guardProblems,
  ownedSpecOf,
} from "../../../src/policy/enforce.ts";
import type { OwnedSpec } from "../../../src/policy/seam.ts";

const owned: OwnedSpec = {
  terminationGracePeriodSeconds: 25,
  containers: [
    {
      name: "web",
      livenessProbe: {
        httpGet: { path: "/healthz", port: "http", scheme: "HTTP" },
        periodSeconds: 10,
        timeoutSeconds: 1,
        successThreshold: 1,
        failureThreshold: 3,
      },
      lifecycle: { preStop: { sleep: { seconds: 5 } } },
    },
  ],
};
const decision = decisionOf(owned);

const template = (containers: PodTemplateSpec["spec"]["containers"], grace?: number): PodTemplateSpec => ({
  spec: { containers, ...(grace !== undefined ? { terminationGracePeriodSeconds: grace } : {}) },
});
const web = { name: "web", image: "i", ports: [{ name: "http", containerPort: 8080 }] };

describe("decisionOf", () => {
  it("names the named ports the probes need, and the same content always gets the same revision", () => {
    expect(decision.containers[0]?.requiredPorts).toEqual(["http"]);
    expect(decision.revision).toMatch(/^[0-9a-f]{16}$/);
    expect(decisionOf(ownedSpecOf(decision)).revision).toBe(decision.revision);
    const other = decisionOf({ ...owned, terminationGracePeriodSeconds: 30 });
    expect(other.revision).not.toBe(decision.revision);
  });
});

describe("guardProblems (the admission policy's guards)", () => {
  const cases: { name: string; template: PodTemplateSpec; problems: RegExp[] }[] = [
    { name: "everything fits", template: template([web]), problems: [] },
    {
      name: "the container is gone",
      template: template([{ ...web, name: "api" }]),
      problems: [/container web: .*no longer has it/],
    },
    {
      name: "the named port is gone",
      template: template([{ ...web, ports: [{ name: "web", containerPort: 8080 }] }]),
      problems: [/declares no port named http/],
    },
    {
      name: "another container sleeps longer than the grace",
      template: template([
        web,
        { name: "side", image: "i", lifecycle: { preStop: { sleep: { seconds: 40 } } } },
      ]),
      problems: [/container side: its preStop sleep \(40 s\) exceeds/],
    },
  ];
  it.each(cases)("$name", ({ template: t, problems }) => {
    const found = guardProblems(t, decision);
    expect(found).toHaveLength(problems.length);
    problems.forEach((p, i) => expect(found[i]).toMatch(p));
  });
});

describe("enforcedCondition, judged from the live template", () => {
  const carried = template(
    [
      {
        ...web,
        livenessProbe: owned.containers[0]!.livenessProbe!,
        lifecycle: { preStop: { sleep: { seconds: 5 } } },
      },
    ],
    25,
  );
  it("True when the template carries the decision", () => {
    expect(carriesDecision(carried, decision)).toBe(true);
    expect(
      enforcedCondition({ decision, template: carried, releasedLabel: decision.revision }),
    ).toMatchObject({
      status: "True",
      reason: "Enforced",
    });
  });
  it("Releasing before the release write was seen, EnforceNotApplied after it, GuardFailed when a guard holds", () => {
    const bare = template([web]);
    expect(enforcedCondition({ decision, template: bare, releasedLabel: undefined }).reason).toBe(
      "Releasing",
    );
    expect(enforcedCondition({ decision, template: bare, releasedLabel: decision.revision }).reason).toBe(
      "EnforceNotApplied",
    );
    expect(
      enforcedCondition({
        decision,
        template: template([{ ...web, name: "api" }]),
        releasedLabel: undefined,
      }).reason,
    ).toBe("GuardFailed");
  });
});
