// `healthgate run` settings: each from a flag, else an environment variable, else a default.
// One zod schema validates them; every error names the flag and the variable it came from and
// shows a value that works.
import os from "node:os";
import { parseArgs } from "node:util";
import { z } from "zod";
import { logLevels } from "../observability/logger.ts";

interface Setting {
  flag: string;
  /** Environment variables, first match wins. */
  env: readonly string[];
  expected: string;
  example: string;
}

const settings = {
  kubeconfig: {
    flag: "--kubeconfig",
    env: [],
    expected: "a file path",
    example: "--kubeconfig=/etc/kube/config",
  },
  namespaces: {
    flag: "--namespaces",
    env: ["HEALTHGATE_NAMESPACES"],
    expected: "comma-separated namespace names (lowercase letters, digits and '-'; empty means all)",
    example: "--namespaces=shop,payments",
  },
  httpPort: {
    flag: "--http-port",
    env: ["HEALTHGATE_HTTP_PORT"],
    expected: "an integer from 1 to 65535",
    example: "--http-port=8080",
  },
  leaderElect: {
    flag: "--leader-elect",
    env: ["HEALTHGATE_LEADER_ELECT"],
    expected: "true or false",
    example: "--no-leader-elect, or HEALTHGATE_LEADER_ELECT=false",
  },
  leaderElectionId: {
    flag: "--leader-election-id",
    env: ["HEALTHGATE_LEADER_ELECTION_ID"],
    expected: "a Lease name (lowercase letters, digits, '-' and '.')",
    example: "--leader-election-id=healthgate",
  },
  leaderElectionNamespace: {
    flag: "--leader-election-namespace",
    env: ["HEALTHGATE_LEADER_ELECTION_NAMESPACE", "POD_NAMESPACE"],
    expected: "the namespace of the leader Lease",
    example: "--leader-election-namespace=healthgate-system (the chart sets POD_NAMESPACE)",
  },
  leaderElectionIdentity: {
    flag: "--leader-election-identity",
    env: ["POD_NAME"],
    expected: "a name unique to this replica",
    example: "--leader-election-identity=healthgate-7d9f-abcde",
  },
  logLevel: {
    flag: "--log-level",
    env: ["HEALTHGATE_LOG_LEVEL"],
    expected: `one of ${logLevels.join(", ")}`,
    example: "--log-level=info",
  },
  concurrency: {
    flag: "--concurrency",
    env: ["HEALTHGATE_CONCURRENCY"],
    expected: "an integer from 1 to 64 (reconciles at once)",
    example: "--concurrency=4",
  },
  watchdogSeconds: {
    flag: "--watchdog-seconds",
    env: ["HEALTHGATE_WATCHDOG_SECONDS"],
    expected: "an integer from 10 to 3600 (seconds a watch may stay silent before a relist)",
    example: "--watchdog-seconds=300",
  },
  resyncSeconds: {
    flag: "--resync-seconds",
    env: ["HEALTHGATE_RESYNC_SECONDS"],
    expected: "0 (off) or an integer from 60 to 86400",
    example: "--resync-seconds=3600",
  },
  maxConcurrentRollouts: {
    flag: "--max-concurrent-rollouts",
    env: ["HEALTHGATE_MAX_CONCURRENT_ROLLOUTS"],
    expected:
      "0 (pacing off) or an integer from 1 to 1000 (Deployments cluster-wide rolling out a release at once)",
    example: "--max-concurrent-rollouts=5",
  },
  rolloutSlotTimeoutSeconds: {
    flag: "--rollout-slot-timeout-seconds",
    env: ["HEALTHGATE_ROLLOUT_SLOT_TIMEOUT_SECONDS"],
    expected: "an integer from 30 to 86400 (seconds before a rollout that has not completed frees its slot)",
    example: "--rollout-slot-timeout-seconds=600",
  },
  webhookPort: {
    flag: "--webhook-port",
    env: ["HEALTHGATE_WEBHOOK_PORT"],
    expected: "0 (no gate webhook) or an integer from 1 to 65535",
    example: "--webhook-port=9443",
  },
  webhookNamespace: {
    flag: "--webhook-namespace",
    env: ["POD_NAMESPACE"],
    expected: "healthgate's own namespace (where the webhook's Secret is)",
    example: "--webhook-namespace=healthgate-system (the chart sets POD_NAMESPACE)",
  },
  webhookSecret: {
    flag: "--webhook-secret",
    env: ["HEALTHGATE_WEBHOOK_SECRET"],
    expected: "the name of the Secret holding the webhook's certificates",
    example: "--webhook-secret=healthgate-webhook-tls",
  },
  webhookService: {
    flag: "--webhook-service",
    env: ["HEALTHGATE_WEBHOOK_SERVICE"],
    expected: "the name of the webhook's Service (the serving certificate's DNS names)",
    example: "--webhook-service=healthgate-webhook",
  },
  webhookConfiguration: {
    flag: "--webhook-configuration",
    env: ["HEALTHGATE_WEBHOOK_CONFIGURATION"],
    expected: "the name of the MutatingWebhookConfiguration whose caBundle healthgate keeps current",
    example: "--webhook-configuration=healthgate-gate",
  },
  webhookCertificates: {
    flag: "--webhook-certificates",
    env: ["HEALTHGATE_WEBHOOK_CERTIFICATES"],
    expected: "self (healthgate issues and rotates them) or external (cert-manager writes the Secret)",
    example: "--webhook-certificates=self",
  },
} as const satisfies Record<string, Setting>;

