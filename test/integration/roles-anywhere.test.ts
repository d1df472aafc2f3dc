// IAM Roles Anywhere natively, on the real control plane: the operator reads
// the certificate and key of a kubernetes.io/tls Secret (what cert-manager's
// Certificate writes), signs CreateSession with them against the Roles
// Anywhere double (itself checked against AWS's own helper in
// test/aws-double/roles-anywhere.unit.test.ts), and fetches the ECR token
// with the session. Every Secret must hold the exact password the ECR double
// issued to the role's session, whose name is the certificate's serial.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiException } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/api/conditions.js";
import type { ECRPullSecret } from "../../src/api/index.js";
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../../src/api/schema.js";
import type { AwsDouble } from "../aws-double/index.js";
import {
  type Ca,
  type Issued,
  intermediate,
  issue,
  makeCa,
  tlsSecretData,
} from "../aws-double/roles-anywhere-pki.js";
import { checkOutput } from "../harness/cli.js";
import { applyResource, readSecret, statusOf, type TestKube, waitFor } from "../harness/kube.js";
import { type InProcessOperator, testConfig } from "../harness/operator.js";
import { type Stack, startStack } from "../harness/stack.js";
import { ecrHost, passwordIn, waitForReady, waitForResource } from "../harness/state.js";

const ACCOUNT = "330000000001";
const HOST = ecrHost(ACCOUNT);
const OPS = "ra-ops";
const TRUST_ANCHOR = `arn:aws:rolesanywhere:us-east-1:${ACCOUNT}:trust-anchor/1a2b3c4d-0000-4000-8000-000000000001`;
const PROFILE = `arn:aws:rolesanywhere:us-east-1:${ACCOUNT}:profile/1a2b3c4d-0000-4000-8000-000000000002`;
const ROLE = `arn:aws:iam::${ACCOUNT}:role/ra-ecr-pull`;
const NS = {
  rsa: ["ra-rsa-a", "ra-rsa-b"],
  ecdsa: ["ra-ecdsa-a"],
  wrong: ["ra-wrong-a"],
  operatorDefault: ["ra-default-a"],
  near: ["ra-near-a"],
};
const RESOURCES = ["ra-rsa", "ra-ecdsa", "ra-wrong", "ra-default", "ra-near"];
/** The tls Secrets this file makes: the only Secrets that may hold a private key. */
const TLS_SECRETS = [
  "ra-rsa-cert",
  "ra-ecdsa-cert",
  "ra-wrong-cert",
  "ra-default-cert",
  "ra-near-cert",
];

let stack: Stack;
let k: TestKube;
let aws: AwsDouble;
let dir: string;
let ca: Ca;
let sub: Ca;
let otherCa: Ca;
let op: InProcessOperator;

const sessionArn = (leaf: Issued) =>
  `arn:aws:sts::${ACCOUNT}:assumed-role/ra-ecr-pull/${leaf.serial}`;

function spec(namespaces: string[], certificateSecret: string): ECRPullSecret["spec"] {
  return {
    secretName: "ecr-pull",
    namespaces,
    serviceAccounts: [],
    region: "us-east-1",
    registries: [{ accountId: ACCOUNT }],
    credentials: {
      rolesAnywhere: {
        trustAnchorArn: TRUST_ANCHOR,
        profileArn: PROFILE,
        roleArn: ROLE,
        sessionDuration: "30m",
        certificateSecretRef: { namespace: OPS, name: certificateSecret },
      },
    },
  };
}

/** Creates or replaces a kubernetes.io/tls Secret, as cert-manager writes one. */
async function putTlsSecret(name: string, leaf: Issued, chain: Issued[] = []): Promise<void> {
  const body = {
    metadata: { name, namespace: OPS },
    type: "kubernetes.io/tls",
    data: tlsSecretData(leaf, chain),
  };
  try {
    await k.core.replaceNamespacedSecret({ namespace: OPS, name, body });
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
    await k.core.createNamespacedSecret({ namespace: OPS, body });
  }
}

/** The password in every namespace's Secret, once they all hold the same one. */
async function commonPassword(namespaces: string[], not?: string): Promise<string> {
  return await waitFor(`one password across ${namespaces.join(", ")}`, async () => {
    const passwords = new Set<string | undefined>();
    for (const ns of namespaces)
      passwords.add(passwordIn(await readSecret(k, ns, "ecr-pull"), HOST));
    const [only] = [...passwords];
    return passwords.size === 1 && only && only !== not ? only : undefined;
  });
}

/** The ECR double's record of the token with this password. */
function issuedTo(password: string) {
  return aws.issued().find((t) => t.password === password);
}

beforeAll(async () => {
  stack = await startStack({
    ops: OPS,
    namespaces: Object.values(NS).flat(),
    credentials: false,
  });
  ({ k, aws } = stack);
  stack.resources.push(...RESOURCES);
  dir = await mkdtemp(join(tmpdir(), "ra-pki-"));
  ca = await makeCa(dir, "ra-cluster-ca", "rsa");
  sub = await intermediate(dir, ca, "ra-cluster-intermediate", "ec");
  otherCa = await makeCa(dir, "ra-other-ca", "rsa");
  aws.addRole({ roleArn: ROLE });
  aws.rolesAnywhere.addTrustAnchor({ arn: TRUST_ANCHOR, caPem: ca.certPem });
  aws.rolesAnywhere.addProfile({ arn: PROFILE, roleArns: [ROLE], durationSeconds: 3600 });
  op = await stack.startOperator({ as: false });
});

