import { parseArgs } from "node:util";
import type { Deployment, HorizontalPodAutoscaler, PodSpec } from "../api/k8s.ts";
import {
  API_VERSION,
  KIND,
  headroomSpec,
  healthPolicy,
  parseHealthPolicy,
  severity as severitySchema,
  type Finding,
  type HealthPolicy,
  type Severity,
} from "../api/v1alpha1/index.ts";
import { governingPolicy } from "../policy/governance.ts";
import { assessHeadroomOffline } from "../policy/headroom/offline.ts";
import {
  POLICY_RULES,
  atLeast,
  auditPodSpec,
  defaultPolicySpec,
  type Workload,
} from "../policy/probes/index.ts";
import {
  isObject,
  parseSource,
  readSources,
  type InputError,
  type ManifestObject,
  type PathSegment,
} from "./manifests.ts";
import { formatJson, formatSarif, formatText, workloadLabel } from "./lintReport.ts";

// `healthgate lint`: the probe rules over manifests, offline. Exit codes:
// 0 clean (nothing at or above --fail-on), 1 findings at or above it,
// 2 input that cannot be read or parsed (the message names file and line).

export interface LintIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
}

export type OutputFormat = "text" | "json" | "sarif";
export type FailOn = Severity | "none";

export interface LintFinding extends Finding {
  file: string;
  line: number;
  workload: Workload;
  /** The HealthPolicy whose spec was applied; absent when the CRD's defaults were. */
  policy?: string;
}

export interface LintResult {
  findings: LintFinding[];
  errors: InputError[];
  notes: string[];
  workloads: number;
  /** Workloads linted, per kind. */
  workloadsByKind: Record<string, number>;
  policies: number;
  failOn: FailOn;
  /** Findings at or above failOn. */
  failing: number;
}

export const USAGE = `Usage: healthgate lint [options] <file|directory|->...

Audits the probes of Deployments, StatefulSets and DaemonSets, and the N-k
headroom of Deployments (from an HPA or a HealthPolicy's Static peak in the
input, else by replica count), in YAML or JSON manifests (multi-document;
directories are read recursively, never twice through a link; - is stdin).
HealthPolicies in the input govern the Deployments they select in their
namespace; without one, the HealthPolicy CRD's defaults apply. Notes on
stderr say which kinds were linted and how, and what was not judged.

Options:
  -o, --output <text|json|sarif>   output format (default text; sarif is SARIF 2.1.0)
      --fail-on <severity|none>    exit 1 when a finding is at or above it:
                                   info, warning, error (default), critical, none
  -h, --help                       show this help

Exit codes: 0 no finding at or above --fail-on, 1 some, 2 unreadable input or bad usage.
Rules: docs/rules.md.
`;

/** Kinds whose pod template is audited, with the path to the pod spec and how they are linted. */
const WORKLOADS: Readonly<Record<string, { podSpec: readonly PathSegment[]; how: string }>> = {
  Deployment: {
    podSpec: ["spec", "template", "spec"],
    how: "probe rules and headroom, under the HealthPolicy that selects it or the CRD's defaults",
  },
  StatefulSet: {
    podSpec: ["spec", "template", "spec"],
    how: "probe rules with the CRD's defaults (HealthPolicies select Deployments only); headroom not judged",
  },
  DaemonSet: {
    podSpec: ["spec", "template", "spec"],
    how: "probe rules with the CRD's defaults; one pod per node, so headroom does not apply",
  },
};
/** Kinds with a pod template that are not audited, and why. */
const RUN_TO_COMPLETION = new Set(["Job", "CronJob"]);
const HPA_KIND = "HorizontalPodAutoscaler";

