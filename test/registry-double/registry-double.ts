// A double of the Docker Registry HTTP API v2, the subset `skopeo inspect`,
// `skopeo copy`, `crane` and `helm pull oci://` use, serving one small image
// and, on request, Helm charts stored as OCI artifacts. It accepts `AWS:<password>` only
// while a validator (normally AwsDouble.isValidPassword) says the password is
// known and unexpired at that moment: proof that a pull secret works for a real
// client, not only that it exists.
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { type Listening, listen } from "../harness/listen.js";
import {
  buildChart,
  buildImage,
  type ChartArtifact,
  type Image,
  type Manifest,
  type ManifestFormat,
} from "./image.js";
import { selfSignedCertificate } from "./self-signed.js";

export type PasswordValidator = (password: string, at: Date) => boolean | Promise<boolean>;

export interface RegistryDoubleOptions {
  /** Says whether an ECR password is known and unexpired at `at`. */
  validatePassword: PasswordValidator;
  /** Repository names served. Default ["demo/app"]. */
  repositories?: string[];
  /** Tags of every repository. Default ["latest"]. */
  tags?: string[];
  /** Which manifest a tag resolves to. Default "docker" (schema2); both are served by digest. */
  manifestFormat?: ManifestFormat;
  /**
   * Helm charts served as OCI artifacts, each under `repository` (default
   * `charts/<name>`) with its version as the one tag: `helm pull
   * oci://HOST/charts/<name> --version <version>`. Default none.
   */
  charts?: { name: string; version: string; repository?: string }[];
  /**
   * Whether a valid password may pull from a repository (a principal's
   * policy); default: every valid password may pull every repository.
   */
  authorizeRepository?: (password: string, repository: string) => boolean | Promise<boolean>;
  /** The image every repository serves; default the small demo image (buildImage()). */
  image?: Image;
  /** Serve HTTPS with a certificate for 127.0.0.1/localhost made at start. Default false. */
  tls?: boolean;
  realm?: string;
}

export interface AuthAttempt {
  /** Epoch milliseconds. */
  time: number;
  method: string;
  path: string;
  username: string;
  password: string;
  /** What the validator said, whatever the answer (refuseAll still records it). */
  passwordValid: boolean;
  status: number;
}

export interface RegistryAddress {
  /** http(s)://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT, the key for an auth file's `auths`. */
  host: string;
}

type Reply = { status: number; headers: Record<string, string | number>; body: Buffer };

const API_VERSION_HEADER = { "docker-distribution-api-version": "registry/2.0" };

function registryError(status: number, code: string, message: string, extra = {}): Reply {
  const body = Buffer.from(JSON.stringify({ errors: [{ code, message, detail: null }] }));
  return {
    status,
    headers: { ...API_VERSION_HEADER, ...extra, "content-type": "application/json" },
    body,
  };
}

export class RegistryDouble {
  readonly image: Image;
  /** Charts by repository name. */
  readonly charts: ReadonlyMap<string, ChartArtifact>;
  private readonly options: Required<
    Omit<RegistryDoubleOptions, "realm" | "charts" | "image" | "authorizeRepository">
  > & {
    realm: string;
    authorizeRepository: RegistryDoubleOptions["authorizeRepository"];
  };
  private refusing = false;
  private readonly attempts: AuthAttempt[] = [];
  private server: Pick<Listening, "close"> | undefined;
  private address: RegistryAddress | undefined;
  private certificate: string | undefined;

  constructor(options: RegistryDoubleOptions) {
    this.options = {
      validatePassword: options.validatePassword,
      repositories: options.repositories ?? ["demo/app"],
      tags: options.tags ?? ["latest"],
      manifestFormat: options.manifestFormat ?? "docker",
      tls: options.tls ?? false,
      realm: options.realm ?? "ecr-registry-double",
      authorizeRepository: options.authorizeRepository,
    };
    this.image = options.image ?? buildImage();
    this.charts = new Map(
      (options.charts ?? []).map((c) => [
        c.repository ?? `charts/${c.name}`,
        buildChart(c.name, c.version),
      ]),
    );
  }

