import type { HealthPolicySpec } from "../../api/v1alpha1/index.ts";
import type { Probe } from "../../api/k8s.ts";
import { normalizePath } from "./defaults.ts";

// "Is this probe deep?" — does it reach something other than this instance?
// Three kinds of evidence: the HTTP path is one the policy declares deep (or
// the rollout's deep-check path); an exec probe runs a network client toward
// a host other than the pod itself; or, as a heuristic, the path looks like
// the usual names for dependency checks.

export interface DeclaredDeepPath {
  path: string;
  /** Where the policy declares it, for messages. */
  source: "spec.endpoints.deep.paths" | "spec.rollout.deepCheck.path";
}

export function declaredDeepPaths(policy: HealthPolicySpec): DeclaredDeepPath[] {
  const declared: DeclaredDeepPath[] = (policy.endpoints.deep?.paths ?? []).map((path) => ({
    path,
    source: "spec.endpoints.deep.paths",
  }));
  if (policy.rollout)
    declared.push({ path: policy.rollout.deepCheck.path, source: "spec.rollout.deepCheck.path" });
  return declared;
}

export interface DeepEvidence {
  /** Field of the probe that shows it, relative to the probe, e.g. httpGet.path or exec.command. */
  field: "httpGet.path" | "exec.command";
  /** What it reaches, for messages: "path /health/deep (spec.endpoints.deep.paths)", "redis-cli toward redis-master". */
  reaches: string;
}

/** Evidence that a probe reaches a declared deep path or a dependency; undefined when none. */
export function deepEvidence(probe: Probe, deepPaths: readonly DeclaredDeepPath[]): DeepEvidence | undefined {
  const declared = (path: string | undefined) =>
    path === undefined ? undefined : deepPaths.find((d) => normalizePath(d.path) === normalizePath(path));
  if (probe.httpGet) {
    const hit = declared(probe.httpGet.path ?? "/");
    return hit ? { field: "httpGet.path", reaches: `path ${hit.path} (${hit.source})` } : undefined;
  }
  if (probe.exec?.command) {
    for (const call of networkCalls(probe.exec.command)) {
      if (!isLocalHost(call.host))
        return { field: "exec.command", reaches: `${call.client} toward ${call.host}` };
      const hit = declared(call.path);
      if (hit)
        return { field: "exec.command", reaches: `${call.client} to path ${hit.path} (${hit.source})` };
    }
  }
  return undefined;
}

/** Words that, as a path segment, usually mean "checks the dependencies too". */
const DEEP_SEGMENTS = new Set([
  "deep",
  "full",
  "all",
  "dependencies",
  "dependency",
  "deps",
  "downstream",
  "downstreams",
  "detailed",
  "extended",
  "complete",
]);
const HEALTH_SEGMENT = /health|status|check|ping/i;
const DEEP_QUERY = /[?&](deep|full|dependencies|deps|all)(=|&|$)/i;

/**
 * Paths that commonly mean deep: `/health/deep`, `/health/full`,
 * `/healthcheck/dependencies`, `/status/all`, `/health?full=true`, and Spring
 * Boot's `/actuator/health`, which aggregates every dependency's indicator
 * (database, disk, broker) unless its liveness group is used.
 */
export function looksDeep(path: string | undefined): boolean {
  if (path === undefined) return false;
  const normalized = normalizePath(path).toLowerCase();
  if (normalized === "/actuator/health") return true;
  const segments = normalized.split("/").filter(Boolean);
  const healthIndex = segments.findIndex((s) => HEALTH_SEGMENT.test(s));
  if (healthIndex >= 0 && segments.slice(healthIndex + 1).some((s) => DEEP_SEGMENTS.has(s))) return true;
  return HEALTH_SEGMENT.test(normalized) && DEEP_QUERY.test(path);
}

// ---------------------------------------------------------------------------
// Exec probes: which network clients run, toward which host.

export interface NetworkCall {
  client: string;
  /** Target host as written; "" means the client's default (local) target. */
  host: string;
  /** URL path, when the client takes a URL. */
  path?: string;
}

