import { isAbsolute } from "node:path";
import { pathToFileURL } from "node:url";
import type { Severity } from "../api/v1alpha1/index.ts";
import {
  POLICY_RULES,
  PROBE_RULES,
  SEVERITY_RANK,
  type RuleMeta,
  type Workload,
} from "../policy/probes/index.ts";
import { HEADROOM_RULES } from "../policy/headroom/rules.ts";
import type { LintFinding, LintResult } from "./lint.ts";

// Output of `healthgate lint`: text for people, JSON for scripts, SARIF 2.1.0
// for code-scanning UIs.

const SEVERITIES: readonly Severity[] = ["critical", "error", "warning", "info"];

export const workloadLabel = (w: Workload) => `${w.kind} ${w.namespace ? `${w.namespace}/` : ""}${w.name}`;

function counts(findings: readonly LintFinding[]): string {
  const parts = SEVERITIES.map((s) => [s, findings.filter((f) => f.severity === s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`);
  return parts.length > 0 ? parts.join(", ") : "none";
}

/** Findings in file, line order, worst first on the same line. */
function ordered(findings: readonly LintFinding[]): LintFinding[] {
  return [...findings].sort(
    (a, b) =>
      (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) ||
      a.line - b.line ||
      SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity],
  );
}

export function formatText(result: LintResult): string {
  const lines = ordered(result.findings).map((f) => {
    const where = [
      f.container !== undefined ? `container ${f.container}` : "",
      f.field ? `(${f.field})` : "",
      f.policy ? `[HealthPolicy ${f.policy}]` : "",
    ]
      .filter(Boolean)
      .join(" ");
    return `${f.file}:${f.line}: ${f.severity} ${f.rule}: ${[workloadLabel(f.workload), where].filter(Boolean).join(" ")}\n    ${f.message}\n`;
  });
  const verdict =
    result.failOn === "none"
      ? "--fail-on none"
      : `${result.failing} at or above ${result.failOn}${result.failing > 0 ? " (failing)" : ""}`;
  const summary =
    `${result.workloads} workload${result.workloads === 1 ? "" : "s"}, ${result.policies} HealthPolic${result.policies === 1 ? "y" : "ies"}: ` +
    `${result.findings.length} finding${result.findings.length === 1 ? "" : "s"} (${counts(result.findings)}); ${verdict}\n`;
  return (lines.length > 0 ? lines.join("") + "\n" : "") + summary;
}

export function formatJson(result: LintResult): string {
  const bySeverity = Object.fromEntries(
    SEVERITIES.map((s) => [s, result.findings.filter((f) => f.severity === s).length]),
  );
  return (
    JSON.stringify(
      {
        findings: ordered(result.findings),
        errors: result.errors,
        notes: result.notes,
        summary: {
          workloads: result.workloads,
          workloadsByKind: result.workloadsByKind,
          policies: result.policies,
          findings: result.findings.length,
          bySeverity,
          failOn: result.failOn,
          failing: result.failing,
        },
      },
      null,
      2,
    ) + "\n"
  );
}

const SARIF_LEVEL: Readonly<Record<Severity, "error" | "warning" | "note">> = {
  critical: "error",
  error: "error",
  warning: "warning",
  info: "note",
};

/** GitHub code scanning ranks results by this property (0–10). */
const SECURITY_SEVERITY: Readonly<Record<Severity, string>> = {
  critical: "9.0",
  error: "7.0",
  warning: "4.0",
  info: "1.0",
};

const ALL_RULES: readonly RuleMeta[] = [
  ...PROBE_RULES,
  ...Object.values(POLICY_RULES),
  ...Object.values(HEADROOM_RULES),
];

/** Relative paths stay relative (code-scanning UIs resolve them against the repository); absolute ones become file: URIs. */
const artifactUri = (file: string) => {
  if (file === "<stdin>") return "stdin";
  if (isAbsolute(file)) return pathToFileURL(file).href;
  return file.replaceAll("\\", "/").split("/").map(encodeURIComponent).join("/");
};

export function formatSarif(result: LintResult): string {
  const ruleIndex = new Map(ALL_RULES.map((r, i) => [r.rule, i]));
  const log = {
    $schema: "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
    version: "2.1.0",
    runs: [
      {
        tool: {
          driver: {
            name: "healthgate",
            rules: ALL_RULES.map((r) => ({
              id: r.rule,
              name: r.rule,
              shortDescription: { text: r.checks },
              fullDescription: { text: r.rationale },
              help: { text: `${r.rationale} Fix: ${r.fix}` },
              defaultConfiguration: { level: SARIF_LEVEL[r.severity] },
              properties: {
                severity: r.severity,
                "security-severity": SECURITY_SEVERITY[r.severity],
                tags: ["kubernetes", "probes"],
              },
            })),
          },
        },
        results: ordered(result.findings).map((f) => ({
          ruleId: f.rule,
          ruleIndex: ruleIndex.get(f.rule) ?? -1,
          level: SARIF_LEVEL[f.severity],
          message: {
            text: `${workloadLabel(f.workload)}${f.container !== undefined ? `, container ${f.container}` : ""}: ${f.message}`,
          },
          locations: [
            {
              physicalLocation: {
                artifactLocation: { uri: artifactUri(f.file) },
                region: { startLine: f.line },
              },
              logicalLocations: [
                {
                  kind: "resource",
                  fullyQualifiedName: [
                    f.workload.kind,
                    f.workload.namespace ?? "",
                    f.workload.name,
                    f.container ?? "",
                  ].join("/"),
                },
              ],
            },
          ],
          properties: {
            severity: f.severity,
            ...(f.field ? { field: f.field } : {}),
            ...(f.policy ? { policy: f.policy } : {}),
          },
        })),
        invocations: [
          {
            executionSuccessful: result.errors.length === 0,
            toolExecutionNotifications: result.errors.map((e) => ({
              level: "error",
              message: { text: e.message },
              locations: [
                {
                  physicalLocation: {
                    artifactLocation: { uri: artifactUri(e.file) },
                    ...(e.line ? { region: { startLine: e.line } } : {}),
                  },
                },
              ],
            })),
          },
        ],
      },
    ],
  };
  return JSON.stringify(log, null, 2) + "\n";
}
