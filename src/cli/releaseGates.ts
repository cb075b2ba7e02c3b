// `healthgate release-gates`: sets True every healthgate.io/deep-check readiness gate that
// holds a pod, so no pod stays unready once healthgate is gone (docs/gating.md). For
// uninstalls without hooks (`helm uninstall --no-hooks`, a GitOps tool rendering the chart);
// the chart's pre-delete hook runs it too. Gates of an aborted revision are kept (releasing
// them would roll it out) unless --allow-aborted; the command then exits 1 naming them.
import os from "node:os";
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { releaseGates, type ReleaseReport } from "../admission/releaseGates.ts";
import { KubeClient, isNotFound, loadKubeConfig, resources } from "../kube/client.ts";
import { createMetrics } from "../observability/metrics.ts";

export const RELEASE_GATES_USAGE = `Usage: healthgate release-gates [options]

Sets True every healthgate.io/deep-check readiness gate that is False or missing on a pod,
so no pod stays unready after healthgate is uninstalled. Run it after the gate webhook's
registration is gone (or pass --delete-webhook-configuration), so no new gate appears.

Options:
  --kubeconfig FILE                      kubeconfig (default: in-cluster or ~/.kube/config)
  --namespace NS                         only this namespace (repeatable; default: all)
  --allow-aborted                        also release gates of aborted revisions (rolls them out)
  --delete-webhook-configuration NAME    first delete the MutatingWebhookConfiguration NAME
  --sweep-again-after-seconds N          sweep a second time after N seconds (the webhook timeout:
                                         a pod admitted just before the registration went)
  --dry-run                              list what would be released, change nothing
`;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export async function runReleaseGates(argv: readonly string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        kubeconfig: { type: "string" },
        namespace: { type: "string", multiple: true },
        "allow-aborted": { type: "boolean" },
        "delete-webhook-configuration": { type: "string" },
        "sweep-again-after-seconds": { type: "string" },
        "dry-run": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    io.stderr(
      `healthgate release-gates: ${err instanceof Error ? err.message : String(err)}\n\n${RELEASE_GATES_USAGE}`,
    );
    return 2;
  }
  if (values.help) {
    io.stdout(RELEASE_GATES_USAGE);
    return 0;
  }
  const again = values["sweep-again-after-seconds"];
  if (again !== undefined && !/^\d{1,4}$/.test(again)) {
    io.stderr(
      `healthgate release-gates: --sweep-again-after-seconds takes whole seconds (e.g. 2), not ${again}\n`,
    );
    return 2;
  }
  const client = new KubeClient(loadKubeConfig(values.kubeconfig), { metrics: createMetrics() });
  const webhook = values["delete-webhook-configuration"];
  if (webhook && !values["dry-run"]) {
    try {
      await client.delete(resources.mutatingWebhookConfigurations, { name: webhook });
      io.stdout(`deleted MutatingWebhookConfiguration ${webhook}: no new pod is gated\n`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  const sweep = () =>
    releaseGates({
      client,
      namespaces: values.namespace ?? [],
      allowAborted: values["allow-aborted"] ?? false,
      reason: "GatingStopped",
      identity: process.env.POD_NAME ?? `${os.hostname()}_${process.pid}`,
      now: () => new Date(),
      dryRun: values["dry-run"] ?? false,
    });
  const report = await sweep();
  if (again !== undefined && Number(again) > 0) {
    await delay(Number(again) * 1000);
    const second = await sweep();
    report.released.push(...second.released);
    report.failed.push(...second.failed);
    report.abortedKept.push(...second.abortedKept.filter((d) => !report.abortedKept.includes(d)));
  }
  return printReport(report, values["dry-run"] ?? false, io);
}

function printReport(report: ReleaseReport, dryRun: boolean, io: CliIo): number {
  const verb = dryRun ? "would release" : "released";
  for (const pod of report.released) io.stdout(`${verb} the gate of pod ${pod}\n`);
  io.stdout(`${verb} ${report.released.length} gate(s)\n`);
  for (const failure of report.failed) io.stderr(`failed: ${failure}\n`);
  if (report.abortedKept.length > 0) {
    io.stderr(
      `kept the gates of aborted revisions of Deployment(s) ${report.abortedKept.join(", ")}: releasing them would ` +
        "roll the aborted revision out. Roll those Deployments back (kubectl rollout undo) and run again, or pass " +
        "--allow-aborted to release them anyway\n",
    );
  }
  return report.failed.length > 0 || report.abortedKept.length > 0 ? 1 : 0;
}