const SHELLS = new Set(["sh", "bash", "ash", "dash", "zsh", "ksh", "busybox"]);
/** Commands that only wrap another command. */
const WRAPPERS = new Map<string, number>([
  ["exec", 0],
  ["env", 0],
  ["command", 0],
  ["nice", 0],
  ["timeout", 1], // timeout DURATION cmd
]);

/** The network calls an exec probe makes, looking through `sh -c` scripts and simple wrappers. */
export function networkCalls(command: readonly string[]): NetworkCall[] {
  return commandSegments(command).flatMap((words) => {
    const call = stripWrappers(words);
    const program = basename(call[0] ?? "");
    const parse = CLIENTS[program];
    return parse ? parse(call.slice(1)).map((t) => ({ client: program, ...t })) : [];
  });
}

function commandSegments(command: readonly string[]): string[][] {
  const program = basename(command[0] ?? "");
  const dashC = command.findIndex((w, i) => i > 0 && /^-[a-z]*c[a-z]*$/.test(w));
  if (SHELLS.has(program) && dashC > 0) {
    return splitScript(command[dashC + 1] ?? "");
  }
  return [[...command]];
}

function stripWrappers(words: readonly string[]): string[] {
  let rest = [...words];
  for (;;) {
    while (rest[0] !== undefined && /^[A-Za-z_][A-Za-z0-9_]*=/.test(rest[0])) rest = rest.slice(1);
    const head = basename(rest[0] ?? "");
    const skip = WRAPPERS.get(head);
    if (skip === undefined) return rest;
    rest = rest.slice(1);
    while (rest[0]?.startsWith("-")) rest = rest.slice(1);
    rest = rest.slice(skip);
  }
}

const basename = (word: string) => word.slice(word.lastIndexOf("/") + 1);

/**
 * Splits a shell script into simple commands (words), honouring quotes and
 * keeping `$(...)` inside the word it belongs to. Enough for probe one-liners;
 * not a shell.
 */
export function splitScript(script: string): string[][] {
  const commands: string[][] = [];
  let words: string[] = [];
  let word = "";
  let inWord = false;
  const endWord = () => {
    if (inWord) words.push(word);
    word = "";
    inWord = false;
  };
  const endCommand = () => {
    endWord();
    if (words.length > 0) commands.push(words);
    words = [];
  };
  for (let i = 0; i < script.length; i++) {
    const ch = script[i] as string;
    if (ch === "'" || ch === '"') {
      const close = script.indexOf(ch, i + 1);
      const end = close < 0 ? script.length : close;
      word += script.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (ch === "$" && script[i + 1] === "(") {
      let depth = 0;
      let j = i + 1;
      for (; j < script.length; j++) {
        if (script[j] === "(") depth++;
        else if (script[j] === ")" && --depth === 0) break;
      }
      word += script.slice(i, j + 1);
      inWord = true;
      i = j;
    } else if (ch === "\\" && i + 1 < script.length) {
      word += script[++i];
      inWord = true;
    } else if (/\s/.test(ch) && ch !== "\n") {
      endWord();
    } else if (";|&\n()`".includes(ch)) {
      endCommand();
    } else {
      word += ch;
      inWord = true;
    }
  }
  endCommand();
  return commands;
}

interface ParsedArgs {
  options: Map<string, string[]>;
  positionals: string[];
}

/** getopt-ish: `--name=value`, `--name value` / `-n value` for value options, `-nVALUE` for short ones. */
function parseArgs(args: readonly string[], valueOptions: ReadonlySet<string>): ParsedArgs {
  const options = new Map<string, string[]>();
  const positionals: string[] = [];
  const add = (name: string, value: string) => options.set(name, [...(options.get(name) ?? []), value]);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    if (eq > 0) {
      add(arg.slice(0, eq), arg.slice(eq + 1));
    } else if (valueOptions.has(arg)) {
      add(arg, args[++i] ?? "");
    } else if (!arg.startsWith("--") && arg.length > 2 && valueOptions.has(arg.slice(0, 2))) {
      add(arg.slice(0, 2), arg.slice(2));
    } else {
      add(arg, "");
    }
  }
  return { options, positionals };
}

