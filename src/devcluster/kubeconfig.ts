// Kubeconfig files for the local plane's clients (the admin, each node's kubelet),
// with the credentials embedded so the file alone is enough.
import { readFile, writeFile } from "node:fs/promises";

export interface KubeconfigCredentials {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The user entry's name (the identity itself is the certificate's subject). */
  user: string;
}

/** Writes a kubeconfig for `server` with one context, readable by its owner only. */
export async function writeKubeconfig(
  file: string,
  server: string,
  credentials: KubeconfigCredentials,
): Promise<void> {
  const [ca, cert, key] = await Promise.all(
    [credentials.caFile, credentials.certFile, credentials.keyFile].map((f) => readFile(f)),
  );
  const b64 = (data: Buffer | undefined) => data!.toString("base64");
  // JSON is YAML; every client (kubectl, client-go, client-node) reads it.
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "healthgate-dev", cluster: { server, "certificate-authority-data": b64(ca) } }],
    users: [
      {
        name: credentials.user,
        user: { "client-certificate-data": b64(cert), "client-key-data": b64(key) },
      },
    ],
    contexts: [{ name: "healthgate-dev", context: { cluster: "healthgate-dev", user: credentials.user } }],
    "current-context": "healthgate-dev",
  };
  await writeFile(file, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
}
