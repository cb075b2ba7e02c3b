import {
  GROUP,
  RELEASE_INDEX_KIND,
  RELEASE_INDEX_SHARDS,
  RELEASE_SHARD_LABEL,
  releaseIndexName,
  RELEASE_INDEX_PLURAL,
  TARGET_PLURAL,
  VERSION,
} from "../api/v1alpha1/index.ts";
import { RELEASED_LABEL } from "../policy/enforce.ts";

// Enforce at admission (DESIGN.md, "The seam" and "Rollout gating" lesson 8). Three objects
// the API server runs, generated into the chart by hack/gen-admission.ts:
//
// 1. enforce: a MutatingAdmissionPolicy whose one parameter is the HealthRelease of the
//    Deployment's shard (the index of the released decisions, and the one place they are kept). On every
//    CREATE/UPDATE of a released Deployment it replaces each named container's probes and
//    lifecycle.preStop, and the pod's terminationGracePeriodSeconds, with its released
//    decision. JSONPatch `add` replaces a whole probe, so a
//    handler swap (exec → httpGet) lands; the written fields are owned by no manager.
//    Guards: a container the decision names that the object no longer has, or one that no
//    longer declares a named port the decision's probes use, is left alone; the grace
//    period is set only when no other container's preStop sleep exceeds it. Nothing here
//    can make the object invalid, and failurePolicy Ignore means a broken policy never
//    refuses a write either.
// 2. handler-merge: parameterless, kept on uninstall. When a probe or lifecycle hook arrives
//    with two handlers and the object before the write had exactly one of them, it drops
//    that old one: the user's re-apply of their own manifest (their exec merged beside an
//    unowned httpGet that Enforce wrote) is what the request brings, and lands.
// 3. record-status: a ValidatingAdmissionPolicy admitting writes to HealthTarget and
//    HealthRelease status only from healthgate's ServiceAccount — admission copies it into pods.

export const ENFORCE_SUFFIX = "enforce";
export const HANDLER_MERGE_SUFFIX = "handler-merge";
export const RECORD_STATUS_SUFFIX = "record-status";

const PROBES = ["livenessProbe", "readinessProbe", "startupProbe"] as const;
const PROBE_HANDLERS = ["exec", "httpGet", "tcpSocket", "grpc"] as const;
const HOOKS = ["preStop", "postStart"] as const;
const HOOK_HANDLERS = ["exec", "httpGet", "tcpSocket", "sleep"] as const;

const CONTAINERS = "object.spec.template.spec.containers";
const containerPath = (index: string) => `"/spec/template/spec/containers/" + string(${index})`;

const deploymentRules = (operations: string[]) => ({
  resourceRules: [{ apiGroups: ["apps"], apiVersions: ["v1"], operations, resources: ["deployments"] }],
});

type Labels = Record<string, string>;
const meta = (name: string, labels: Labels, annotations?: Labels) => ({
  name,
  ...(annotations ? { annotations } : {}),
  ...(Object.keys(labels).length > 0 ? { labels } : {}),
});

// ---- 1. enforce ------------------------------------------------------------------------------

const ENFORCE_VARIABLES = [
  {
    // The shard's HealthRelease (the one parameter) names a released decision for this Deployment.
    name: "active",
    expression:
      "has(params.status) && has(params.status.deployments) && has(params.status.decisions) && " +
      "object.metadata.name in params.status.deployments && " +
      "params.status.deployments[object.metadata.name] in params.status.decisions && " +
      "has(params.status.decisions[params.status.deployments[object.metadata.name]].containers)",
  },
  {
    // Evaluated only where `active` holds (variables are lazy).
    name: "released",
    expression: "params.status.decisions[params.status.deployments[object.metadata.name]]",
  },
  { name: "names", expression: `${CONTAINERS}.map(c, c.name)` },
  {
    // The decision's containers this object can take (guards: present, named ports declared).
    name: "fits",
    expression:
      "variables.active ? variables.released.containers.filter(d, d.name in variables.names && " +
      "(!has(d.requiredPorts) || d.requiredPorts.all(p, " +
      `${CONTAINERS}[variables.names.indexOf(d.name)].?ports.orValue([]).exists(cp, cp.?name.orValue("") == p)))) : []`,
  },
  {
    // Set the grace only when no container keeps a preStop sleep longer than it (the API refuses that).
    name: "grace",
    expression:
      "variables.active && has(variables.released.terminationGracePeriodSeconds) && " +
      `${CONTAINERS}.all(c, variables.fits.exists(d, d.name == c.name && has(d.preStop)) || ` +
      "c.?lifecycle.?preStop.?sleep.?seconds.orValue(0) <= variables.released.terminationGracePeriodSeconds)",
  },
];