export async function runLint(argv: readonly string[], io: LintIO): Promise<number> {
  let options: { output: OutputFormat; failOn: FailOn; inputs: string[] };
  try {
    const parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        output: { type: "string", short: "o", default: "text" },
        "fail-on": { type: "string", default: "error" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    if (parsed.values.help) {
      io.stdout(USAGE);
      return 0;
    }
    const output = parsed.values.output;
    const failOn = parsed.values["fail-on"];
    if (output !== "text" && output !== "json" && output !== "sarif")
      throw new Error(`--output must be text, json or sarif, not "${output}"`);
    if (failOn !== "none" && !severitySchema.safeParse(failOn).success) {
      throw new Error(`--fail-on must be info, warning, error, critical or none, not "${failOn}"`);
    }
    if (parsed.positionals.length === 0) throw new Error("no input: name files, directories, or - for stdin");
    options = { output, failOn: failOn as FailOn, inputs: parsed.positionals };
  } catch (error) {
    io.stderr(`healthgate lint: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }

  let result: LintResult;
  try {
    result = await lint(options.inputs, options.failOn, io.readStdin);
  } catch (error) {
    // Never exit 1 ("findings") for input lint could not cope with: a crash is an input error.
    io.stderr(`healthgate lint: could not lint the input: ${(error as Error).message}\n`);
    return 2;
  }
  const render = { text: formatText, json: formatJson, sarif: formatSarif }[options.output];
  io.stdout(render(result));
  for (const note of result.notes) io.stderr(`note: ${note}\n`);
  for (const error of result.errors)
    io.stderr(`error: ${error.file}${error.line ? `:${error.line}` : ""}: ${error.message}\n`);
  if (result.errors.length > 0) return 2;
  return result.failing > 0 ? 1 : 0;
}

interface PolicyInput {
  policy: HealthPolicy;
  source: ManifestObject;
}

interface WorkloadInput {
  workload: Workload;
  podSpec: PodSpec;
  podSpecPath: readonly PathSegment[];
  source: ManifestObject;
}

/** Reads, pairs and audits; pure apart from reading the inputs. */
export async function lint(
  inputs: readonly string[],
  failOn: FailOn,
  readStdin: () => Promise<string>,
): Promise<LintResult> {
  const { sources, errors } = await readSources(inputs, readStdin);
  const policies: PolicyInput[] = [];
  const workloads: WorkloadInput[] = [];
  const hpas: HpaInput[] = [];
  const ignored = new Map<string, number>();
  const runToCompletion = new Map<string, number>();
  let policyDocuments = 0;

  for (const source of sources) {
    const parsed = parseSource(source);
    errors.push(...parsed.errors);
    for (const manifest of parsed.objects) {
      const kind = typeof manifest.object["kind"] === "string" ? manifest.object["kind"] : "(no kind)";
      if (kind === KIND && manifest.object["apiVersion"] === API_VERSION) {
        policyDocuments++;
        const result = parseHealthPolicy(manifest.object);
        if (result.ok) policies.push({ policy: result.policy, source: manifest });
        else
          errors.push({
            file: manifest.file,
            line: invalidPolicyLine(manifest),
            message: result.condition.message,
          });
      } else if (WORKLOADS[kind]) {
        const workload = readWorkload(manifest, kind, WORKLOADS[kind].podSpec);
        if ("message" in workload) errors.push(workload);
        else workloads.push(workload);
      } else if (kind === HPA_KIND) {
        const hpa = readHpa(manifest);
        if (hpa) hpas.push(hpa);
      } else if (RUN_TO_COMPLETION.has(kind)) {
        runToCompletion.set(kind, (runToCompletion.get(kind) ?? 0) + 1);
      } else {
        ignored.set(kind, (ignored.get(kind) ?? 0) + 1);
      }
    }
  }

  const findings: LintFinding[] = [];
  const defaults = defaultPolicySpec();
  const headroom = new HeadroomTally();
  let governed = 0;
  for (const input of workloads) {
    const deployment = input.workload.kind === "Deployment" ? asDeployment(input.source.object) : undefined;
    const policy = deployment
      ? governingPolicy(
          policies.map((p) => p.policy),
          deployment,
        )
      : undefined;
    if (policy) governed++;
    if (deployment) findings.push(...lintHeadroom(input, deployment, policy, hpas, headroom));
    for (const finding of auditPodSpec(policy?.spec ?? defaults, input.podSpec, input.workload)) {
      findings.push({
        ...finding,
        file: input.source.file,
        line: input.source.lineOf(findingPath(finding, input)),
        workload: input.workload,
        ...(policy ? { policy: policy.metadata.name } : {}),
      });
    }
  }

  const notes: string[] = [];
  const byKind = countBy(workloads.map((w) => w.workload.kind));
  for (const [kind, n] of byKind) notes.push(`${kind} ×${n} linted: ${WORKLOADS[kind]?.how ?? ""}`);
  if (runToCompletion.size > 0) {
    notes.push(
      `${listCounts(runToCompletion)} not audited: their pods run to completion and serve no traffic, so probes and headroom do not apply`,
    );
  }
  if (ignored.size > 0) {
    const total = [...ignored.values()].reduce((a, b) => a + b, 0);
    notes.push(`${total} object${total === 1 ? "" : "s"} of other kinds not audited: ${listCounts(ignored)}`);
  }
  notes.push(...headroom.notes());
  if (workloads.length > 0 && policyDocuments === 0) {
    notes.push(
      "no HealthPolicy in the input: the CRD's defaults apply, and suspected-deep liveness paths are warnings",
    );
  } else {
    const deployments = byKind.find(([kind]) => kind === "Deployment")?.[1] ?? 0;
    if (deployments > governed && policies.length > 0) {
      notes.push(
        `${deployments - governed} Deployment(s) selected by no HealthPolicy in the input: the CRD's defaults apply to them`,
      );
    }
  }

  return {
    findings,
    errors,
    notes,
    workloads: workloads.length,
    workloadsByKind: Object.fromEntries(byKind),
    policies: policies.length,
    failOn,
    failing: failOn === "none" ? 0 : findings.filter((f) => atLeast(f.severity, failOn)).length,
  };
}

