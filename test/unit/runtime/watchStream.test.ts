// KubeClient.watch splits the stream into events, one JSON object per line, however the bytes
// are chunked: a line across many chunks, many lines in one chunk, a multi-byte character cut
// in two.
// A hand-made HTTP server stands in for kube-apiserver here because only it can choose where
// the chunks break; the real server's watches are exercised by the integration tests.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { KubeClient, resources, type WatchEvent } from "../../../src/kube/client.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";

let server: http.Server | undefined;

afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

/** A server that answers a watch with `body`, written in the given pieces, then closes. */
async function watchServer(pieces: readonly Buffer[]): Promise<KubeClient> {
  server = http.createServer(async (_req, res) => {
    res.writeHead(200, { "Content-Type": "application/json" });
    for (const piece of pieces) {
      res.write(piece);
      await new Promise((resolve) => setImmediate(resolve));
    }
    res.end();
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: "fake",
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
    ],
    users: [{ name: "nobody" }],
    contexts: [{ name: "fake", cluster: "fake", user: "nobody" }],
    currentContext: "fake",
  });
  return new KubeClient(kc, { metrics: createMetrics() });
}

function lease(name: string, holder: string) {
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name, namespace: "ns", resourceVersion: "1" },
    spec: { holderIdentity: holder },
  };
}

async function collect(client: KubeClient): Promise<WatchEvent[]> {
  const events: WatchEvent[] = [];
  await client.watch(
    resources.leases,
    "ns",
    { resourceVersion: "0" },
    (event) => events.push(event),
    new AbortController().signal,
  );
  return events;
}

describe("KubeClient.watch", () => {
  const sent: WatchEvent[] = [
    { type: "ADDED", object: lease("a", "x".repeat(50_000)) },
    { type: "MODIFIED", object: lease("b", "héllo wörld ✓") },
    { type: "BOOKMARK", object: { metadata: { name: "", resourceVersion: "7" } } },
    { type: "DELETED", object: lease("c", "z") },
  ];
  const stream = Buffer.from(sent.map((e) => JSON.stringify(e) + "\n").join(""));

  it.each([
    ["one chunk", [stream.length]],
    ["chunks of 7 bytes (multi-byte characters cut in two)", [7]],
    ["chunks of 1000 bytes", [1000]],
    ["uneven chunks", [1, 2, 30_000, 3, 40_000]],
  ])("yields every event in order from %s", async (_name, sizes) => {
    const pieces: Buffer[] = [];
    for (let at = 0, i = 0; at < stream.length; i++) {
      const size = sizes[i % sizes.length]!;
      pieces.push(stream.subarray(at, at + size));
      at += size;
    }
    expect(await collect(await watchServer(pieces))).toEqual(sent);
  });

  it("ignores blank lines between events", async () => {
    const body = `\n${JSON.stringify(sent[1])}\n\n${JSON.stringify(sent[3])}\n`;
    expect(await collect(await watchServer([Buffer.from(body)]))).toEqual([sent[1], sent[3]]);
  });
});