// The decision's strategy fields (with spec.rollout; src/policy/rollout/strategy.ts holds the same
// rules, pure, for the record's guard messages). Each is written only where the live object needs
// it and only while the object stays valid: maxUnavailable lowered on a RollingUpdate Deployment
// when its value (defaulted by then: 25%) resolves higher at spec.replicas — a percentage rounds
// down, as the controller does — and never to 0 while maxSurge's value is 0 (the API server
// refuses both at 0); progressDeadlineSeconds raised when it is not above the longest bake, and
// only above minReadySeconds. Otherwise nothing changes, and the record's status.guard says why.
const STRATEGY = "variables.released.strategy";
/** An int-or-string's number: a percentage's, resolved at spec.replicas (rounded down), or the integer. */
const resolved = (value: string) =>
  `(type(${value}) == string ? int(string(${value}).replace("%", "")) * object.spec.?replicas.orValue(1) / 100 : int(${value}))`;
const rawNumber = (value: string) =>
  `(type(${value}) == string ? int(string(${value}).replace("%", "")) : int(${value}))`;
const STRATEGY_VARIABLES = [
  {
    name: "lowerMaxUnavailable",
    expression:
      `variables.active && has(${STRATEGY}) && has(${STRATEGY}.maxUnavailable) && ` +
      `object.spec.?strategy.?type.orValue("RollingUpdate") == "RollingUpdate" && ` +
      `${resolved('object.spec.?strategy.?rollingUpdate.?maxUnavailable.orValue("25%")')} > ${STRATEGY}.maxUnavailable && ` +
      `(${STRATEGY}.maxUnavailable > 0 || ${rawNumber('object.spec.?strategy.?rollingUpdate.?maxSurge.orValue("25%")')} > 0)`,
  },
  {
    name: "raiseDeadline",
    expression:
      `variables.active && has(${STRATEGY}) && has(${STRATEGY}.progressDeadlineSeconds) && ` +
      `object.spec.?progressDeadlineSeconds.orValue(600) <= ${STRATEGY}.?longestBakeSeconds.orValue(0) && ` +
      `${STRATEGY}.progressDeadlineSeconds > object.spec.?minReadySeconds.orValue(0)`,
  },
];

const SET_STRATEGY =
  `(variables.lowerMaxUnavailable ? [object.spec.?strategy.?rollingUpdate.hasValue() ` +
  `? JSONPatch{op: "add", path: "/spec/strategy/rollingUpdate/maxUnavailable", value: ${STRATEGY}.maxUnavailable} ` +
  `: JSONPatch{op: "add", path: "/spec/strategy/rollingUpdate", value: {"maxUnavailable": ${STRATEGY}.maxUnavailable}}] : []) + ` +
  `(variables.raiseDeadline ? [JSONPatch{op: "add", path: "/spec/progressDeadlineSeconds", ` +
  `value: ${STRATEGY}.progressDeadlineSeconds}] : [])`;

const replaceProbe = (probe: string) =>
  `variables.fits.filter(d, has(d.${probe})).map(d, JSONPatch{op: "add", ` +
  `path: ${containerPath("variables.names.indexOf(d.name)")} + "/${probe}", value: d.${probe}})`;

const REPLACE_PRESTOP =
  "variables.fits.filter(d, has(d.preStop)).map(d, " +
  `has(${CONTAINERS}[variables.names.indexOf(d.name)].lifecycle) ` +
  `? JSONPatch{op: "add", path: ${containerPath("variables.names.indexOf(d.name)")} + "/lifecycle/preStop", value: d.preStop} ` +
  `: JSONPatch{op: "add", path: ${containerPath("variables.names.indexOf(d.name)")} + "/lifecycle", value: {"preStop": d.preStop}})`;

