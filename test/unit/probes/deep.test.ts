import { describe, expect, it } from "vitest";
import {
  isLocalHost,
  looksDeep,
  networkCalls,
  parseUrl,
  splitScript,
} from "../../../src/policy/probes/deep.ts";
import { normalizePath } from "../../../src/policy/probes/defaults.ts";

describe("networkCalls", () => {
  it.each([
    {
      name: "plain curl",
      command: ["curl", "-fsS", "-m", "2", "http://api:8080/x"],
      calls: [{ client: "curl", host: "api", path: "/x" }],
    },
    {
      name: "sh -c with && and a pipe",
      command: ["sh", "-c", "curl -s http://a/ && redis-cli -h b ping | grep PONG"],
      calls: [
        { client: "curl", host: "a", path: "/" },
        { client: "redis-cli", host: "b" },
      ],
    },
    {
      name: "bash -ec, quoted URL",
      command: ["bash", "-ec", "wget -qO- 'http://user@svc.ns.svc:80/health?x=1'"],
      calls: [{ client: "wget", host: "svc.ns.svc", path: "/health?x=1" }],
    },
    {
      name: "env assignment and timeout wrapper",
      command: ["sh", "-c", "PGCONNECT_TIMEOUT=2 timeout 5 pg_isready -h db"],
      calls: [{ client: "pg_isready", host: "db" }],
    },
    {
      name: "absolute program path",
      command: ["/usr/bin/redis-cli", "ping"],
      calls: [{ client: "redis-cli", host: "" }],
    },
    {
      name: "pg conninfo host",
      command: ["pg_isready", "-d", "host=pg port=5432"],
      calls: [{ client: "pg_isready", host: "pg" }],
    },
    {
      name: "etcdctl endpoints list",
      command: ["etcdctl", "--endpoints=https://127.0.0.1:2379,https://peer:2379", "endpoint", "health"],
      calls: [
        { client: "etcdctl", host: "127.0.0.1", path: "/" },
        { client: "etcdctl", host: "peer", path: "/" },
      ],
    },
    {
      name: "command substitution stays in the word",
      command: ["sh", "-c", "curl http://$(hostname -i):8080/healthz"],
      calls: [{ client: "curl", host: "$(hostname -i)", path: "/healthz" }],
    },
    { name: "not a network client", command: ["cat", "/tmp/healthy"], calls: [] },
  ])("$name", ({ command, calls }) => {
    expect(networkCalls(command)).toEqual(calls);
  });
});

describe("isLocalHost", () => {
  it.each([
    "",
    "localhost",
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "[::1]",
    "0.0.0.0",
    "/var/run/app.sock",
    "$(POD_IP)",
    "${HOSTNAME}",
    "$MY_POD_IP",
    "$(hostname -i)",
  ])("local: %j", (host) => expect(isLocalHost(host)).toBe(true));
  it.each([
    "db",
    "redis-master.cache.svc.cluster.local",
    "10.0.0.5",
    "$DB_HOST",
    "128.0.0.1",
    "localhost.example.com",
  ])("remote: %j", (host) => expect(isLocalHost(host)).toBe(false));
});

describe("looksDeep", () => {
  it.each([
    "/health/deep",
    "/health/full",
    "/healthcheck/dependencies",
    "/health/dependencies",
    "/api/v1/status/all",
    "/actuator/health",
    "/health?deep=1",
    "/healthz/detailed",
  ])("deep-looking: %s", (path) => expect(looksDeep(path)).toBe(true));
  it.each([
    "/healthz",
    "/livez",
    "/readyz",
    "/actuator/health/liveness",
    "/health",
    "/ping",
    "/full",
    "/deep/healthz",
  ])("shallow-looking: %s", (path) => expect(looksDeep(path)).toBe(false));
});

describe("helpers", () => {
  it.each([
    ["/health//deep/", "/health/deep"],
    ["health", "/health"],
    ["/?x", "/"],
    [undefined, "/"],
  ] as const)("normalizePath(%j) = %s", (input, expected) => expect(normalizePath(input)).toBe(expected));

  it.each([
    ["http://[::1]:8080/x", { host: "[::1]", path: "/x" }],
    ["localhost:8080", { host: "localhost", path: "/" }],
    ["https://a.b", { host: "a.b", path: "/" }],
  ] as const)("parseUrl(%s)", (url, expected) => expect(parseUrl(url)).toEqual(expected));

  it("splitScript honours quotes and separators", () => {
    expect(splitScript(`a "b c" 'd;e'; f && g | h`)).toEqual([["a", "b c", "d;e"], ["f"], ["g"], ["h"]]);
  });
});
