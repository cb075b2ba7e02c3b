// deepCheckTarget: a pod and its policy → the only address the prober may dial. Named cases,
// SSRF attempts included: nothing a policy says can make the prober reach another host.
import { describe, expect, it } from "vitest";
import type { Pod } from "../../../src/api/k8s.ts";
import { healthPolicySpec } from "../../../src/api/v1alpha1/index.ts";
import { deepCheckTarget } from "../../../src/prober/targets.ts";

type Spec = Record<string, unknown>;
const spec = (deepCheck: Spec = {}, extra: Spec = {}) =>
  healthPolicySpec.parse({
    selector: { matchLabels: { app: "web" } },
    endpoints: { port: "http" },
    rollout: { steps: [{ weight: 100 }], deepCheck: { path: "/health/deep", ...deepCheck } },
    ...extra,
  });

type PodModifier = (pod: Pod) => void;
function makePod(...modifiers: PodModifier[]): Pod {
  const pod: Pod = {
    metadata: {
      name: "web-7d4-x1",
      namespace: "shop",
      uid: "uid-1",
      labels: { app: "web", "pod-template-hash": "7d4" },
    },
    spec: {
      containers: [
        {
          name: "web",
          ports: [
            { name: "http", containerPort: 8080 },
            { name: "admin", containerPort: 9090 },
          ],
        },
        { name: "sidecar", ports: [{ name: "metrics", containerPort: 9100 }] },
      ],
    },
    status: { phase: "Running", podIP: "198.18.0.7" },
  };
  for (const m of modifiers) m(pod);
  return pod;
}
const withIp =
  (ip: string | undefined): PodModifier =>
  (p) =>
    void (p.status!.podIP = ip);

describe("deepCheckTarget", () => {
  it("dials the pod's own IP on the named port, with the policy's path, scheme, timing and expectation", () => {
    expect(
      deepCheckTarget(
        spec({ scheme: "HTTPS", intervalSeconds: 10, timeoutSeconds: 3, expect: { bodyContains: "ok" } }),
        makePod(),
        "new",
      ),
    ).toEqual({
      target: {
        key: "uid-1",
        namespace: "shop",
        pod: "web-7d4-x1",
        revision: "7d4",
        cohort: "new",
        ip: "198.18.0.7",
        port: 8080,
        scheme: "HTTPS",
        path: "/health/deep",
        intervalMs: 10_000,
        timeoutMs: 3_000,
        expect: { statuses: [200], bodyContains: "ok" },
      },
    });
  });

  const port = (deepCheck: Spec, extra: Spec = {}, ...mods: PodModifier[]) => {
    const v = deepCheckTarget(spec(deepCheck, extra), makePod(...mods), "stable");
    return "target" in v ? v.target.port : v.unchecked.reason;
  };

  it.each([
    {
      name: "deepCheck.port by name wins over endpoints.port",
      deepCheck: { port: "admin" },
      extra: {},
      want: 9090,
    },
    { name: "a number stands for itself (declared)", deepCheck: { port: 9090 }, extra: {}, want: 9090 },
    {
      name: "a number stands for itself (undeclared, as in lint)",
      deepCheck: { port: 8443 },
      extra: {},
      want: 8443,
    },
    { name: "default: spec.endpoints.port", deepCheck: {}, extra: {}, want: 8080 },
    {
      name: "a name declared by another governed container",
      deepCheck: { port: "metrics" },
      extra: {},
      want: 9100,
    },
    {
      name: "a name declared only by a container the policy does not govern",
      deepCheck: { port: "metrics" },
      extra: { containers: ["web"] },
      want: "PortUnresolved",
    },
    { name: "a name nobody declares", deepCheck: { port: "grpc" }, extra: {}, want: "PortUnresolved" },
    { name: "no port anywhere: the first declared", deepCheck: {}, extra: { endpoints: {} }, want: 8080 },
  ])("port: $name → $want", ({ deepCheck, extra, want }) => {
    expect(port(deepCheck, extra)).toBe(want);
  });

  it.each([
    {
      name: "hostNetwork (its IP is the node's)",
      mod: ((p) => void (p.spec.hostNetwork = true)) as PodModifier,
      reason: "HostNetwork",
    },
    {
      name: "terminating",
      mod: ((p) => void (p.metadata.deletionTimestamp = "2026-12-04T00:00:00Z")) as PodModifier,
      reason: "Terminating",
    },
    {
      name: "pending",
      mod: ((p) => void (p.status = { phase: "Pending" })) as PodModifier,
      reason: "NotRunning",
    },
    { name: "no IP yet", mod: withIp(undefined), reason: "NoPodIP" },
    { name: "an IP that is a hostname", mod: withIp("evil.example"), reason: "NoPodIP" },
    { name: "an IP with a port", mod: withIp("198.18.0.7:22"), reason: "NoPodIP" },
    { name: "a link-local IP (cloud metadata)", mod: withIp("169.254.169.254"), reason: "NoPodIP" },
  ])("not checked: $name → $reason, with a message naming the pod", ({ mod, reason }) => {
    const v = deepCheckTarget(spec(), makePod(mod), "new");
    expect(v).toMatchObject({ unchecked: { reason } });
    if ("unchecked" in v) expect(v.unchecked.message).toContain("shop/web-7d4-x1");
  });

  it("hostNetwork says why and what to do", () => {
    const v = deepCheckTarget(
      spec(),
      makePod((p) => void (p.spec.hostNetwork = true)),
      "new",
    );
    expect(v).toMatchObject({
      unchecked: { message: expect.stringMatching(/hostNetwork: its IP is the node's.*without hostNetwork/) },
    });
  });

  it("an IPv6 pod IP is dialled as it is", () => {
    expect(deepCheckTarget(spec(), makePod(withIp("fd00::7")), "new")).toMatchObject({
      target: { ip: "fd00::7" },
    });
  });

  it("a policy without a deep check checks nothing", () => {
    const noRollout = healthPolicySpec.parse({ selector: { matchLabels: { app: "web" } }, endpoints: {} });
    expect(deepCheckTarget(noRollout, makePod(), "new")).toMatchObject({
      unchecked: { reason: "NoDeepCheck" },
    });
  });

  describe("SSRF: whatever the policy says, the target is the pod's IP and a path on it", () => {
    it.each([
      "//evil.example/health",
      "/@evil.example/x",
      "http://169.254.169.254/latest/meta-data",
      "/health\r\nHost: evil.example",
      "/\\\\evil.example/x",
      "/health//deep",
      "/health?next=http://evil.example",
      "@evil.example",
    ])("path %j is refused by the API's schema and again here", (path) => {
      // The schema refuses it (the real API server does too: test/integration/api.test.ts).
      expect(() => spec({ path })).toThrow(/must be a path on the pod itself/);
      // A policy stored before the rule existed (parsed under an older CRD) still cannot use it.
      const old = spec();
      old.rollout!.deepCheck.path = path;
      expect(deepCheckTarget(old, makePod(), "new")).toMatchObject({ unchecked: { reason: "PathRefused" } });
    });

    it("unknown fields (host, url, headers) are dropped by parsing and never reach the target", () => {
      const parsed = spec({
        host: "evil.example",
        url: "http://evil.example/",
        httpHeaders: [{ name: "Host", value: "evil" }],
      });
      const v = deepCheckTarget(parsed, makePod(), "new");
      expect(v).toMatchObject({ target: { ip: "198.18.0.7", port: 8080, path: "/health/deep" } });
      expect(JSON.stringify(v)).not.toContain("evil");
    });
  });
});
