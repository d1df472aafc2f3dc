// Certificates for the IAM Roles Anywhere tests, made with the openssl CLI the
// way a small PKI (or cert-manager's CA Issuer) makes them: a CA, optionally
// an intermediate, and leaf certificates with RSA or ECDSA keys in the
// encodings cert-manager writes (PKCS#1 / SEC1 PEM), with any validity window
// (`openssl ca -startdate/-enddate`, so expired and not-yet-valid ones too).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export type KeyType = "rsa" | "ec";

export interface Issued {
  certPem: string;
  keyPem: string;
  certPath: string;
  keyPath: string;
  /** Lower-case hex, as node's X509Certificate shows it. */
  serial: string;
}

export interface Ca extends Issued {
  name: string;
  dir: string;
}

export interface IssueOptions {
  cn: string;
  keyType?: KeyType;
  notBefore?: Date;
  notAfter?: Date;
  /** Make an intermediate CA rather than a leaf. */
  isCa?: boolean;
}

let counter = 0;

async function openssl(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run("openssl", args, { cwd, maxBuffer: 1 << 20 });
  return stdout;
}

/** A fresh private key in cert-manager's default encodings (RSA PKCS#1, EC SEC1). */
async function newKey(path: string, type: KeyType): Promise<string> {
  const params =
    type === "rsa"
      ? ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
      : ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
  const pkcs8 = await openssl(["genpkey", ...params]);
  await writeFile(`${path}.p8`, pkcs8);
  const traditional = await openssl(["pkey", "-in", `${path}.p8`, "-traditional"]);
  await writeFile(path, traditional);
  return traditional;
}

const opensslDate = (d: Date) =>
  d
    .toISOString()
    .replace(/[-:T]/g, "")
    .replace(/\.\d{3}Z$/, "Z");

/** A self-signed root CA valid from a day ago for ten years. */
export async function makeCa(dir: string, name: string, keyType: KeyType = "rsa"): Promise<Ca> {
  const caDir = join(dir, `ca-${name}`);
  await mkdir(caDir, { recursive: true });
  const keyPath = join(caDir, "ca.key");
  const certPath = join(caDir, "ca.crt");
  const keyPem = await newKey(keyPath, keyType);
  await openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    keyPath,
    "-subj",
    `/O=ecr-creds-refresher tests/CN=${name}`,
    "-days",
    "3650",
    "-sha256",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    certPath,
  ]);
  await writeCaLayout(caDir);
  const certPem = await readFile(certPath, "utf8");
  return { name, dir: caDir, certPem, keyPem, certPath, keyPath, serial: await serialOf(certPath) };
}

/** What `openssl ca` needs in a CA's folder: its database and configuration. */
async function writeCaLayout(caDir: string): Promise<void> {
  await writeFile(join(caDir, "index.txt"), "");
  await writeFile(
    join(caDir, "ca.cnf"),
    [
      "[ ca ]",
      "default_ca = CA_default",
      "[ CA_default ]",
      `dir = ${caDir}`,
      "database = $dir/index.txt",
      "new_certs_dir = $dir",
      "serial = $dir/serial",
      "default_md = sha256",
      "policy = policy_any",
      "unique_subject = no",
      "email_in_dn = no",
      "[ policy_any ]",
      "organizationName = optional",
      "commonName = supplied",
      "[ leaf ]",
      "basicConstraints = critical,CA:FALSE",
      "keyUsage = critical,digitalSignature",
      "extendedKeyUsage = clientAuth",
      "[ intermediate ]",
      "basicConstraints = critical,CA:TRUE,pathlen:0",
      "keyUsage = critical,keyCertSign,cRLSign",
      "",
    ].join("\n"),
  );
}

async function serialOf(certPath: string): Promise<string> {
  const out = await openssl(["x509", "-in", certPath, "-noout", "-serial"]);
  return out
    .trim()
    .replace(/^serial=/, "")
    .toLowerCase();
}

/** A certificate signed by `ca` (a leaf unless isCa), valid by default from an hour ago for 90 days. */
export async function issue(ca: Ca, o: IssueOptions): Promise<Issued> {
  counter += 1;
  const base = join(ca.dir, `${o.cn.replace(/[^a-z0-9-]/gi, "_")}-${counter}`);
  const keyPath = `${base}.key`;
  const csrPath = `${base}.csr`;
  const certPath = `${base}.crt`;
  const keyPem = await newKey(keyPath, o.keyType ?? "rsa");
  await openssl(["req", "-new", "-key", keyPath, "-subj", `/CN=${o.cn}`, "-out", csrPath]);
  // A random serial per certificate, as real CAs give.
  await writeFile(join(ca.dir, "serial"), `${randomBytes(8).toString("hex").replace(/^./, "4")}\n`);
  const notBefore = o.notBefore ?? new Date(Date.now() - 3_600_000);
  const notAfter = o.notAfter ?? new Date(Date.now() + 90 * 86_400_000);
  await openssl([
    "ca",
    "-batch",
    "-notext",
    "-config",
    join(ca.dir, "ca.cnf"),
    "-cert",
    ca.certPath,
    "-keyfile",
    ca.keyPath,
    "-in",
    csrPath,
    "-out",
    certPath,
    "-extensions",
    o.isCa ? "intermediate" : "leaf",
    "-startdate",
    opensslDate(notBefore),
    "-enddate",
    opensslDate(notAfter),
  ]);
  const certPem = await readFile(certPath, "utf8");
  return { certPem, keyPem, certPath, keyPath, serial: await serialOf(certPath) };
}

/** An intermediate CA under `ca` that can issue in turn. */
export async function intermediate(
  dir: string,
  ca: Ca,
  name: string,
  keyType: KeyType = "rsa",
): Promise<Ca> {
  const issued = await issue(ca, { cn: name, keyType, isCa: true });
  const caDir = join(dir, `ca-${name}`);
  await mkdir(caDir, { recursive: true });
  await writeCaLayout(caDir);
  return { ...issued, name, dir: caDir };
}

/** The data of a kubernetes.io/tls Secret holding this certificate (and chain) and key. */
export function tlsSecretData(leaf: Issued, chain: Issued[] = []): Record<string, string> {
  const crt = [leaf.certPem, ...chain.map((c) => c.certPem)].join("");
  return {
    "tls.crt": Buffer.from(crt).toString("base64"),
    "tls.key": Buffer.from(leaf.keyPem).toString("base64"),
  };
}
