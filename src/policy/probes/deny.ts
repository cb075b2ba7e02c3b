import { API_VERSION, KIND } from "../../api/v1alpha1/index.ts";

// deny.deepLiveness at admission, without a webhook: a ValidatingAdmissionPolicy
// whose parameter is the HealthPolicy itself. The binding's paramRef selects
// every HealthPolicy in the Deployment's namespace (an empty selector, no
// namespace = the object's own), so a deep path declared by ANY of them is
// denied (DESIGN.md, "Two policies selecting the same Deployment"); a namespace
// without HealthPolicies is allowed (parameterNotFoundAction: Allow). CEL can
// only see the parameter and the object, so the check is the exact path
// comparison — lint and the operator's rules do the rest (exec clients,
// normalised paths, heuristics).

export const DENY_DEEP_LIVENESS_SUFFIX = "deny-deep-liveness";

/** Shared by the validation and its message: the containers whose liveness path is a declared deep path. */
const VARIABLES = [
  {
    name: "denyDeepLiveness",
    expression:
      "has(params.spec.deny) && has(params.spec.deny.deepLiveness) && params.spec.deny.deepLiveness",
  },
  {
    name: "deepPaths",
    expression:
      "(has(params.spec.endpoints) && has(params.spec.endpoints.deep) ? params.spec.endpoints.deep.paths : []) + " +
      "(has(params.spec.rollout) && has(params.spec.rollout.deepCheck) ? [params.spec.rollout.deepCheck.path] : [])",
  },
  {
    name: "deepLivenessContainers",
    expression:
      "object.spec.template.spec.containers.filter(c, has(c.livenessProbe) && has(c.livenessProbe.httpGet) && " +
      "has(c.livenessProbe.httpGet.path) && c.livenessProbe.httpGet.path in variables.deepPaths)",
  },
];

const MESSAGE_EXPRESSION =
  "'HealthPolicy ' + params.metadata.name + ' (deny.deepLiveness: true) refuses this Deployment: container ' + " +
  "variables.deepLivenessContainers[0].name + ' has livenessProbe.httpGet.path ' + " +
  "variables.deepLivenessContainers[0].livenessProbe.httpGet.path + ', a deep endpoint that checks shared " +
  "dependencies; when one blips every pod is restarted at once. Point the liveness probe at a shallow endpoint " +
  "(e.g. /healthz) and keep deep checks out-of-band (spec.rollout.deepCheck), or set the HealthPolicy to mode: Enforce " +
  "so healthgate writes the probes.'";

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
        variables: VARIABLES,
        validations: [
          {
            expression: "!variables.denyDeepLiveness || size(variables.deepLivenessContainers) == 0",
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
