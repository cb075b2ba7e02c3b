// src/kube/http1.ts: every request client-node makes for a KubeConfig speaks HTTP/1.1, also to
// a server that offers HTTP/2 (as kube-apiserver does). Real TLS and a real HTTP/2-capable
// server on loopback; the control request proves the server would have spoken HTTP/2.
import { CoreApi, KubeConfig } from "@kubernetes/client-node";
import { mkdtempSync, readFileSync } from "node:fs";
import { createSecureServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPki } from "../../../src/devcluster/pki.ts";
import "../../../src/kube/http1.ts";

describe("Kubernetes clients speak HTTP/1.1", () => {
  const versions: string[] = [];
  let server: ReturnType<typeof createSecureServer>;
  let url = "";
  let ca = "";

  beforeAll(async () => {
    const pki = await createPki(mkdtempSync(join(tmpdir(), "healthgate-http1-")), {
      servingSans: ["IP:127.0.0.1"],
      adminUser: "test",
    });
    ca = readFileSync(pki.caCert, "utf8");
    server = createSecureServer(
      { key: readFileSync(pki.servingKey), cert: readFileSync(pki.servingCert), allowHTTP1: true },
      (req, res) => {
        versions.push(req.httpVersion);
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] }));
      },
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("the server speaks HTTP/2 to a client that offers it (the control)", async () => {
    const agent = new Agent({ connect: { ca }, allowH2: true });
    const response = await request(`${url}/api`, { dispatcher: agent });
    await response.body.text();
    await agent.close();
    expect(versions.at(-1)).toBe("2.0");
  });

  it("client-node's requests for a KubeConfig arrive as HTTP/1.1", async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: url, caData: Buffer.from(ca).toString("base64") }],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const before = versions.length;
    const answer = await kc.makeApiClient(CoreApi).getAPIVersions();
    expect(answer.versions).toEqual(["v1"]);
    expect(versions.slice(before)).toEqual(["1.1"]);
  });
});
