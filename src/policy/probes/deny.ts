import { API_VERSION, KIND } from "../../api/v1alpha1/index.ts";

// deny.deepLiveness at admission, without a webhook: a ValidatingAdmissionPolicy
// whose parameter is the HealthPolicy itself. The binding's paramRef selects
// every HealthPolicy in the Deployment's namespace (an empty selector, no
// namespace = the object's own); a namespace without HealthPolicies is allowed
// (parameterNotFoundAction: Allow). Each HealthPolicy judges only:
//   - Deployments it selects (spec.selector's matchLabels and matchExpressions,
//     spec.targetRef; both when both are set) — as policySelects() does;
//   - the containers it governs (spec.containers, else those that declare a
//     port) — as governedContainers() does;
//   - liveness probes the request adds or changes: an UPDATE that leaves a
//     container's livenessProbe as it was passes, so metadata edits, replica
//     changes and writes by other controllers never fail on a probe that was
//     already there (healthgate's audit reports those);
// and never a Deployment being deleted (the garbage collector's removal of the
// foregroundDeletion finalizer is an UPDATE of such an object).
// Deep means what the LivenessDeep rule (deep.ts) means, as far as CEL can
// follow it: see docs/admission.md for what it cannot.

export const DENY_DEEP_LIVENESS_SUFFIX = "deny-deep-liveness";

/** Characters of one shell word once quotes are gone; `$(...)` is kept whole. */
const WORD = String.raw`(\$\([^)]*\)|[^\s;|&()<>])+`;
/** Start of a command word: line start, a separator, or the last `/` of a path (/usr/bin/psql). */
const COMMAND_START = String.raw`(^|[\s;|&(/])`;
/** Any further words of the same simple command, as few as possible. */
const ARGS = String.raw`(\s+${WORD})*?`;

/** Clients whose target host is an option: `-h HOST`, `-hHOST`, `--host HOST`, `--host=HOST`. */
const HOST_OPTION_CLIENTS = [
  "pg_isready",
  "psql",
  "redis-cli",
  "valkey-cli",
  "mysqladmin",
  "mysql",
  "mariadb-admin",
  "mariadb",
  "mongo",
  "mongosh",
];
/** Clients that take a URL (scheme://host/path) as an argument or an option's value. */
const URL_CLIENTS = [
  "curl",
  "wget",
  "pg_isready",
  "psql",
  "redis-cli",
  "valkey-cli",
  "mongo",
  "mongosh",
  "etcdctl",
];
/** Clients whose first positional word is the host (option values are only skipped when numeric). */
const POSITIONAL_HOST_CLIENTS = ["nc", "ncat", "netcat", "telnet"];

const alternatives = (words: readonly string[]) => `(${words.join("|")})`;
const HOST_OPTION = `${COMMAND_START}${alternatives(HOST_OPTION_CLIENTS)}${ARGS}\\s+(-h\\s*|--host[=\\s]\\s*)${WORD}`;
const URL_ARG = `${COMMAND_START}${alternatives(URL_CLIENTS)}${ARGS}\\s+([^\\s;|&()]*=)?[a-zA-Z][a-zA-Z0-9+.-]*://${WORD}`;
const POSITIONAL_HOST = `${COMMAND_START}${alternatives(POSITIONAL_HOST_CLIENTS)}(\\s+-[^\\s;|&()]*(\\s+[0-9][^\\s;|&()]*)?)*\\s+[^-\\s;|&()][^\\s;|&()]*`;
const GRPC_ADDR = `${COMMAND_START}grpc_health_probe${ARGS}\\s+--?addr[=\\s]\\s*${WORD}`;
const KUBECTL = `${COMMAND_START}kubectl(\\s|$)`;

// ValidatingAdmissionPolicy's CEL has no cel.bind: a one-element list names a value instead.
/** CEL: `body` (a bool) with `name` bound to `init`. */
const letBool = (name: string, init: string, body: string) => `[${init}].all(${name}, ${body})`;
/** CEL: `body` (any value) with `name` bound to `init`. */
const letValue = (name: string, init: string, body: string) => `[${init}].map(${name}, ${body})[0]`;

/** A CEL raw string literal (no escapes inside; the regexes hold no single quote). */
const raw = (s: string) => {
  if (s.includes("'")) throw new Error(`CEL raw string cannot hold a single quote: ${s}`);
  return `r'${s}'`;
};

/** CEL: whether the host string `h` is this pod (isLocalHost in deep.ts). */
const isLocal = (h: string) =>
  letBool(
    "l",
    `${h}.lowerAscii()`,
    `l == '' || l in ['localhost', 'localhost.localdomain', '::1', '[::1]', '0.0.0.0'] || ` +
      `l.matches(${raw(String.raw`^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$`)}) || l.startsWith('/') || ` +
      `l.matches(${raw(String.raw`^\$[({]?(my_)?(pod_ip|pod_name|hostname)[)}]?$`)}) || ` +
      `l.matches(${raw(String.raw`^\$\(hostname( -[if])?\)$`)})`,
  );

