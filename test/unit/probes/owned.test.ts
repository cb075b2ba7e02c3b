// The fields healthgate owns, as comparable paths: what an apply would set, what the live
// object's managedFields say healthgate owns, and the difference (fields to drop).
import { describe, expect, it } from "vitest";
import type { PodTemplateSpec } from "../../../src/api/k8s.ts";
import { ownedFieldsDiffer } from "../../../src/policy/probes/concern.ts";
import { fieldsV1Paths, ownedPathsToDrop, ownedSpecPaths } from "../../../src/policy/probes/owned.ts";
import type { OwnedSpec } from "../../../src/policy/seam.ts";

const probe = { httpGet: { path: "/healthz", port: 8080 }, periodSeconds: 10 };

const owned: OwnedSpec = {
  terminationGracePeriodSeconds: 25,
  containers: [
    {
      name: "web",
      livenessProbe: probe,
      readinessProbe: probe,
      lifecycle: { preStop: { sleep: { seconds: 5 } } },
    },
  ],
};

/** fieldsV1 as kube-apiserver records an apply of `owned` plus a startup probe (shape taken from a real object). */
const recorded = {
  "f:spec": {
    "f:template": {
      "f:spec": {
        "f:containers": {
          'k:{"name":"web"}': {
            ".": {},
            "f:lifecycle": { "f:preStop": { "f:sleep": { "f:seconds": {} } } },
            "f:livenessProbe": { "f:httpGet": { "f:path": {}, "f:port": {} }, "f:periodSeconds": {} },
            "f:name": {},
            "f:readinessProbe": { "f:httpGet": { "f:path": {}, "f:port": {} }, "f:periodSeconds": {} },
            "f:startupProbe": { "f:httpGet": { "f:path": {}, "f:port": {} } },
          },
          'k:{"name":"sidecar"}': { ".": {}, "f:name": {} },
        },
        "f:terminationGracePeriodSeconds": {},
      },
    },
  },
};

describe("owned paths", () => {
  it("lists what an apply of the owned spec sets", () => {
    expect(ownedSpecPaths(owned)).toEqual([
      "containers[web].lifecycle.preStop",
      "containers[web].livenessProbe",
      "containers[web].readinessProbe",
      "terminationGracePeriodSeconds",
    ]);
  });

  it("reads the same paths from managedFields, ignoring merge keys and other fields", () => {
    expect(fieldsV1Paths(recorded)).toEqual([
      "containers[web].lifecycle.preStop",
      "containers[web].livenessProbe",
      "containers[web].readinessProbe",
      "containers[web].startupProbe",
      "terminationGracePeriodSeconds",
    ]);
    expect(fieldsV1Paths(undefined)).toEqual([]);
    expect(fieldsV1Paths({ "f:metadata": { "f:labels": {} } })).toEqual([]);
    expect(
      fieldsV1Paths({ "f:spec": { "f:template": { "f:spec": { "f:containers": { "v:x": {} } } } } }),
    ).toEqual([]);
  });

  it("names the owned fields an apply would no longer set", () => {
    expect(ownedPathsToDrop(owned, fieldsV1Paths(recorded))).toEqual(["containers[web].startupProbe"]);
    expect(ownedPathsToDrop(owned, ownedSpecPaths(owned))).toEqual([]);
    const withoutWeb: OwnedSpec = { terminationGracePeriodSeconds: 25, containers: [] };
    expect(ownedPathsToDrop(withoutWeb, fieldsV1Paths(recorded))).toHaveLength(4);
  });

  it("makes the writer apply when healthgate owns a field it no longer wants, and only then", () => {
    const template: PodTemplateSpec = {
      spec: {
        terminationGracePeriodSeconds: 25,
        containers: [
          {
            name: "web",
            livenessProbe: probe,
            readinessProbe: probe,
            startupProbe: probe,
            lifecycle: { preStop: { sleep: { seconds: 5 } } },
          },
        ],
      },
    };
    expect(ownedFieldsDiffer(template, owned)).toBe(false);
    expect(ownedFieldsDiffer(template, owned, ownedSpecPaths(owned))).toBe(false);
    expect(ownedFieldsDiffer(template, owned, fieldsV1Paths(recorded))).toBe(true);
  });
});