const first = (parsed: ParsedArgs, ...names: string[]) =>
  names.flatMap((n) => parsed.options.get(n) ?? []).find((v) => v !== "");
const has = (parsed: ParsedArgs, ...names: string[]) => names.some((n) => parsed.options.has(n));

interface Target {
  host: string;
  path?: string;
}

/** scheme://[user@]host[:port][/path] or host[:port][/path]; IPv6 in brackets. */
export function parseUrl(url: string): Target {
  const withoutScheme = url.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const slash = withoutScheme.search(/[/?#]/);
  const authority = slash < 0 ? withoutScheme : withoutScheme.slice(0, slash);
  const path = slash < 0 ? "/" : withoutScheme.slice(slash);
  const hostPort = authority.slice(authority.lastIndexOf("@") + 1);
  return { host: hostOf(hostPort), path: path.startsWith("/") ? path : "/" + path };
}

/** The host of "host:port", "[::1]:port", ":port" or "host". */
function hostOf(hostPort: string): string {
  if (hostPort.startsWith("[")) return hostPort.slice(0, hostPort.indexOf("]") + 1);
  const colons = hostPort.split(":").length - 1;
  if (colons > 1) return hostPort; // a bare IPv6 address
  return colons === 1 ? hostPort.slice(0, hostPort.indexOf(":")) : hostPort;
}

const hostAt = (value: string | undefined): Target[] => [{ host: value === undefined ? "" : hostOf(value) }];
const uriTargets = (values: readonly string[]) => values.filter((v) => v.includes("://")).map(parseUrl);

type ClientParser = (args: readonly string[]) => Target[];

const HTTP_CLIENT_VALUE_OPTIONS = new Set(
  [
    "-H --header -o --output -m --max-time --connect-timeout -X --request -d --data --data-raw --data-binary -u --user",
    "-A --user-agent -e --referer -w --write-out -T --upload-file --retry --retry-delay --retry-max-time --cacert",
    "--cert --key -E -b --cookie -c --cookie-jar -x --proxy --resolve --connect-to -r --range -Y -y --speed-limit",
    "--unix-socket --abstract-unix-socket --url -O --output-document -a --append-output -t --tries --timeout",
    "-U --header --post-data --user --password -P --directory-prefix --dns-timeout --read-timeout -Q --quota",
  ]
    .join(" ")
    .split(" "),
);

const httpClient: ClientParser = (args) => {
  const parsed = parseArgs(args, HTTP_CLIENT_VALUE_OPTIONS);
  // A request over a unix socket stays inside the pod whatever the URL says.
  const local = has(parsed, "--unix-socket", "--abstract-unix-socket");
  const urls = [...(parsed.options.get("--url") ?? []), ...parsed.positionals];
  return urls.map((url) => ({ ...parseUrl(url), ...(local ? { host: "" } : {}) }));
};

const netcat: ClientParser = (args) => {
  const parsed = parseArgs(
    args,
    new Set(["-w", "-i", "-p", "-s", "-q", "-W", "-x", "-X", "-e", "-c", "-I", "-O", "-T"]),
  );
  if (has(parsed, "-U", "--unixsock")) return [{ host: "" }];
  return hostAt(parsed.positionals[0]);
};

const hostOption =
  (
    valueOptions: string[],
    hostOptions: string[],
    opts: { positionalHost?: boolean; uriArgs?: boolean } = {},
  ): ClientParser =>
  (args) => {
    const parsed = parseArgs(args, new Set(valueOptions));
    const uris = uriTargets([
      ...parsed.positionals,
      ...valueOptions.flatMap((o) => parsed.options.get(o) ?? []),
    ]);
    if (opts.uriArgs && uris.length > 0) return uris;
    const host = first(parsed, ...hostOptions) ?? (opts.positionalHost ? parsed.positionals[0] : undefined);
    return hostAt(host);
  };

const postgres: ClientParser = (args) => {
  const parsed = parseArgs(
    args,
    new Set([
      "-h",
      "--host",
      "-p",
      "--port",
      "-U",
      "--username",
      "-d",
      "--dbname",
      "-t",
      "--timeout",
      "-c",
      "--command",
    ]),
  );
  const dbname = first(parsed, "-d", "--dbname") ?? parsed.positionals[0];
  if (dbname?.includes("://")) return [parseUrl(dbname)];
  const conninfoHost = dbname?.match(/(?:^|\s)host=([^\s]+)/)?.[1];
  return hostAt(first(parsed, "-h", "--host") ?? conninfoHost);
};

const grpcHealthProbe: ClientParser = (args) => {
  const parsed = parseArgs(
    args,
    new Set(["-addr", "--addr", "-service", "-connect-timeout", "-rpc-timeout"]),
  );
  return hostAt(first(parsed, "-addr", "--addr"));
};

const etcdctl: ClientParser = (args) => {
  const parsed = parseArgs(args, new Set(["--endpoints"]));
  const endpoints = first(parsed, "--endpoints");
  return endpoints ? endpoints.split(",").map((e) => parseUrl(e)) : [{ host: "" }];
};

/** The Kubernetes API server is a shared dependency of every pod. */
const kubectl: ClientParser = () => [{ host: "the Kubernetes API server" }];

/** Network clients whose use in a probe reaches another host unless pointed at the pod itself. */
export const CLIENTS: Readonly<Record<string, ClientParser>> = {
  curl: httpClient,
  wget: httpClient,
  nc: netcat,
  ncat: netcat,
  netcat,
  telnet: hostOption([], [], { positionalHost: true }),
  pg_isready: postgres,
  psql: postgres,
  "redis-cli": hostOption(["-h", "-p", "-a", "-u", "-n"], ["-h"], { uriArgs: true }),
  "valkey-cli": hostOption(["-h", "-p", "-a", "-u", "-n"], ["-h"], { uriArgs: true }),
  mysqladmin: hostOption(
    ["-h", "--host", "-u", "--user", "-P", "--port", "-p", "--password", "-S", "--socket"],
    ["-h", "--host"],
  ),
  mysql: hostOption(
    ["-h", "--host", "-u", "--user", "-P", "--port", "-e", "--execute", "-D", "--database", "-S", "--socket"],
    ["-h", "--host"],
  ),
  "mariadb-admin": hostOption(
    ["-h", "--host", "-u", "--user", "-P", "--port", "-S", "--socket"],
    ["-h", "--host"],
  ),
  mariadb: hostOption(
    ["-h", "--host", "-u", "--user", "-P", "--port", "-e", "--execute", "-S", "--socket"],
    ["-h", "--host"],
  ),
  mongo: hostOption(["--host", "--port", "--eval", "-u", "-p"], ["--host"], { uriArgs: true }),
  mongosh: hostOption(["--host", "--port", "--eval", "-u", "-p"], ["--host"], { uriArgs: true }),
  cqlsh: hostOption(["-u", "-p", "-e", "--execute", "-k"], [], { positionalHost: true }),
  grpc_health_probe: grpcHealthProbe,
  etcdctl,
  kubectl,
};

/**
 * Whether a host is this pod: empty (the client's local default), loopback,
 * a unix socket, or the pod's own IP or hostname through the downward API.
 */
export function isLocalHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, "");
  if (h === "" || h === "localhost" || h === "localhost.localdomain" || h === "::1" || h === "0.0.0.0")
    return true;
  if (/^0*:(0*:)*0*1$/.test(h) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  if (h.startsWith("/")) return true;
  // $(POD_IP) (Kubernetes env expansion), ${HOSTNAME}, $(hostname -i) (shell).
  return /^\$[({]?(my_)?(pod_ip|pod_name|hostname)[)}]?$/.test(h) || /^\$\(hostname( -[if])?\)$/.test(h);
}
