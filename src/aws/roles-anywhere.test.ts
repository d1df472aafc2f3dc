// IAM Roles Anywhere as a credentials source: equal sources share one key
// (one session, one token), the tls Secret is read with errors that say what
// is wrong, and a certificate outside its validity is refused before AWS is
// asked. The signer itself is checked against the Roles Anywhere double in
// test/aws-double/roles-anywhere.unit.test.ts.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Ca, issue, makeCa, tlsSecretData } from "../../test/aws-double/roles-anywhere-pki.js";
import { isOperatorError } from "../errors.js";
import { credentialsKey } from "./credentials.js";
import { resolveRegistries } from "./registries.js";
import {
  assertCertificateValid,
  certificateState,
  rolesAnywhereEndpoint,
  x509IdentityFromSecret,
} from "./roles-anywhere.js";

const ANCHOR =
  "arn:aws:rolesanywhere:eu-west-1:123456789012:trust-anchor/0a1b2c3d-0000-4000-8000-000000000001";
const PROFILE =
  "arn:aws:rolesanywhere:eu-west-1:123456789012:profile/0a1b2c3d-0000-4000-8000-000000000002";
const ROLE = "arn:aws:iam::123456789012:role/pull";
const ref = { namespace: "ops", name: "ra-cert" };

const rolesAnywhere = (over: Record<string, unknown> = {}) => ({
  trustAnchorArn: ANCHOR,
  profileArn: PROFILE,
  roleArn: ROLE,
  certificateSecretRef: ref,
  ...over,
});

function caught(fn: () => unknown): { code: string; form: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (isOperatorError(err)) return { code: err.code, form: err.form, message: err.message };
    throw err;
  }
  throw new Error("nothing was thrown");
}

describe("rolesAnywhere as a credentials source", () => {
  it("gives equal sources one key, and tells Secret, anchor, profile, role and duration apart", () => {
    const keyOf = (ra: ReturnType<typeof rolesAnywhere>) => {
      const [target] = resolveRegistries(
        { secretName: "s", region: "eu-west-1", credentials: { rolesAnywhere: ra } },
        {},
      );
      return credentialsKey(target?.source.credentials ?? { kind: "defaultChain" });
    };
    const base = keyOf(rolesAnywhere());
    expect(keyOf(rolesAnywhere())).toBe(base);
    // 1h is the default duration: the same session.
    expect(keyOf(rolesAnywhere({ sessionDuration: "1h" }))).toBe(base);
    const others = [
      rolesAnywhere({ certificateSecretRef: { namespace: "ops", name: "other" } }),
      rolesAnywhere({ trustAnchorArn: ANCHOR.replace("0001", "0009") }),
      rolesAnywhere({ profileArn: PROFILE.replace("0002", "0009") }),
      rolesAnywhere({ roleArn: `${ROLE}-2` }),
      rolesAnywhere({ sessionDuration: "30m" }),
    ].map(keyOf);
    expect(new Set([base, ...others]).size).toBe(6);
  });

  it("is the operator-level default when a resource names no credentials; the default Secret wins over it", () => {
    const ra = {
      trustAnchorArn: ANCHOR,
      profileArn: PROFILE,
      roleArn: ROLE,
      certificateSecret: ref,
    };
    const [viaDefault] = resolveRegistries(
      { secretName: "s", region: "eu-west-1" },
      { rolesAnywhere: ra },
    );
    expect(viaDefault?.source.credentials).toEqual({ kind: "rolesAnywhere", rolesAnywhere: ra });
    const [secretWins] = resolveRegistries(
      { secretName: "s", region: "eu-west-1" },
      { rolesAnywhere: ra, credentialsSecret: { namespace: "ops", name: "keys" } },
    );
    expect(secretWins?.source.credentials).toEqual({
      kind: "secretKeys",
      secretRef: { namespace: "ops", name: "keys" },
    });
  });

  it("calls the trust anchor's regional endpoint unless the SDK's endpoint variables say otherwise", () => {
    expect(rolesAnywhereEndpoint("eu-west-1", {})).toBe(
      "https://rolesanywhere.eu-west-1.amazonaws.com",
    );
    expect(rolesAnywhereEndpoint("cn-north-1", {})).toBe(
      "https://rolesanywhere.cn-north-1.amazonaws.com.cn",
    );
    expect(
      rolesAnywhereEndpoint("eu-west-1", {
        AWS_ENDPOINT_URL: "http://a:1/",
        AWS_ENDPOINT_URL_ROLESANYWHERE: "http://b:2/",
      }),
    ).toBe("http://b:2");
  });
});

