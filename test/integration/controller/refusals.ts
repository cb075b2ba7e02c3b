// Deliberate refusals of healthgate's writes (issue 21 part 3): an admission policy that refuses
// one resource to one user, a wait until the API server applies it, and the operator's counters.
import { ignoreNotFound, isApiError, testClients } from "../../support/kube.ts";
import { waitFor } from "../../support/waitFor.ts";

/** The sum of an operator metric's values whose labels include `labels`. */
export async function counter(
  operator: {
    metrics: {
      registry: {
        getSingleMetric(
          name: string,
        ): { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> } | undefined;
      };
    };
  },
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = await operator.metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

/**
 * A ValidatingAdmissionPolicy that refuses every CREATE/UPDATE of `resource` (apps, policy,
 * healthgate.io or events.k8s.io group) by `username`, with a message that names `field` — a deliberate refusal.
 */
export async function refuseWrites(username: string, resource: string, field: string) {
  const { admissionregistration } = testClients();
  const name = `refuse-${username.split(":").pop()}-${resource.replace("/", "-")}`.slice(0, 63);
  await admissionregistration.createValidatingAdmissionPolicy({
    body: {
      metadata: { name },
      spec: {
        failurePolicy: "Fail",
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: ["apps", "policy", "healthgate.io", "events.k8s.io"],
              apiVersions: ["v1", "v1alpha1"],
              operations: ["CREATE", "UPDATE"],
              resources: [resource],
            },
          ],
        },
        matchConditions: [{ name: "healthgate", expression: `request.userInfo.username == '${username}'` }],
        validations: [
          {
            expression: "false",
            message: `${field}: refused by the test's admission policy`,
            reason: "Forbidden",
          },
        ],
      },
    },
  });
  await admissionregistration.createValidatingAdmissionPolicyBinding({
    body: { metadata: { name }, spec: { policyName: name, validationActions: ["Deny"] } },
  });
  let removed = false;
  return {
    name,
    async remove() {
      if (removed) return;
      removed = true;
      await ignoreNotFound(admissionregistration.deleteValidatingAdmissionPolicyBinding({ name }));
      await ignoreNotFound(admissionregistration.deleteValidatingAdmissionPolicy({ name }));
    },
  };
}

/** Waits until `write` (a dry run as healthgate) is refused with 403: the refusing policy is in effect. */
export async function untilForbidden(write: () => Promise<unknown>): Promise<void> {
  await waitFor(
    async () => {
      try {
        await write();
      } catch (err) {
        if (isApiError(err, 403)) return true;
        throw err;
      }
      throw new Error("a write by healthgate's ServiceAccount is still admitted");
    },
    { what: "the refusing admission policy to take effect", intervalMs: 250 },
  );
}