/** CEL: the host of `host[:port]`, `[v6]:port` or `:port`. */
const hostOfHostPort = (hp: string) =>
  `(${hp}.startsWith('[') ? ${hp}.substring(0, ${hp}.indexOf(']') + 1) : ${hp}.split(':')[0])`;

/** CEL: a path without query or fragment and without a trailing slash (normalizePath, mostly). */
const normalized = (p: string) =>
  letValue(
    "q",
    `${p}.find(${raw("^[^?#]*")})`,
    "q.size() > 1 && q.endsWith('/') ? q.substring(0, q.size() - 1) : (q == '' ? '/' : q)",
  );

/** CEL: whether the path `p` is one of variables.deepPaths. */
const isDeclaredDeep = (p: string) =>
  letBool("n", normalized(p), `variables.deepPaths.exists(d, ${normalized("d")} == n)`);

/** The last word of a regex match `m` (an option's value, a positional host). */
const lastWord = (m: string) => `${m}.find(${raw(String.raw`(\$\([^)]*\)|[^\s=])+$`)})`;

/** CEL over the exec command `s` (words joined by spaces, quotes removed): does it dial a dependency? */
const execDialsDependency = (s: string) =>
  [
    `${s}.findAll(${raw(HOST_OPTION)}).exists(m, ` +
      letBool("w", lastWord("m"), `!(${isLocal("(w.startsWith('-h') ? w.substring(2) : w)")})`) +
      ")",
    // A request over a unix socket stays inside the pod whatever the URL says (curl --unix-socket).
    `${s}.findAll(${raw(URL_ARG)}).exists(m, !m.contains('unix-socket') && ` +
      letBool(
        "u",
        `m.find(${raw(String.raw`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s;|&()]+$`)})`,
        letBool(
          "a",
          `u.find(${raw("://[^/?#]*")})`,
          letBool(
            "h",
            hostOfHostPort("a.substring(a.lastIndexOf('@') + 1 > 3 ? a.lastIndexOf('@') + 1 : 3)"),
            `!(${isLocal("h")}) || ${isDeclaredDeep("u.substring(u.indexOf(a) + a.size())")}`,
          ),
        ),
      ) +
      ")",
    `${s}.findAll(${raw(POSITIONAL_HOST)}).exists(m, !(${isLocal(`m.find(${raw(String.raw`[^\s]+$`)})`)}))`,
    `${s}.findAll(${raw(GRPC_ADDR)}).exists(m, ` +
      letBool("w", lastWord("m"), `!(${isLocal(hostOfHostPort("w"))})`) +
      ")",
    `${s}.matches(${raw(KUBECTL)})`,
  ].join(" || ");

/** The exec command of container `c`'s liveness probe as one line, quotes removed. */
const EXEC_LINE = "c.livenessProbe.exec.command.join(' ').replace('\"', '').replace(\"'\", '')";

/** Shared by the validation and its message. */
const VARIABLES = [
  {
    name: "denyDeepLiveness",
    expression:
      "has(params.spec.deny) && has(params.spec.deny.deepLiveness) && params.spec.deny.deepLiveness",
  },
  {
    name: "labels",
    expression: "has(object.metadata.labels) ? object.metadata.labels : {}",
  },
  {
    // policySelects() in src/policy/governance.ts.
    name: "selected",
    expression: [
      "(has(params.spec.selector) || has(params.spec.targetRef))",
      "(!has(params.spec.targetRef) || has(object.metadata.name) && params.spec.targetRef.name == object.metadata.name)",
      "(!has(params.spec.selector) || !has(params.spec.selector.matchLabels) || " +
        "params.spec.selector.matchLabels.all(k, k in variables.labels && variables.labels[k] == params.spec.selector.matchLabels[k]))",
      "(!has(params.spec.selector) || !has(params.spec.selector.matchExpressions) || " +
        "params.spec.selector.matchExpressions.all(e, " +
        letBool(
          "hit",
          "e.key in variables.labels && has(e.values) && variables.labels[e.key] in e.values",
          "e.operator == 'In' ? hit : e.operator == 'NotIn' ? !hit : e.operator == 'Exists' ? e.key in variables.labels : " +
            "e.operator == 'DoesNotExist' ? !(e.key in variables.labels) : false",
        ) +
        "))",
    ].join(" && "),
  },
  {
    name: "deepPaths",
    expression:
      "(has(params.spec.endpoints) && has(params.spec.endpoints.deep) && has(params.spec.endpoints.deep.paths) ? params.spec.endpoints.deep.paths : []) + " +
      "(has(params.spec.rollout) && has(params.spec.rollout.deepCheck) ? [params.spec.rollout.deepCheck.path] : [])",
  },
  {
    // governedContainers() in src/policy/probes/index.ts; only liveness probes this request adds or changes.
    name: "changedLiveness",
    expression:
      "object.spec.template.spec.containers.filter(c, has(c.livenessProbe) && " +
      "(has(params.spec.containers) ? c.name in params.spec.containers : has(c.ports) && size(c.ports) > 0) && " +
      "(request.operation != 'UPDATE' || !oldObject.spec.template.spec.containers.exists(o, o.name == c.name && " +
      "has(o.livenessProbe) && o.livenessProbe == c.livenessProbe)))",
  },
  {
    name: "deepLivenessContainers",
    expression:
      "variables.changedLiveness.filter(c, " +
      `(has(c.livenessProbe.httpGet) && ${isDeclaredDeep("(has(c.livenessProbe.httpGet.path) ? c.livenessProbe.httpGet.path : '/')")}) || ` +
      `(has(c.livenessProbe.exec) && has(c.livenessProbe.exec.command) && ${letBool("s", EXEC_LINE, execDialsDependency("s"))}))`,
  },
];