type SettingName = keyof typeof settings;

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const dnsSubdomain = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

const integer = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(min).max(max));

export const runConfigSchema = z
  .object({
    kubeconfig: z.string().min(1).optional(),
    namespaces: z
      .string()
      .transform((list) =>
        list
          .split(",")
          .map((ns) => ns.trim())
          .filter(Boolean),
      )
      .pipe(z.array(z.string().regex(dnsLabel)))
      .default([]),
    httpPort: integer(1, 65535).default(8080),
    leaderElect: z
      .enum(["true", "false"])
      .transform((value) => value === "true")
      .default(true),
    leaderElectionId: z.string().regex(dnsSubdomain).default("healthgate"),
    leaderElectionNamespace: z.string().regex(dnsLabel).optional(),
    leaderElectionIdentity: z.string().min(1),
    logLevel: z.enum(logLevels).default("info"),
    concurrency: integer(1, 64).default(4),
    watchdogSeconds: integer(10, 3600).default(300),
    resyncSeconds: integer(0, 86_400)
      .pipe(z.union([z.literal(0), z.number().min(60)]))
      .default(0),
    maxConcurrentRollouts: integer(0, 1000).default(5),
    rolloutSlotTimeoutSeconds: integer(30, 86_400).default(600),
    webhookPort: integer(0, 65535).default(0),
    webhookNamespace: z.string().regex(dnsLabel).optional(),
    webhookSecret: z.string().regex(dnsSubdomain).default("healthgate-webhook-tls"),
    webhookService: z.string().regex(dnsLabel).optional(),
    webhookConfiguration: z.string().regex(dnsSubdomain).optional(),
    webhookCertificates: z.enum(["self", "external"]).default("self"),
  })
  .superRefine((config, ctx) => {
    if (config.webhookPort > 0 && !config.webhookNamespace) {
      ctx.addIssue({
        code: "custom",
        path: ["webhookNamespace"],
        message: "is required while the gate webhook is on (--webhook-port above 0)",
      });
    }
    if (config.leaderElect && !config.leaderElectionNamespace) {
      ctx.addIssue({
        code: "custom",
        path: ["leaderElectionNamespace"],
        message: "is required while leader election is on (or turn it off with --no-leader-elect)",
      });
    }
  });