/** The line of the first field the schema refuses, else the object's. */
function invalidPolicyLine(manifest: ManifestObject): number {
  const parsed = healthPolicy.safeParse(manifest.object);
  const path = parsed.success ? undefined : parsed.error.issues[0]?.path;
  return path
    ? manifest.lineOf(path.filter((k) => typeof k === "string" || typeof k === "number"))
    : manifest.line;
}

function readWorkload(
  manifest: ManifestObject,
  kind: string,
  podSpecPath: readonly PathSegment[],
): WorkloadInput | InputError {
  const metadata = manifest.object["metadata"];
  const name = isObject(metadata) && typeof metadata["name"] === "string" ? metadata["name"] : undefined;
  const namespace =
    isObject(metadata) && typeof metadata["namespace"] === "string" ? metadata["namespace"] : undefined;
  const podSpec = podSpecPath.reduce<unknown>(
    (node, key) => (isObject(node) ? node[key as string] : undefined),
    manifest.object,
  );
  const invalid = (message: string): InputError => ({
    file: manifest.file,
    line: manifest.lineOf(podSpecPath),
    message,
  });
  if (name === undefined)
    return { file: manifest.file, line: manifest.line, message: `${kind} without metadata.name` };
  const label = `${kind} ${namespace ? `${namespace}/` : ""}${name}`;
  if (!isObject(podSpec) || !Array.isArray(podSpec["containers"]))
    return invalid(`${label}: ${podSpecPath.join(".")}.containers must be a list`);
  const unnamed = podSpec["containers"].findIndex((c) => !isObject(c) || typeof c["name"] !== "string");
  if (unnamed >= 0) return invalid(`${label}: container ${unnamed} has no name`);
  return {
    workload: { kind, name, ...(namespace !== undefined ? { namespace } : {}) },
    podSpec: podSpec as unknown as PodSpec,
    podSpecPath,
    source: manifest,
  };
}

/** Where in the object a finding points: a container field, a pod field, or the containers list. */
function findingPath(finding: Finding, input: WorkloadInput): PathSegment[] {
  const pod = [...input.podSpecPath];
  if (finding.rule === POLICY_RULES.governedContainerMissing.rule) return [...pod, "containers"];
  const field = (finding.field ?? "").split(".").filter(Boolean);
  if (field[0] === "spec") return [...pod, ...field.slice(1)];
  const index = input.podSpec.containers.findIndex((c) => c.name === finding.container);
  return index < 0 ? pod : [...pod, "containers", index, ...field];
}

interface HpaInput {
  hpa: HorizontalPodAutoscaler;
  source: ManifestObject;
}

const countBy = (keys: readonly string[]): [string, number][] =>
  [...keys.reduce((m, k) => m.set(k, (m.get(k) ?? 0) + 1), new Map<string, number>())].sort(([a], [b]) =>
    a < b ? -1 : 1,
  );

const listCounts = (counts: ReadonlyMap<string, number>) =>
  [...counts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, n]) => `${k} ×${n}`)
    .join(", ");

