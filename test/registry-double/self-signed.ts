// A self-signed X.509 certificate for 127.0.0.1 and localhost, made with
// node:crypto and a few lines of DER: enough for the double to serve HTTPS
// without a certificate dependency or openssl on the machine.
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const sequence = (...content: Buffer[]): Buffer => der(0x30, ...content);
const set = (...content: Buffer[]): Buffer => der(0x31, ...content);

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split(".").map(Number);
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) {
      chunk.unshift((n & 0x7f) | 0x80);
    }
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
}

function utcTime(date: Date): Buffer {
  const iso = date.toISOString(); // 2024-01-02T03:04:05.678Z
  const text = `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return der(0x17, Buffer.from(text, "ascii"));
}

function commonName(name: string): Buffer {
  return sequence(set(sequence(oid("2.5.4.3"), der(0x0c, Buffer.from(name, "utf8")))));
}

export interface SelfSignedCertificate {
  certPem: string;
  keyPem: string;
}

export function selfSignedCertificate(
  options: { dnsNames?: string[]; ips?: string[]; days?: number } = {},
): SelfSignedCertificate {
  const dnsNames = options.dnsNames ?? ["localhost"];
  const ips = options.ips ?? ["127.0.0.1"];
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const ecdsaWithSha256 = sequence(oid("1.2.840.10045.4.3.2"));
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f; // positive INTEGER
  const now = Date.now();
  const name = commonName(ips[0] ?? dnsNames[0] ?? "registry-double");
  const subjectAltNames = sequence(
    ...dnsNames.map((dns) => der(0x82, Buffer.from(dns, "ascii"))),
    ...ips.map((ip) => der(0x87, Buffer.from(ip.split(".").map(Number)))),
  );
  const tbs = sequence(
    der(0xa0, der(0x02, Buffer.from([2]))), // v3
    der(0x02, serial),
    ecdsaWithSha256,
    name,
    sequence(
      utcTime(new Date(now - 3_600_000)),
      utcTime(new Date(now + (options.days ?? 365) * 86_400_000)),
    ),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    der(0xa3, sequence(sequence(oid("2.5.29.17"), der(0x04, subjectAltNames)))),
  );
  const signature = sign("sha256", tbs, privateKey);
  const certificate = sequence(tbs, ecdsaWithSha256, der(0x03, Buffer.from([0]), signature));
  const body = certificate.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return {
    certPem: `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`,
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}
