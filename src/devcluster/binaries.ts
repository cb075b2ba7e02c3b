// Where the control plane's binaries live. hack/build-k8s.sh builds them from
// the Go module proxy into the same cache layout; users with envtest assets
// point KUBEBUILDER_ASSETS at them (the controller-runtime convention).
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

/** The Kubernetes version the plane is built at; equals hack/k8sbin/go.mod (a test checks it). */
export const KUBERNETES_VERSION = "v1.37.2";

export const PLANE_BINARIES = ["etcd", "kube-apiserver", "kube-controller-manager"] as const;

/** `${HEALTHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthgate}`, as in hack/build-k8s.sh. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HEALTHGATE_CACHE) return env.HEALTHGATE_CACHE;
  const xdg = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), ".cache");
  return path.join(xdg, "healthgate");
}

/** KUBEBUILDER_ASSETS when set, else the build cache for `version`. */
export function defaultBinDir(env: NodeJS.ProcessEnv = process.env, version = KUBERNETES_VERSION): string {
  return env.KUBEBUILDER_ASSETS || path.join(cacheDir(env), "k8s", version);
}

/** Throws, saying how to get them, unless `binDir` holds every binary the plane runs. */
export async function checkBinaries(binDir: string): Promise<void> {
  const missing: string[] = [];
  for (const name of PLANE_BINARIES) {
    try {
      await access(path.join(binDir, name), constants.X_OK);
    } catch {
      missing.push(name);
    }
  }
  if (missing.length > 0) {
    throw new Error(
      `no executable ${missing.join(", ")} in ${binDir}: build them with hack/build-k8s.sh ` +
        `(or point KUBEBUILDER_ASSETS at a directory that holds etcd, kube-apiserver and kube-controller-manager)`,
    );
  }
}