const asDeployment = (object: Record<string, unknown>): Deployment =>
  ({
    metadata: isObject(object["metadata"]) ? object["metadata"] : {},
    spec: isObject(object["spec"]) ? object["spec"] : {},
  }) as unknown as Deployment;

/**
 * An HPA as the headroom assessment reads it: autoscaling/v2 as it is; autoscaling/v1's
 * targetCPUUtilizationPercentage (default 80) as the equivalent CPU Utilization metric.
 * Undefined for one without a scaleTargetRef or maxReplicas (the API server refuses those).
 */
function readHpa(manifest: ManifestObject): HpaInput | undefined {
  const { object } = manifest;
  const metadata = object["metadata"];
  const spec = object["spec"];
  if (!isObject(metadata) || !isObject(spec) || !isObject(spec["scaleTargetRef"])) return undefined;
  if (typeof spec["maxReplicas"] !== "number") return undefined;
  const v1 = object["apiVersion"] === "autoscaling/v1";
  const target = spec["targetCPUUtilizationPercentage"];
  const hpa = {
    metadata,
    spec: v1
      ? {
          ...spec,
          metrics: [
            {
              type: "Resource",
              resource: {
                name: "cpu",
                target: { type: "Utilization", averageUtilization: typeof target === "number" ? target : 80 },
              },
            },
          ],
        }
      : spec,
  } as unknown as HorizontalPodAutoscaler;
  return { hpa, source: manifest };
}

/** How the Deployments' headroom was judged, for one note per kind of judgement. */
class HeadroomTally {
  private byReplicas: string[] = [];
  private noHeadroomSpec: string[] = [];
  private other: string[] = [];
  replicasOnly(label: string) {
    this.byReplicas.push(label);
  }
  policyWithoutHeadroom(label: string) {
    this.noHeadroomSpec.push(label);
  }
  notJudged(note: string) {
    this.other.push(note);
  }
  notes(): string[] {
    const notes = [...this.other];
    const few = (labels: string[]) =>
      labels.length <= 3
        ? labels.join(", ")
        : `${labels.slice(0, 3).join(", ")} and ${labels.length - 3} more`;
    if (this.byReplicas.length > 0) {
      notes.push(
        `headroom of ${this.byReplicas.length} Deployment(s) judged by replica count only (${few(this.byReplicas)}): ` +
          `no HPA in the input targets them and no HealthPolicy gives a Static peak, so the load after a loss is unknown`,
      );
    }
    if (this.noHeadroomSpec.length > 0) {
      notes.push(
        `headroom of ${this.noHeadroomSpec.length} Deployment(s) not judged (${few(this.noHeadroomSpec)}): ` +
          `the HealthPolicy that governs them sets no spec.headroom, and the operator judges none either`,
      );
    }
    return notes;
  }
}

/** The headroom findings of one Deployment, located: the HPA's minReplicas for an HPA verdict, else the Deployment's field. */
function lintHeadroom(
  input: WorkloadInput,
  deployment: Deployment,
  policy: HealthPolicy | undefined,
  hpas: readonly HpaInput[],
  tally: HeadroomTally,
): LintFinding[] {
  const label = workloadLabel(input.workload);
  if (policy && !policy.spec.headroom) {
    tally.policyWithoutHeadroom(label);
    return [];
  }
  const spec = policy?.spec.headroom ?? headroomSpec.parse({});
  const namespace = deployment.metadata.namespace ?? "";
  const hpa = hpas.find(
    ({ hpa }) =>
      (hpa.metadata.namespace ?? "") === namespace &&
      hpa.spec.scaleTargetRef.kind === "Deployment" &&
      hpa.spec.scaleTargetRef.name === deployment.metadata.name,
  );
  const result = assessHeadroomOffline({ deployment, spec, ...(hpa ? { hpa: hpa.hpa } : {}) });
  if (result.note) tally.notJudged(`${label}: ${result.note}`);
  if (result.judged === "replicas") tally.replicasOnly(label);
  return result.findings.map((finding) => {
    const onHpa = result.judged === "HPA" && hpa && finding.field === undefined;
    const at = onHpa ? hpa.source : input.source;
    const path = onHpa ? ["spec", "minReplicas"] : (finding.field ?? "spec.replicas").split(".");
    return {
      ...finding,
      file: at.file,
      line: at.lineOf(path),
      workload: input.workload,
      ...(policy ? { policy: policy.metadata.name } : {}),
    };
  });
}