const REPLACE_GRACE =
  'variables.grace ? [JSONPatch{op: "add", path: "/spec/template/spec/terminationGracePeriodSeconds", ' +
  "value: variables.released.terminationGracePeriodSeconds}] : []";

// Ownership of what the decision replaced, dropped from every managedFields entry: the applier
// keeps e.g. f:livenessProbe.f:exec after its exec was swapped for httpGet, and a second
// manager applying the same manifest would then conflict (409) with that stale owner. The
// fields admission writes are owned by no manager; the API server keeps this change (it only
// reverts managedFields that admission made invalid).
const MANAGED = "object.metadata.managedFields";
const containerFieldSet = (i: string) =>
  `${MANAGED}[${i}].?fieldsV1[?"f:spec"][?"f:template"][?"f:spec"][?"f:containers"][?('k:{"name":"' + d.name + '"}')].orValue({})`;
const fieldSetPath = (i: string) =>
  `"/metadata/managedFields/" + string(${i}) + "/fieldsV1/f:spec/f:template/f:spec/f:containers/" + ` +
  `jsonpatch.escapeKey('k:{"name":"' + d.name + '"}')`;
const DISOWN = (() => {
  const fs = containerFieldSet("i");
  const remove = (field: string) => `[JSONPatch{op: "remove", path: ${fieldSetPath("i")} + "/${field}"}]`;
  const perContainer = [
    ...PROBES.map((p) => `(has(d.${p}) && "f:${p}" in ${fs} ? ${remove(`f:${p}`)} : [])`),
    `(has(d.preStop) && "f:preStop" in ${fs}[?"f:lifecycle"].orValue({}) ? ${remove("f:lifecycle/f:preStop")} : [])`,
  ].join(" + ");
  const grace =
    `(variables.grace && ${MANAGED}[i].?fieldsV1[?"f:spec"][?"f:template"][?"f:spec"][?"f:terminationGracePeriodSeconds"].hasValue() ? ` +
    `[JSONPatch{op: "remove", path: "/metadata/managedFields/" + string(i) + "/fieldsV1/f:spec/f:template/f:spec/f:terminationGracePeriodSeconds"}] : [])`;
  const spec = (i: string) => `${MANAGED}[${i}].?fieldsV1[?"f:spec"]`;
  const strategy =
    `(variables.lowerMaxUnavailable && ${spec("i")}[?"f:strategy"][?"f:rollingUpdate"][?"f:maxUnavailable"].hasValue() ? ` +
    `[JSONPatch{op: "remove", path: "/metadata/managedFields/" + string(i) + "/fieldsV1/f:spec/f:strategy/f:rollingUpdate/f:maxUnavailable"}] : []) + ` +
    `(variables.raiseDeadline && ${spec("i")}[?"f:progressDeadlineSeconds"].hasValue() ? ` +
    `[JSONPatch{op: "remove", path: "/metadata/managedFields/" + string(i) + "/fieldsV1/f:spec/f:progressDeadlineSeconds"}] : [])`;
  return (
    `has(${MANAGED}) ? lists.range(size(${MANAGED})).map(i, ` +
    `variables.fits.map(d, ${perContainer}).flatten() + ${grace} + ${strategy}).flatten() : []`
  );
})();

const jsonPatch = (expression: string) => ({ patchType: "JSONPatch", jsonPatch: { expression } });

