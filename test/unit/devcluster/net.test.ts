import { readFileSync } from "node:fs";
import net from "node:net";
import { describe, expect, it } from "vitest";
import { freePort } from "../../../src/devcluster/net.ts";

const ephemeralStart = Number(
  readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0],
);

const listen = (port: number) =>
  new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });

describe("freePort", () => {
  it("picks ports below the kernel's ephemeral range, where no outgoing connection takes them, and they can be bound", async () => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort("127.0.0.1")));
    for (const port of ports) {
      expect(port).toBeGreaterThan(10_080); // fetch() refuses 10080 ("bad port")
      expect(port).toBeLessThan(ephemeralStart);
    }
    const server = await listen(ports[0]!);
    await new Promise((resolve) => server.close(resolve));
  });
});