/**
 * Conditions that need no parameter, evaluated first: a request that fails one is not judged at
 * all (no HealthPolicy is even looked at), which is what "never refuses" rests on.
 */
const MATCH_CONDITIONS = [
  {
    // The garbage collector removes the foregroundDeletion finalizer with an UPDATE: it must pass.
    name: "not-being-deleted",
    expression: "!has(object.metadata.deletionTimestamp)",
  },
  {
    name: "adds-or-changes-a-liveness-probe",
    expression:
      "request.operation != 'UPDATE' || object.spec.template.spec.containers.exists(c, has(c.livenessProbe) && " +
      "!oldObject.spec.template.spec.containers.exists(o, o.name == c.name && has(o.livenessProbe) && o.livenessProbe == c.livenessProbe))",
  },
];

const MESSAGE_EXPRESSION =
  "variables.deepLivenessContainers.map(c, 'HealthPolicy ' + params.metadata.name + " +
  "' (deny.deepLiveness: true) refuses this Deployment: container ' + c.name + (has(c.livenessProbe.httpGet) ? " +
  "' has livenessProbe.httpGet.path ' + (has(c.livenessProbe.httpGet.path) ? c.livenessProbe.httpGet.path : '/') + ', a deep endpoint' : " +
  "' has livenessProbe.exec.command [' + c.livenessProbe.exec.command.join(' ') + '], which dials a dependency (another host, " +
  "the API server, or a declared deep path)') + ' that checks shared dependencies; when one blips every pod is restarted at once. " +
  "Point the liveness probe at a shallow endpoint (e.g. /healthz) and keep deep checks out-of-band (spec.rollout.deepCheck), " +
  "or set the HealthPolicy to mode: Enforce so healthgate writes the probes.')[0]";

export interface DenyManifests {
  policy: Record<string, unknown>;
  binding: Record<string, unknown>;
}

/** The ValidatingAdmissionPolicy and its binding; `name` is the policy's and the binding's name. */
export function denyDeepLivenessManifests(name: string, labels: Record<string, string> = {}): DenyManifests {
  const metadata = { name, ...(Object.keys(labels).length > 0 ? { labels } : {}) };
  const [group, version] = API_VERSION.split("/");
  return {
    policy: {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
      metadata,
      spec: {
        // A broken expression (e.g. the CRD is missing) must not block every Deployment in the cluster.
        failurePolicy: "Ignore",
        paramKind: { apiVersion: `${group}/${version}`, kind: KIND },
        // The main resource only: deployments/scale and deployments/status never carry a probe change.
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: ["apps"],
              apiVersions: ["v1"],
              operations: ["CREATE", "UPDATE"],
              resources: ["deployments"],
            },
          ],
        },
        matchConditions: MATCH_CONDITIONS,
        variables: VARIABLES,
        validations: [
          {
            expression:
              "!variables.denyDeepLiveness || !variables.selected || size(variables.deepLivenessContainers) == 0",
            messageExpression: MESSAGE_EXPRESSION,
            reason: "Forbidden",
          },
        ],
      },
    },
    binding: {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicyBinding",
      metadata,
      spec: {
        policyName: name,
        validationActions: ["Deny"],
        // No namespace: params come from the admitted object's namespace; the empty selector takes them all.
        paramRef: { selector: {}, parameterNotFoundAction: "Allow" },
      },
    },
  };
}
