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
/** What a plane with nodes runs besides; hack/build-k8s.sh builds them into the cache even when KUBEBUILDER_ASSETS is set. */
export const NODE_BINARIES = ["kube-scheduler", "healthgate-node"] as const;

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

async function executable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where each binary the plane runs is: in `binDir`, or (for the node binaries, which envtest
 * assets lack) in the build cache. Throws, saying how to get them, when one is missing.
 */
export async function findBinaries<N extends string>(
  binDir: string,
  names: readonly N[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Record<N, string>> {
  const found = {} as Record<N, string>;
  const missing: string[] = [];
  for (const name of names) {
    const candidates = [path.join(binDir, name)];
    if ((NODE_BINARIES as readonly string[]).includes(name)) {
      candidates.push(path.join(cacheDir(env), "k8s", KUBERNETES_VERSION, name));
    }
    const first = (await Promise.all(candidates.map(executable))).indexOf(true);
    if (first < 0) missing.push(name);
    else found[name] = candidates[first]!;
  }
  if (missing.length > 0) {
    throw new Error(
      `no executable ${missing.join(", ")} in ${binDir}: build them with hack/build-k8s.sh ` +
        `(or point KUBEBUILDER_ASSETS at a directory that holds etcd, kube-apiserver and kube-controller-manager)`,
    );
  }
  return found;
}

/** Throws, saying how to get them, unless `binDir` holds every binary the plane runs. */
export async function checkBinaries(binDir: string): Promise<void> {
  await findBinaries(binDir, PLANE_BINARIES);
}