  async start(options: { host?: string; port?: number } = {}): Promise<RegistryAddress> {
    if (this.server !== undefined)
      throw new Error("failed to start registry double: already started");
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(`failed to handle request: ${String(err)}`);
      });
    };
    let server: ReturnType<typeof createHttpServer>;
    if (this.options.tls) {
      const { certPem, keyPem } = selfSignedCertificate();
      this.certificate = certPem;
      server = createHttpsServer({ cert: certPem, key: keyPem }, handler);
    } else {
      server = createHttpServer(handler);
    }
    const { host, port, close } = await listen(server, options);
    this.server = { close };
    this.address = {
      url: `${this.options.tls ? "https" : "http"}://${host}:${port}`,
      host: `${host}:${port}`,
    };
    return this.address;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    await server.close();
  }

  get url(): string {
    if (this.address === undefined) throw new Error("failed to read registry URL: not started");
    return this.address.url;
  }

  /** `127.0.0.1:PORT` */
  get host(): string {
    if (this.address === undefined) throw new Error("failed to read registry host: not started");
    return this.address.host;
  }

  /** The PEM certificate when serving HTTPS. */
  get certificatePem(): string | undefined {
    return this.certificate;
  }

  /** While true every request is refused with 401, valid credentials or not. */
  refuseAll(refuse: boolean): void {
    this.refusing = refuse;
  }

  authAttempts(): AuthAttempt[] {
    return [...this.attempts];
  }

  resetAuthAttempts(): void {
    this.attempts.length = 0;
  }

  /** `{"auths":{host:{auth}}}` for a password: what a dockerconfigjson Secret holds. */
  authFile(password: string, username = "AWS"): string {
    const auth = Buffer.from(`${username}:${password}`).toString("base64");
    return JSON.stringify({ auths: { [this.host]: { auth } } });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Drain the body: no route takes one, but a client may send it anyway.
    for await (const _ of req) {
      // discard
    }
    const method = req.method ?? "GET";
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const reply = await this.route(req, method, path);
    res.writeHead(reply.status, { ...reply.headers, "content-length": reply.body.length });
    res.end(method === "HEAD" ? undefined : reply.body);
  }

  private async authenticate(
    req: IncomingMessage,
    method: string,
    path: string,
  ): Promise<Reply | undefined> {
    const unauthorized = (message: string): Reply =>
      registryError(401, "UNAUTHORIZED", message, {
        "www-authenticate": `Basic realm="${this.options.realm}"`,
      });
    const header = req.headers.authorization;
    if (header === undefined || !header.startsWith("Basic ")) {
      return unauthorized("authentication required");
    }
    const decoded = Buffer.from(header.slice("Basic ".length).trim(), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const username = colon < 0 ? decoded : decoded.slice(0, colon);
    const password = colon < 0 ? "" : decoded.slice(colon + 1);
    const passwordValid = await this.options.validatePassword(password, new Date());
    const ok = !this.refusing && username === "AWS" && passwordValid;
    // A valid token of a principal whose policy does not cover the
    // repository: 403, as ECR answers (ecr:BatchGetImage denied).
    const repository = /^\/v2\/(.+)\/(manifests|blobs|tags)\//.exec(path)?.[1];
    const allowed =
      !ok ||
      repository === undefined ||
      this.options.authorizeRepository === undefined ||
      (await this.options.authorizeRepository(password, repository));
    this.attempts.push({
      time: Date.now(),
      method,
      path,
      username,
      password,
      passwordValid,
      status: ok ? (allowed ? 200 : 403) : 401,
    });
    if (!allowed) {
      return registryError(403, "DENIED", `not authorized to pull from repository ${repository}`);
    }
    if (ok) return undefined;
    return unauthorized(
      this.refusing ? "registry refuses every request" : "invalid or expired credentials",
    );
  }

  private async route(req: IncomingMessage, method: string, path: string): Promise<Reply> {
    if (!path.startsWith("/v2/") && path !== "/v2") {
      return registryError(404, "NOT_FOUND", `no such endpoint: ${path}`);
    }
    const denied = await this.authenticate(req, method, path);
    if (denied !== undefined) return denied;
    if (method !== "GET" && method !== "HEAD") {
      return registryError(405, "UNSUPPORTED", `${method} is not supported`);
    }
    if (path === "/v2/" || path === "/v2") {
      return {
        status: 200,
        headers: { ...API_VERSION_HEADER, "content-type": "application/json" },
        body: Buffer.from("{}"),
      };
    }
    const tags = /^\/v2\/(.+)\/tags\/list$/.exec(path);
    if (tags !== null) {
      const name = tags[1] ?? "";
      const chart = this.charts.get(name);
      if (chart === undefined && !this.options.repositories.includes(name)) {
        return registryError(404, "NAME_UNKNOWN", `repository name not known to registry: ${name}`);
      }
      const list = chart === undefined ? this.options.tags : [chart.version];
      return {
        status: 200,
        headers: { ...API_VERSION_HEADER, "content-type": "application/json" },
        body: Buffer.from(JSON.stringify({ name, tags: list })),
      };
    }
    const object = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(path);
    if (object === null) return registryError(404, "NOT_FOUND", `no such endpoint: ${path}`);
    const [, name = "", kind, reference = ""] = object;
    const chart = this.charts.get(name);
    if (chart !== undefined) return this.chartObject(chart, kind, reference);
    if (!this.options.repositories.includes(name)) {
      return registryError(404, "NAME_UNKNOWN", `repository name not known to registry: ${name}`);
    }
    if (kind === "blobs") {
      return blobReply(this.image.blobs.get(reference), reference);
    }
    const manifest = this.options.tags.includes(reference)
      ? this.image.manifests[this.options.manifestFormat]
      : Object.values(this.image.manifests).find((m) => m.digest === reference);
    return manifestReply(manifest, reference);
  }

  private chartObject(chart: ChartArtifact, kind: string | undefined, reference: string): Reply {
    if (kind === "blobs") {
      const blob = [chart.config, chart.chart].find((b) => b.digest === reference);
      return blobReply(blob, reference);
    }
    const found = reference === chart.version || reference === chart.manifest.digest;
    return manifestReply(found ? chart.manifest : undefined, reference);
  }
}

function blobReply(blob: { digest: string; bytes: Buffer } | undefined, reference: string): Reply {
  if (blob === undefined) return registryError(404, "BLOB_UNKNOWN", `blob unknown: ${reference}`);
  return {
    status: 200,
    headers: {
      ...API_VERSION_HEADER,
      "content-type": "application/octet-stream",
      "docker-content-digest": blob.digest,
      etag: `"${blob.digest}"`,
    },
    body: blob.bytes,
  };
}

function manifestReply(manifest: Manifest | undefined, reference: string): Reply {
  if (manifest === undefined) {
    return registryError(404, "MANIFEST_UNKNOWN", `manifest unknown: ${reference}`);
  }
  return {
    status: 200,
    headers: {
      ...API_VERSION_HEADER,
      "content-type": manifest.mediaType,
      "docker-content-digest": manifest.digest,
      etag: `"${manifest.digest}"`,
    },
    body: manifest.bytes,
  };
}
