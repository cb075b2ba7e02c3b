// The control plane's PKI, made with the openssl CLI (Node's crypto makes keys
// but not X.509 certificates). P-256 keys: fast to generate and accepted by
// every component, including as the service-account signing key (ES256).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export interface Pki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  /** Client certificate in group system:masters: full access regardless of RBAC. */
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPublicKey: string;
}

export interface PkiOptions {
  /** Subject alternative names of the serving certificate, e.g. ["IP:127.0.0.1", "DNS:localhost"]. */
  servingSans: readonly string[];
  adminUser: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await execFileAsync("openssl", args, { cwd: dir });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new Error(`openssl ${args.join(" ")} failed: ${stderr.trim() || (err as Error).message}`, {
      cause: err,
    });
  }
}

// One config with a section per certificate profile, so no profile inherits
// surprise extensions from the system's openssl.cnf.
function opensslConfig(sans: readonly string[]): string {
  return `[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[serving]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = ${sans.join(",")}
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;
}

const newKey = (dir: string, file: string) =>
  openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file]);

async function issue(
  dir: string,
  name: string,
  subject: string,
  profile: "serving" | "client",
): Promise<void> {
  await newKey(dir, `${name}.key`);
  await openssl(dir, [
    "req",
    "-new",
    "-config",
    "openssl.cnf",
    "-key",
    `${name}.key`,
    "-subj",
    subject,
    "-out",
    `${name}.csr`,
  ]);
  await openssl(dir, [
    "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key",
    "-set_serial", `0x${randomBytes(16).toString("hex")}`, "-days", "365",
    "-extfile", "openssl.cnf", "-extensions", profile, "-out", `${name}.crt`,
  ]); // prettier-ignore
}

/**
 * Issues a client certificate signed by the CA of `dir` (made by createPki), e.g. a node's
 * `/O=system:nodes/CN=system:node:<name>`. Returns the certificate and key files.
 */
export async function issueClientCert(
  dir: string,
  name: string,
  subject: string,
): Promise<{ cert: string; key: string }> {
  await issue(dir, name, subject, "client");
  return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
}

/** Creates a CA and every credential the plane needs in `dir`. */
export async function createPki(dir: string, options: PkiOptions): Promise<Pki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(dir, "openssl.cnf"), opensslConfig(options.servingSans));
  await newKey(dir, "ca.key");
  await openssl(dir, [
    "req", "-x509", "-new", "-config", "openssl.cnf", "-key", "ca.key", "-subj", "/CN=healthgate-dev-ca",
    "-days", "3650", "-extensions", "ca", "-out", "ca.crt",
  ]); // prettier-ignore
  // The three leaf credentials are independent; issue them concurrently.
  await Promise.all([
    issue(dir, "apiserver", "/CN=kube-apiserver", "serving"),
    issue(dir, "admin", `/O=system:masters/CN=${options.adminUser}`, "client"),
    newKey(dir, "service-account.key").then(() =>
      openssl(dir, ["pkey", "-in", "service-account.key", "-pubout", "-out", "service-account.pub"]),
    ),
  ]);
  const file = (name: string) => path.join(dir, name);
  return {
    caCert: file("ca.crt"),
    caKey: file("ca.key"),
    servingCert: file("apiserver.crt"),
    servingKey: file("apiserver.key"),
    adminCert: file("admin.crt"),
    adminKey: file("admin.key"),
    serviceAccountKey: file("service-account.key"),
    serviceAccountPublicKey: file("service-account.pub"),
  };
}