export function enforceManifests(name: string, labels: Labels = {}) {
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingAdmissionPolicy",
      metadata: meta(name, labels),
      spec: {
        // Never refuse a user's write because of Enforce.
        failurePolicy: "Ignore",
        paramKind: { apiVersion: `${GROUP}/${VERSION}`, kind: RELEASE_INDEX_KIND },
        // Only Deployments healthgate released a decision to (its release label): the others cost
        // nothing, however many records their namespace holds. An object selector is matched once,
        // before the parameters; a match condition would be evaluated once per record (measured).
        matchConstraints: {
          ...deploymentRules(["CREATE", "UPDATE"]),
          objectSelector: { matchExpressions: [{ key: RELEASED_LABEL, operator: "Exists" }] },
        },
        // The handler-merge policy may run after this one and change nothing of ours; run again if it did.
        reinvocationPolicy: "IfNeeded",
        variables: [...ENFORCE_VARIABLES, ...STRATEGY_VARIABLES],
        // One mutation: each costs a patch of the whole object.
        mutations: [
          jsonPatch(
            `variables.active ? ${[...PROBES.map(replaceProbe), REPLACE_PRESTOP, REPLACE_GRACE, SET_STRATEGY, DISOWN].map((e) => `(${e})`).join(" + ")} : []`,
          ),
        ],
      },
    },
    // One binding per shard: it selects the Deployments labelled with the shard and names the
    // shard's HealthRelease (no namespace: the Deployment's own), so each write gets one small
    // parameter. A selector over the per-Deployment records made the API server evaluate the
    // policy once per record; one index per namespace made it convert the whole index on each
    // evaluation (bench/admission.ts).
    ...Array.from({ length: RELEASE_INDEX_SHARDS }, (_, i) => {
      const shard = String(i).padStart(2, "0");
      return {
        apiVersion: "admissionregistration.k8s.io/v1",
        kind: "MutatingAdmissionPolicyBinding",
        metadata: meta(`${name}-${shard}`, labels),
        spec: {
          policyName: name,
          paramRef: { name: releaseIndexName(shard), parameterNotFoundAction: "Allow" },
          matchResources: { objectSelector: { matchLabels: { [RELEASE_SHARD_LABEL]: shard } } },
        },
      };
    }),
  ];
}

// ---- 2. handler-merge ------------------------------------------------------------------------

/** `has()` for every step of a dotted field: `has(c.lifecycle) && has(c.lifecycle.preStop)`. */
const present = (value: string, field: string) =>
  field
    .split(".")
    .map((_, i, parts) => `has(${value}.${parts.slice(0, i + 1).join(".")})`)
    .join(" && ");

const count = (value: string, handlers: readonly string[]) =>
  handlers.map((h) => `(has(${value}.${h}) ? 1 : 0)`).join(" + ");

/**
 * Drops, from every container of `list` whose `field` (a probe, or lifecycle.<hook>) carries
 * two handlers, the handler that was the old object's only one.
 */
function dropOldHandler(list: "containers" | "initContainers", field: string, handlers: readonly string[]) {
  const items = `object.spec.template.spec.${list}`;
  const old = `oldObject.spec.template.spec.${list}`;
  const path = (c: string) =>
    `"/spec/template/spec/${list}/" + string(${items}.map(x, x.name).indexOf(${c}.name)) + "/${field.replace(".", "/")}/`;
  const perHandler = handlers.map(
    (h) =>
      `${items}.filter(c, ${present("c", field)} && has(c.${field}.${h}) && ${count(`c.${field}`, handlers)} == 2 && ` +
      `${old}.exists(o, o.name == c.name && ${present("o", field)} && has(o.${field}.${h}) && ` +
      `${count(`o.${field}`, handlers)} == 1))` +
      `.map(c, JSONPatch{op: "remove", path: ${path("c")}${h}"})`,
  );
  const guarded = `has(object.spec.template.spec.${list}) && has(oldObject.spec.template.spec.${list})`;
  return jsonPatch(`${guarded} ? ${perHandler.join(" + ")} : []`);
}

/**
 * Whether any container of the object carries a probe or lifecycle hook with two or more
 * handlers: the only writes the handler-merge policy changes. As a match condition it is
 * evaluated once per write, and spares every other Deployment update the policy's mutations
 * (each a patch of the whole object: measured, they made a no-op Deployment update cost four
 * times as much — bench/write-cost.ts).
 */
const TWO_HANDLERS = (["containers", "initContainers"] as const)
  .map((list) => {
    const items = `object.spec.template.spec.${list}`;
    const fields = [
      ...PROBES.map((p) => [p, PROBE_HANDLERS] as const),
      ...HOOKS.map((h) => [`lifecycle.${h}`, HOOK_HANDLERS] as const),
    ].map(([field, handlers]) => `(${present("c", field)} && ${count(`c.${field}`, handlers)} >= 2)`);
    return `(has(${items}) && ${items}.exists(c, ${fields.join(" || ")}))`;
  })
  .join(" || ");

