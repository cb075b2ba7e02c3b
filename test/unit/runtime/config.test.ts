import { describe, expect, it } from "vitest";
import { KubeConfig } from "@kubernetes/client-node";
import { ConfigError, parseRunConfig } from "../../../src/cli/config.ts";
import { operatorOptions } from "../../../src/cli/run.ts";
import { createLogger } from "../../../src/observability/logger.ts";

const host = { hostname: "laptop", pid: 4242 };
const inPod = { POD_NAMESPACE: "healthgate-system", POD_NAME: "healthgate-7d9f-abcde" };

function problemsOf(argv: string[], env: NodeJS.ProcessEnv = inPod): readonly string[] {
  try {
    parseRunConfig(argv, env, host);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("parseRunConfig", () => {
  it("defaults everything it can; the pod's downward-API variables fill the leader settings", () => {
    expect(parseRunConfig([], inPod, host)).toEqual({
      namespaces: [],
      httpPort: 8080,
      leaderElect: true,
      leaderElectionId: "healthgate",
      leaderElectionNamespace: "healthgate-system",
      leaderElectionIdentity: "healthgate-7d9f-abcde",
      logLevel: "info",
      concurrency: 4,
      watchdogSeconds: 300,
      resyncSeconds: 0,
      maxConcurrentRollouts: 5,
      rolloutSlotTimeoutSeconds: 600,
      webhookPort: 0,
      webhookNamespace: "healthgate-system",
      webhookSecret: "healthgate-webhook-tls",
      webhookCertificates: "self",
    });
  });

  it("turns the gate webhook on with a port, serving the Service's names", () => {
    const argv = ["--webhook-port=9443", "--webhook-service=hg-webhook", "--webhook-configuration=hg-gate"];
    const config = parseRunConfig(argv, inPod, host);
    const options = operatorOptions(config, new KubeConfig(), createLogger("silent"));
    expect(options.gateWebhook).toEqual({
      port: 9443,
      namespace: "healthgate-system",
      secretName: "healthgate-webhook-tls",
      certificates: "self",
      configurationName: "hg-gate",
      dnsNames: ["hg-webhook.healthgate-system.svc", "hg-webhook.healthgate-system.svc.cluster.local"],
    });
    expect(problemsOf(["--webhook-port=9443", "--no-leader-elect"], {})).toEqual([
      expect.stringContaining("--webhook-namespace / POD_NAMESPACE is required while the gate webhook is on"),
    ]);
  });

  it("takes flags over environment variables over defaults", () => {
    const config = parseRunConfig(
      ["--http-port=9090", "--namespaces", "shop,payments", "--namespaces=ops", "--log-level", "debug"],
      { ...inPod, HEALTHGATE_HTTP_PORT: "7070", HEALTHGATE_CONCURRENCY: "8", HEALTHGATE_LOG_LEVEL: "warn" },
      host,
    );
    expect(config).toMatchObject({
      httpPort: 9090,
      namespaces: ["shop", "payments", "ops"],
      concurrency: 8,
      logLevel: "debug",
    });
  });

  it("paces releases: --max-concurrent-rollouts (0 turns pacing off) and the slot timeout", () => {
    const config = parseRunConfig(
      ["--no-leader-elect", "--max-concurrent-rollouts=0"],
      { HEALTHGATE_ROLLOUT_SLOT_TIMEOUT_SECONDS: "120" },
      host,
    );
    const options = operatorOptions(config, new KubeConfig(), createLogger("silent"));
    expect(options.pacing).toEqual({ maxConcurrentRollouts: 0, slotTimeoutMs: 120_000 });
    expect(problemsOf(["--no-leader-elect", "--rollout-slot-timeout-seconds=5"], {})).toEqual([
      expect.stringContaining(
        "--rollout-slot-timeout-seconds / HEALTHGATE_ROLLOUT_SLOT_TIMEOUT_SECONDS: expected",
      ),
    ]);
  });

  it("identifies a replica outside a pod as hostname_pid", () => {
    expect(parseRunConfig(["--no-leader-elect"], {}, host).leaderElectionIdentity).toBe("laptop_4242");
  });

  it("turns leader election off with --no-leader-elect or HEALTHGATE_LEADER_ELECT=false", () => {
    expect(parseRunConfig(["--no-leader-elect"], {}, host).leaderElect).toBe(false);
    expect(parseRunConfig([], { HEALTHGATE_LEADER_ELECT: "false" }, host).leaderElect).toBe(false);
  });

  it.each([
    {
      name: "a port that is not a number names the flag, where the value came from and a fix",
      argv: ["--http-port=http"],
      env: inPod,
      want: '--http-port / HEALTHGATE_HTTP_PORT: expected an integer from 1 to 65535 (from --http-port: "http"). Fix: --http-port=8080',
    },
    {
      name: "a bad value from the environment says so",
      argv: [],
      env: { ...inPod, HEALTHGATE_CONCURRENCY: "0" },
      want: '--concurrency / HEALTHGATE_CONCURRENCY: expected an integer from 1 to 64 (reconciles at once) (from HEALTHGATE_CONCURRENCY: "0"). Fix: --concurrency=4',
    },
    {
      name: "leader election without a namespace",
      argv: [],
      env: {},
      want: "--leader-election-namespace / HEALTHGATE_LEADER_ELECTION_NAMESPACE / POD_NAMESPACE is required while leader election is on (or turn it off with --no-leader-elect). Fix: --leader-election-namespace=healthgate-system (the chart sets POD_NAMESPACE)",
    },
    {
      name: "an invalid namespace name",
      argv: ["--namespaces=Shop"],
      env: inPod,
      want: expect.stringMatching(
        /^--namespaces \/ HEALTHGATE_NAMESPACES: expected comma-separated namespace names/,
      ),
    },
    {
      name: "an unknown log level",
      argv: ["--log-level=verbose"],
      env: inPod,
      want: expect.stringContaining("expected one of trace, debug, info, warn, error, fatal, silent"),
    },
    {
      name: "a resync shorter than a minute",
      argv: ["--resync-seconds=5"],
      env: inPod,
      want: expect.stringContaining("expected 0 (off) or an integer from 60 to 86400"),
    },
    {
      name: "an unknown flag lists the known ones",
      argv: ["--metrics-port=9090"],
      env: inPod,
      want: expect.stringMatching(
        /Unknown option '--metrics-port'.*Known flags: --kubeconfig, --namespaces, --http-port/,
      ),
    },
    {
      name: "a boolean given a value points at --no-<flag>",
      argv: ["--leader-elect=false"],
      env: inPod,
      want: expect.stringContaining("--no-leader-elect"),
    },
  ])("$name", ({ argv, env, want }) => {
    expect(problemsOf(argv, env)).toEqual([want]);
  });

  it("reports every problem at once", () => {
    expect(problemsOf(["--http-port=0", "--concurrency=x"], {})).toHaveLength(3);
  });
});

describe("operatorOptions", () => {
  it("hands --resync-seconds and --watchdog-seconds to the operator in milliseconds", () => {
    const config = parseRunConfig(["--resync-seconds=3600", "--watchdog-seconds=120"], inPod, host);
    const options = operatorOptions(config, new KubeConfig(), createLogger("silent"));
    expect(options).toMatchObject({ resyncMs: 3_600_000, watchdogMs: 120_000 });
  });

  it("leaves resync off by default", () => {
    const options = operatorOptions(
      parseRunConfig([], inPod, host),
      new KubeConfig(),
      createLogger("silent"),
    );
    expect(options.resyncMs).toBe(0);
  });
});