export type RunConfig = z.output<typeof runConfigSchema>;

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(`invalid healthgate run configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * Parses `healthgate run`'s arguments (after `run`) and environment. Throws ConfigError listing
 * every problem. `host` supplies the default leader identity (hostname_pid) outside a pod.
 */
export function parseRunConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  host: { hostname: string; pid: number } = { hostname: os.hostname(), pid: process.pid },
): RunConfig {
  const flags = parseFlags(argv);
  const raw: Partial<Record<SettingName, string>> = {};
  const origin: Partial<Record<SettingName, string>> = {};
  for (const [name, setting] of Object.entries(settings) as [SettingName, Setting][]) {
    const fromFlag = flags[name];
    const fromEnv = setting.env.find((variable) => env[variable] !== undefined && env[variable] !== "");
    if (fromFlag !== undefined) {
      raw[name] = fromFlag;
      origin[name] = setting.flag;
    } else if (fromEnv) {
      raw[name] = env[fromEnv];
      origin[name] = fromEnv;
    }
  }
  raw.leaderElectionIdentity ??= `${host.hostname}_${host.pid}`;

  const result = runConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = issue.path[0] as SettingName;
    const setting: Setting = settings[name];
    const where = [setting.flag, ...setting.env].join(" / ");
    if (issue.code === "custom" && issue.message) return `${where} ${issue.message}. Fix: ${setting.example}`;
    const given = origin[name] ? ` (from ${origin[name]}: ${JSON.stringify(raw[name])})` : "";
    return `${where}: expected ${setting.expected}${given}. Fix: ${setting.example}`;
  });
  throw new ConfigError(problems);
}

/** Flags as strings keyed by setting name; `--namespaces` may repeat. */
function parseFlags(argv: readonly string[]): Partial<Record<SettingName, string>> {
  const options = {
    kubeconfig: { type: "string" },
    namespaces: { type: "string", multiple: true },
    "http-port": { type: "string" },
    "leader-elect": { type: "boolean" },
    "leader-election-id": { type: "string" },
    "leader-election-namespace": { type: "string" },
    "leader-election-identity": { type: "string" },
    "log-level": { type: "string" },
    concurrency: { type: "string" },
    "watchdog-seconds": { type: "string" },
    "resync-seconds": { type: "string" },
    "max-concurrent-rollouts": { type: "string" },
    "rollout-slot-timeout-seconds": { type: "string" },
    "webhook-port": { type: "string" },
    "webhook-namespace": { type: "string" },
    "webhook-secret": { type: "string" },
    "webhook-service": { type: "string" },
    "webhook-configuration": { type: "string" },
    "webhook-certificates": { type: "string" },
  } as const;
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options, allowNegative: true, strict: true }));
  } catch (err) {
    const known = Object.values(settings)
      .map((setting) => setting.flag)
      .join(", ");
    throw new ConfigError([
      `${err instanceof Error ? err.message : String(err)}. Known flags: ${known}; ` +
        "turn a boolean off with --no-<flag> (e.g. --no-leader-elect)",
    ]);
  }
  return {
    kubeconfig: values.kubeconfig,
    namespaces: values.namespaces?.join(","),
    httpPort: values["http-port"],
    leaderElect: values["leader-elect"] === undefined ? undefined : String(values["leader-elect"]),
    leaderElectionId: values["leader-election-id"],
    leaderElectionNamespace: values["leader-election-namespace"],
    leaderElectionIdentity: values["leader-election-identity"],
    logLevel: values["log-level"],
    concurrency: values.concurrency,
    watchdogSeconds: values["watchdog-seconds"],
    resyncSeconds: values["resync-seconds"],
    maxConcurrentRollouts: values["max-concurrent-rollouts"],
    rolloutSlotTimeoutSeconds: values["rollout-slot-timeout-seconds"],
    webhookPort: values["webhook-port"],
    webhookNamespace: values["webhook-namespace"],
    webhookSecret: values["webhook-secret"],
    webhookService: values["webhook-service"],
    webhookConfiguration: values["webhook-configuration"],
    webhookCertificates: values["webhook-certificates"],
  };
}
