#!/usr/bin/env node
// The kubectl plugin: `kubectl healthgate rollout status web` runs this executable (named
// kubectl-healthgate, on PATH) with `rollout status web`, which is healthgate's own command line.
import "./main.ts";
