// The gate webhook's certificate plan, stepped through a CA's whole life with an injected
// clock: at every step the certificate served is signed by a CA of the bundle the API server
// trusts (proved by a real TLS handshake), so no rotation fails an admission.
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import { connect } from "node:tls";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import {
  planCertificates,
  readCertState,
  certStateData,
  TRUSTED_SINCE_ANNOTATION,
  type CertSettings,
  type CertState,
} from "../../../src/admission/certs.ts";
import { mergeBundles } from "../../../src/admission/gateWebhook.ts";
import { splitPem } from "../../../src/admission/x509.ts";

const MIN = 60_000;
const settings: CertSettings = {
  caValidityMs: 90 * MIN,
  servingValidityMs: 30 * MIN,
  overlapMs: 5 * MIN,
  dnsNames: ["hg-webhook.hg-system.svc"],
  ipAddresses: ["127.0.0.1"],
  commonName: "hg-webhook",
};
// Now: the handshakes run on the real clock.
const T0 = Date.now();

/** Whether a TLS client trusting `bundle` accepts a server presenting `cert`/`key` for `servername`. */
async function handshake(state: CertState): Promise<boolean> {
  const server = createServer({ cert: state.cert, key: state.key });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  try {
    const socket = connect({
      host: "127.0.0.1",
      port,
      ca: splitPem(state.bundle),
      servername: settings.dnsNames[0],
    });
    const ok = await new Promise<boolean>((resolve) => {
      socket.once("secureConnect", () => resolve(socket.authorized));
      socket.once("error", () => resolve(false));
    });
    socket.destroy();
    return ok;
  } finally {
    server.close();
  }
}

describe("planCertificates", () => {
  it("creates a CA and a serving certificate for the service's names when the Secret is empty", async () => {
    const plan = planCertificates(undefined, settings, T0)!;
    expect(plan.step).toBe("Created");
    const served = new X509Certificate(plan.state.cert);
    expect(served.subjectAltName).toBe("DNS:hg-webhook.hg-system.svc, IP Address:127.0.0.1");
    expect(served.checkIssued(new X509Certificate(plan.state.caCert))).toBe(true);
    expect(new X509Certificate(plan.state.caCert).ca).toBe(true);
    expect(await handshake(plan.state)).toBe(true);
    expect(planCertificates(plan.state, settings, T0 + MIN)).toBeUndefined();
  });

  it("rotates the CA without ever serving a certificate the bundle does not trust", () => {
    let state = planCertificates(undefined, settings, T0)!.state;
    const steps: string[] = [];
    // Every simulated minute for three CA lifetimes: each replica would load the state at once.
    for (let t = T0; t <= T0 + 3 * settings.caValidityMs; t += MIN) {
      const plan = planCertificates(state, settings, t);
      if (!plan) continue;
      steps.push(plan.step);
      state = plan.state;
      expect(new X509Certificate(state.cert).validToDate.getTime()).toBeGreaterThan(t);
      // The certificate served is issued by one of the CAs the API server trusts.
      const trusted = splitPem(state.bundle).map((pem) => new X509Certificate(pem));
      expect(trusted.some((ca) => new X509Certificate(state.cert).checkIssued(ca))).toBe(true);
    }
    expect(steps).toContain("CaRotated");
    expect(steps).toContain("ServingRenewed");
    expect(steps).toContain("BundlePruned");
    // After a CA rotation the serving certificate waits out the overlap before switching CA.
    expect(steps[steps.indexOf("CaRotated") + 1]).not.toBe("CaRotated");
  });

  it("keeps the served certificate from an old CA until the new CA has been trusted for the overlap", () => {
    let state = planCertificates(undefined, settings, T0)!.state;
    // The serving certificate comes due first (two thirds of 30 minutes) and is renewed ...
    const renewedFirst = planCertificates(state, settings, T0 + 55 * MIN)!;
    expect(renewedFirst.step).toBe("ServingRenewed");
    state = renewedFirst.state;
    // ... then the CA (two thirds of 90 minutes).
    const rotateAt = T0 + 61 * MIN;
    const rotated = planCertificates(state, settings, rotateAt)!;
    expect(rotated.step).toBe("CaRotated");
    state = rotated.state;
    expect(splitPem(state.bundle)).toHaveLength(2);
    const served = new X509Certificate(state.cert);
    expect(served.checkIssued(new X509Certificate(state.caCert))).toBe(false);
    expect(planCertificates(state, settings, rotateAt + settings.overlapMs - MIN)).toBeUndefined();
    const renewed = planCertificates(state, settings, rotateAt + settings.overlapMs)!;
    expect(renewed.step).toBe("ServingRenewed");
    expect(new X509Certificate(renewed.state.cert).checkIssued(new X509Certificate(state.caCert))).toBe(true);
  });

  it("reissues the serving certificate when the service's names change", () => {
    const state = planCertificates(undefined, settings, T0)!.state;
    const plan = planCertificates(
      state,
      { ...settings, dnsNames: ["other.ns.svc"] },
      T0 + settings.overlapMs,
    )!;
    expect(plan.step).toBe("ServingRenewed");
    expect(new X509Certificate(plan.state.cert).subjectAltName).toContain("DNS:other.ns.svc");
  });

  it("starts over from a Secret whose contents do not parse", () => {
    const state = planCertificates(undefined, settings, T0)!.state;
    expect(planCertificates({ ...state, caKey: "garbage" }, settings, T0)?.step).toBe("Created");
  });

  it("round-trips through the Secret's data and annotation", () => {
    const state = planCertificates(undefined, settings, T0)!.state;
    expect(readCertState(certStateData(state), { [TRUSTED_SINCE_ANNOTATION]: state.caTrustedSince })).toEqual(
      state,
    );
    expect(readCertState(certStateData(state), {})).toBeUndefined();
  });
});

describe("mergeBundles", () => {
  const a = planCertificates(undefined, settings, T0)!.state.caCert;
  const b = planCertificates(undefined, settings, T0)!.state.caCert;
  it("adds the Secret's CAs and keeps a valid CA the live caBundle has that the Secret does not list", () => {
    expect(splitPem(mergeBundles(a, b, T0))).toEqual([a, b]);
  });
  it("drops expired live CAs", () => {
    expect(mergeBundles(a, b, T0 + settings.caValidityMs + MIN)).toBe(a);
  });
  it("changes nothing that is already current", () => {
    expect(mergeBundles(a + b, a + b, T0)).toBe(a + b);
  });
});
