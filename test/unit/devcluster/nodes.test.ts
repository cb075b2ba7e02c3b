// The local plane's node layout and the pod apps' image-tag rule: pure parts, no cluster.
import { describe, expect, it } from "vitest";
import { testPlaneNodes, zonedNodes } from "../../../src/devcluster/nodes.ts";
import { imageTag } from "../../../src/devcluster/podApps.ts";
import { cidrContains } from "../../support/podIps.ts";

describe("zonedNodes", () => {
  it("gives each node its own zone, address and /20 of pods, disjoint from each other", () => {
    const nodes = zonedNodes(3, "198.19");
    expect(nodes.map((n) => [n.name, n.zone, n.ip, n.podCidr])).toEqual([
      ["node-a", "zone-a", "198.19.255.1", "198.19.0.0/20"],
      ["node-b", "zone-b", "198.19.255.2", "198.19.16.0/20"],
      ["node-c", "zone-c", "198.19.255.3", "198.19.32.0/20"],
    ]);
    for (const node of nodes) {
      for (const other of nodes) {
        expect(cidrContains(node.podCidr, other.ip)).toBe(false);
        if (other !== node)
          expect(cidrContains(node.podCidr, other.podCidr.replace(/\/20$/, ""))).toBe(false);
      }
    }
  });

  it("keeps the test plane's nodes out of the simulators' half of the range", () => {
    for (const node of testPlaneNodes(true).nodes) {
      expect(cidrContains("198.18.0.0/16", node.ip)).toBe(false);
      expect(cidrContains("198.19.0.0/16", node.podCidr.replace(/\/20$/, ""))).toBe(true);
    }
    expect(testPlaneNodes(false).nodes[0]!.podCidr).toBe("127.19.0.0/20");
  });

  it("refuses a count the address plan cannot hold", () => {
    expect(() => zonedNodes(16, "198.19")).toThrow(/0 to 15/);
  });
});

describe("imageTag", () => {
  const pod = (image: string) => ({ spec: { containers: [{ name: "c", image }] } });
  it.each([
    ["registry.example/healthgate/test-app:slow-boot", "slow-boot"],
    ["registry.example:5000/app:2", "2"],
    ["registry.example:5000/app", ""],
    ["app", ""],
  ])("%s → %j", (image, tag) => {
    expect(imageTag(pod(image))).toBe(tag);
  });
});
