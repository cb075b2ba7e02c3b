#!/usr/bin/env node
// healthgate's command line: a tiny dispatch, one module per subcommand.
import { installLeanClientNode } from "../kube/leanClientNode.ts";
import { runLint } from "./lint.ts";

// Before any command loads client-node: without its generated API (src/kube/leanClientNode.ts).
installLeanClientNode();

// run and dev load the operator (client-node and all); lint stays light.

const USAGE = `Usage: healthgate <command> [options]

Commands:
  lint           audit probes in manifests offline (healthgate lint --help)
  rollout        status|promote|abort|retry <deployment>: drive a gated rollout (healthgate rollout --help)
  run            run the operator
  release-gates  open every healthgate readiness gate that holds a pod (uninstall without hooks)
  dev            run the operator against a local development cluster
`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const io = {
  stdout: (text: string) => void process.stdout.write(text),
  stderr: (text: string) => void process.stderr.write(text),
  readStdin,
};

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case "lint":
    process.exitCode = await runLint(args, io);
    break;
  case "rollout":
    process.exitCode = await (await import("./rollout.ts")).runRollout(args, io);
    break;
  case "run":
    process.exitCode = await (await import("./run.ts")).runOperator(args);
    break;
  case "release-gates":
    process.exitCode = await (await import("./releaseGates.ts")).runReleaseGates(args, io);
    break;
  case "dev":
    process.exitCode = await (await import("./dev.ts")).runDev(args);
    break;
  case "-h":
  case "--help":
  case "help":
    io.stdout(USAGE);
    break;
  default:
    io.stderr(`${command === undefined ? "missing command" : `unknown command "${command}"`}\n\n${USAGE}`);
    process.exitCode = 2;
}