afterAll(async () => {
  await stack?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// The first certificate and the password it brought, which later cases compare against.
let rsaLeaf: Issued;
let rsaPassword = "";

describe("IAM Roles Anywhere with a certificate from a kubernetes.io/tls Secret", () => {
  it("an RSA certificate: every Secret holds the password ECR issued to the role's session", async () => {
    rsaLeaf = await issue(ca, { cn: "ra-cluster-rsa", keyType: "rsa" });
    await putTlsSecret("ra-rsa-cert", rsaLeaf);
    await applyResource(k, "ra-rsa", spec(NS.rsa, "ra-rsa-cert"));
    await waitForReady(k, "ra-rsa");
    rsaPassword = await commonPassword(NS.rsa);
    expect(issuedTo(rsaPassword)?.principalArn).toBe(sessionArn(rsaLeaf));
    expect(aws.isValidPassword(rsaPassword)).toBe(true);
    // One session for the source, however many namespaces: 30m asked.
    const sessions = aws.calls({ service: "rolesanywhere", roleSessionName: rsaLeaf.serial });
    expect(sessions.map((c) => [c.status, c.roleArn])).toEqual([[201, ROLE]]);
  });

  it("an ECDSA certificate issued by an intermediate (tls.crt holds the chain)", async () => {
    const leaf = await issue(sub, { cn: "ra-cluster-ecdsa", keyType: "ec" });
    await putTlsSecret("ra-ecdsa-cert", leaf, [sub]);
    await applyResource(k, "ra-ecdsa", spec(NS.ecdsa, "ra-ecdsa-cert"));
    await waitForReady(k, "ra-ecdsa");
    const password = await commonPassword(NS.ecdsa);
    expect(issuedTo(password)?.principalArn).toBe(sessionArn(leaf));
  });

  it("a certificate renewed in the Secret: the next session uses it and no Secret keeps the old token", async () => {
    const renewed = await issue(ca, { cn: "ra-cluster-rsa", keyType: "rsa" });
    expect(renewed.serial).not.toBe(rsaLeaf.serial);
    await putTlsSecret("ra-rsa-cert", renewed);
    const password = await commonPassword(NS.rsa, rsaPassword);
    expect(issuedTo(password)?.principalArn).toBe(sessionArn(renewed));
    const sessions = aws.calls({ service: "rolesanywhere", roleSessionName: renewed.serial });
    expect(sessions.map((c) => c.status)).toEqual([201]);
    await waitForResource(k, "ra-rsa", "Ready with the new token", (r) =>
      Boolean(
        r.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") &&
          r.status.tokenExpiresAt === issuedTo(password)?.expiresAt.toISOString(),
      ),
    );
  });
});

describe("IAM Roles Anywhere: a certificate of another CA, one near its end, and check", () => {
  it("a certificate of another CA: Ready=False naming the Secret and the trust anchor, and AWS refused it", async () => {
    const stranger = await issue(otherCa, { cn: "ra-stranger" });
    await putTlsSecret("ra-wrong-cert", stranger);
    await applyResource(k, "ra-wrong", spec(NS.wrong, "ra-wrong-cert"));
    const r = await waitForResource(k, "ra-wrong", "Ready=False", (res) =>
      Boolean(res.status?.conditions?.some((c) => c.type === "Ready" && c.status === "False")),
    );
    const ready = r.status?.conditions?.find((c) => c.type === "Ready");
    expect(ready?.reason).toBe(Reason.CredentialsInvalid);
    expect(ready?.message).toContain(`with the certificate in Secret ${OPS}/ra-wrong-cert`);
    expect(ready?.message).toContain(`trust anchor ${TRUST_ANCHOR}`);
    expect(ready?.message).toContain("AccessDeniedException: Untrusted signing certificate");
    expect(await readSecret(k, NS.wrong[0] as string, "ecr-pull")).toBeUndefined();
    expect(
      aws
        .calls({ service: "rolesanywhere", roleSessionName: stranger.serial })
        .map((c) => c.status),
    ).toContain(403);
  });

  it("a certificate near its end, not renewed: Ready=True says so (CredentialsExpiringSoon) naming the Secret, while it still works", async () => {
    // Ten days of life, half a day left: under a tenth (cert-manager renews at two thirds).
    const day = 86_400_000;
    const near = await issue(ca, {
      cn: "ra-near",
      notBefore: new Date(Date.now() - 9.5 * day),
      notAfter: new Date(Date.now() + 0.5 * day),
    });
    await putTlsSecret("ra-near-cert", near);
    await applyResource(k, "ra-near", spec(NS.near, "ra-near-cert"));
    const password = await commonPassword(NS.near);
    expect(issuedTo(password)?.principalArn).toBe(sessionArn(near));
    const r = await waitForResource(k, "ra-near", "Ready=True", (res) =>
      Boolean(res.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")),
    );
    const ready = r.status?.conditions?.find((c) => c.type === "Ready");
    expect(ready?.reason).toBe(Reason.CredentialsExpiringSoon);
    expect(ready?.message).toContain(`the certificate in Secret ${OPS}/ra-near-cert`);
    expect(ready?.message).toContain(`serial ${near.serial}`);
    expect(ready?.message).toContain("has less than a tenth of its lifetime left");
  });

  it("check shows the chain: the certificate's subject and expiry, the trust anchor, the role STS reports", async () => {
    const { code, text } = await checkOutput(
      testConfig(stack.kubeconfigPath, { region: "us-east-1" }),
      "ra-ecdsa",
    );
    expect(code, text).toBe(0);
    expect(text).toContain("IAM Roles Anywhere CreateSession for");
    expect(text).toContain("subject CN=ra-cluster-ecdsa");
    expect(text).toContain(`trust anchor ${TRUST_ANCHOR}`);
    expect(text).toMatch(
      new RegExp(`-> arn:aws:sts::${ACCOUNT}:assumed-role/ra-ecr-pull/[0-9a-f]+ \\(account`),
    );
  });
});

describe("IAM Roles Anywhere: validation at apply, the operator's default source, no private keys copied", () => {
  it("refuses bad ARNs, regions that differ, a duration out of range and a second base identity at apply time, naming the field", async () => {
    const base = spec(["ra-rsa-a"], "ra-rsa-cert");
    const ra = base.credentials?.rolesAnywhere as NonNullable<
      NonNullable<ECRPullSecret["spec"]["credentials"]>["rolesAnywhere"]
    >;
    const cases: Array<[ECRPullSecret["spec"]["credentials"], string]> = [
      [
        { rolesAnywhere: { ...ra, trustAnchorArn: ROLE } },
        "spec.credentials.rolesAnywhere.trustAnchorArn",
      ],
      [
        { rolesAnywhere: { ...ra, profileArn: TRUST_ANCHOR } },
        "spec.credentials.rolesAnywhere.profileArn",
      ],
      [{ rolesAnywhere: { ...ra, roleArn: PROFILE } }, "spec.credentials.rolesAnywhere.roleArn"],
      [
        { rolesAnywhere: { ...ra, profileArn: PROFILE.replace("us-east-1", "eu-west-1") } },
        "spec.credentials.rolesAnywhere.profileArn: Invalid value: rolesAnywhere.profileArn must be in the region of rolesAnywhere.trustAnchorArn",
      ],
      [
        { rolesAnywhere: { ...ra, sessionDuration: "13h" } },
        "rolesAnywhere.sessionDuration must be between 15m and 12h",
      ],
      [
        { rolesAnywhere: ra, secretRef: { namespace: OPS, name: "keys" } },
        "spec.credentials.rolesAnywhere: Invalid value: credentials.rolesAnywhere is a base identity of its own",
      ],
    ];
    for (const [i, [credentials, field]] of cases.entries()) {
      const body = {
        apiVersion: API_VERSION,
        kind: KIND,
        metadata: { name: `ra-bad-${i}` },
        spec: { ...base, credentials },
      };
      const message = await k.custom
        .createClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, body })
        .then(
          () => "accepted",
          (err: unknown) => (err instanceof ApiException ? String(err.body) : String(err)),
        );
      expect(message, `case ${i}`).toContain(field);
    }
  });

  it("the operator-level default source (--roles-anywhere-*): a resource without credentials uses it", async () => {
    await op.stop();
    const leaf = await issue(sub, { cn: "ra-operator-default", keyType: "ec" });
    await putTlsSecret("ra-default-cert", leaf, [sub]);
    op = await stack.startOperator({
      as: false,
      config: {
        rolesAnywhereTrustAnchorArn: TRUST_ANCHOR,
        rolesAnywhereProfileArn: PROFILE,
        rolesAnywhereRoleArn: ROLE,
        rolesAnywhereCertificateSecretName: "ra-default-cert",
        rolesAnywhereCertificateSecretNamespace: OPS,
      },
    });
    const { credentials: _, ...withoutCredentials } = spec(NS.operatorDefault, "unused");
    await applyResource(k, "ra-default", withoutCredentials);
    await waitForReady(k, "ra-default");
    const password = await commonPassword(NS.operatorDefault);
    expect(issuedTo(password)?.principalArn).toBe(sessionArn(leaf));
  });

  it("no Secret in any namespace holds a private key but the tls Secrets the user made", async () => {
    const list = await k.core.listSecretForAllNamespaces();
    const holders = list.items
      .filter((s) =>
        Object.values(s.data ?? {}).some((v) =>
          Buffer.from(v, "base64").toString("latin1").includes("PRIVATE KEY"),
        ),
      )
      .map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`)
      .sort();
    expect(holders).toEqual(TLS_SECRETS.map((n) => `${OPS}/${n}`).sort());
  });
});