describe("the certificate of a kubernetes.io/tls Secret", () => {
  let dir = "";
  let ca: Ca;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "ra-unit-"));
    ca = await makeCa(dir, "unit-ca", "ec");
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("reads RSA (PKCS#1) and ECDSA (SEC1) keys and picks the algorithm; drops a root appended to tls.crt", async () => {
    const rsa = await issue(ca, { cn: "rsa", keyType: "rsa" });
    const ec = await issue(ca, { cn: "ec", keyType: "ec" });
    expect(x509IdentityFromSecret(ref, tlsSecretData(rsa)).algorithm).toBe("AWS4-X509-RSA-SHA256");
    const id = x509IdentityFromSecret(ref, tlsSecretData(ec, [ca]));
    expect(id.algorithm).toBe("AWS4-X509-ECDSA-SHA256");
    expect(id.chain).toEqual([]);
  });

  it("says what is wrong with the Secret, naming it", async () => {
    const a = await issue(ca, { cn: "a" });
    const b = await issue(ca, { cn: "b" });
    const cases: Array<[Record<string, string> | undefined, string]> = [
      [undefined, "it has no tls.crt"],
      [{ "tls.crt": tlsSecretData(a)["tls.crt"] as string }, "it has no tls.key"],
      [
        { ...tlsSecretData(a), "tls.crt": Buffer.from("hello").toString("base64") },
        "tls.crt holds no PEM certificate",
      ],
      [
        { ...tlsSecretData(a), "tls.key": tlsSecretData(b)["tls.key"] as string },
        "tls.key is not the private key of the first certificate in tls.crt",
      ],
    ];
    for (const [data, reason] of cases) {
      expect(caught(() => x509IdentityFromSecret(ref, data))).toEqual({
        code: "CredentialsSecretInvalid",
        form: "certificate",
        message: `failed to read the IAM Roles Anywhere certificate in Secret ops/ra-cert: ${reason}; it must be a kubernetes.io/tls Secret with the certificate and its intermediates in tls.crt and the certificate's RSA or ECDSA private key in tls.key (PEM)`,
      });
    }
  });

  it("refuses a certificate not yet valid or expired before AWS is asked; near its end it is still used", async () => {
    const day = 86_400_000;
    const now = Date.now();
    const later = await issue(ca, {
      cn: "later",
      notBefore: new Date(now + day),
      notAfter: new Date(now + 2 * day),
    });
    const gone = await issue(ca, {
      cn: "gone",
      notBefore: new Date(now - 2 * day),
      notAfter: new Date(now - day),
    });
    const ending = await issue(ca, {
      cn: "ending",
      notBefore: new Date(now - 95 * day),
      notAfter: new Date(now + 5 * day),
    });
    const cert = (i: typeof later) => x509IdentityFromSecret(ref, tlsSecretData(i)).certificate;
    const notYet = caught(() => assertCertificateValid(ref, cert(later), now));
    expect(notYet.code).toBe("CredentialsSecretInvalid");
    expect(notYet.form).toBe("certificateNotValid");
    expect(notYet.message).toContain("Secret ops/ra-cert (subject CN=later");
    expect(notYet.message).toContain(
      `it is not valid before ${new Date(cert(later).validFrom).toISOString()}`,
    );
    const expired = caught(() => assertCertificateValid(ref, cert(gone), now));
    expect(expired.message).toContain(
      `it expired at ${new Date(cert(gone).validTo).toISOString()}`,
    );
    expect(certificateState(cert(ending), now).state).toBe("nearExpiry");
    expect(assertCertificateValid(ref, cert(ending), now).state).toBe("nearExpiry");
  });
});