export function handlerMergeManifests(name: string, labels: Labels = {}) {
  const lists = ["containers", "initContainers"] as const;
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingAdmissionPolicy",
      metadata: meta(name, labels, { "helm.sh/resource-policy": "keep" }),
      spec: {
        failurePolicy: "Ignore",
        matchConstraints: deploymentRules(["UPDATE"]),
        matchConditions: [{ name: "two-handlers", expression: TWO_HANDLERS }],
        reinvocationPolicy: "IfNeeded",
        mutations: lists.flatMap((list) => [
          ...PROBES.map((p) => dropOldHandler(list, p, PROBE_HANDLERS)),
          ...HOOKS.map((hook) => dropOldHandler(list, `lifecycle.${hook}`, HOOK_HANDLERS)),
        ]),
      },
    },
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingAdmissionPolicyBinding",
      metadata: meta(name, labels, { "helm.sh/resource-policy": "keep" }),
      spec: { policyName: name },
    },
  ];
}

// ---- 3. record-status ------------------------------------------------------------------------

/**
 * `writer`: the username allowed to write record status, e.g. system:serviceaccount:<ns>:<sa>.
 * `anyServiceAccount` also admits every ServiceAccount: only for tests, whose operators run as
 * the plane's admin or as a chart ServiceAccount named per test.
 */
export function recordStatusManifests(
  name: string,
  writer: string,
  labels: Labels = {},
  anyServiceAccount = false,
  /** Extra fields of the binding's spec (the chart scopes it to its watched namespace). */
  bindingSpec: Record<string, unknown> = {},
) {
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
      metadata: meta(name, labels),
      spec: {
        failurePolicy: "Fail",
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: [GROUP],
              apiVersions: ["*"],
              operations: ["CREATE", "UPDATE"],
              resources: [`${TARGET_PLURAL}/status`, `${RELEASE_INDEX_PLURAL}/status`],
            },
          ],
        },
        validations: [
          {
            expression:
              `request.userInfo.username == ${JSON.stringify(writer)}` +
              (anyServiceAccount ? ` || request.userInfo.username.startsWith("system:serviceaccount:")` : ""),
            messageExpression:
              `'only healthgate (${writer}) may write the status of ' + object.kind + ' ' + ` +
              "object.metadata.namespace + '/' + object.metadata.name + ': admission copies it into the Deployment" +
              "\\'s pods. ' + request.userInfo.username + ' may read it; change the HealthPolicy instead.'",
            reason: "Forbidden",
          },
        ],
      },
    },
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicyBinding",
      metadata: meta(name, labels),
      spec: { policyName: name, validationActions: ["Deny"], ...bindingSpec },
    },
  ];
}

/**
 * All three, as one List, named as a release called `prefix` names them (the dev CLI, tests).
 * With `mutatingPolicies` false (a cluster that serves no admissionregistration.k8s.io/v1
 * MutatingAdmissionPolicies: before 1.36) the record-status policy only.
 */
export function admissionList(
  prefix: string,
  writer: string,
  anyServiceAccount = false,
  mutatingPolicies = true,
) {
  return {
    apiVersion: "v1",
    kind: "List",
    items: [
      ...(mutatingPolicies ? enforceManifests(`${prefix}-${ENFORCE_SUFFIX}`) : []),
      ...(mutatingPolicies ? handlerMergeManifests(`${prefix}-${HANDLER_MERGE_SUFFIX}`) : []),
      ...recordStatusManifests(`${prefix}-${RECORD_STATUS_SUFFIX}`, writer, {}, anyServiceAccount),
    ],
  };
}

/** Where discovery lists admissionregistration.k8s.io/v1's resources (`kubectl get --raw`). */
export const ADMISSION_V1_DISCOVERY = "/apis/admissionregistration.k8s.io/v1";

/** Whether that APIResourceList (JSON) holds MutatingAdmissionPolicies: GA and on from Kubernetes 1.36. */
export function servesMutatingPolicies(discovery: string): boolean {
  const list = JSON.parse(discovery) as { resources?: { name: string }[] };
  return (list.resources ?? []).some((r) => r.name === "mutatingadmissionpolicies");
}
