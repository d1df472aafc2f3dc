// The one small image the registry double serves, built byte for byte the same
// on every start so that its digests are stable across runs.
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

export const MEDIA_TYPES = {
  docker: {
    manifest: "application/vnd.docker.distribution.manifest.v2+json",
    config: "application/vnd.docker.container.image.v1+json",
    layer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  },
  oci: {
    manifest: "application/vnd.oci.image.manifest.v1+json",
    config: "application/vnd.oci.image.config.v1+json",
    layer: "application/vnd.oci.image.layer.v1.tar+gzip",
  },
} as const;

export type ManifestFormat = keyof typeof MEDIA_TYPES;

export interface Blob {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface Manifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface Image {
  config: Blob;
  layer: Blob;
  /** sha256 of the uncompressed layer, as the config's rootfs lists it. */
  layerDiffId: string;
  manifests: Record<ManifestFormat, Manifest>;
  blobs: Map<string, Blob>;
}

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** One regular file in a ustar archive; mtime 0 and root ownership keep it reproducible. */
export function tarFile(name: string, content: Buffer, mode = 0o644): Buffer {
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string): void => {
    header.write(value, offset, length, "ascii");
  };
  const octal = (value: number, length: number): string =>
    `${value.toString(8).padStart(length - 1, "0")}\0`;
  field(0, 100, name);
  field(100, 8, octal(mode, 8));
  field(108, 8, octal(0, 8));
  field(116, 8, octal(0, 8));
  field(124, 12, octal(content.length, 12));
  field(136, 12, octal(0, 12));
  field(156, 1, "0");
  field(257, 6, "ustar\0");
  field(263, 2, "00");
  field(265, 32, "root");
  field(297, 32, "root");
  // The checksum is computed with its own field read as eight spaces.
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, padding]);
}

export function buildImage(): Image {
  return oneFileImage({
    file: {
      name: "hello.txt",
      content: Buffer.from("hello from the ecr-creds-refresher registry double\n"),
    },
    runConfig: {
      Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      Cmd: ["/hello.txt"],
      Labels: { "org.opencontainers.image.title": "registry-double demo image" },
    },
    gzipLevel: 9,
  });
}

/** What a one-file image is made of. */
export interface OneFileImageSpec {
  /** The file at the image's root: its name, bytes and mode (0o644 by default). */
  file: { name: string; content: Buffer; mode?: number };
  /** The image config's `config`: Entrypoint, Cmd, Env, Labels, … */
  runConfig: Record<string, unknown>;
  /** The layer's gzip level, 1 (fast) to 9 (small). */
  gzipLevel: number;
}

/**
 * A linux/amd64 image of one layer holding one file, reproducible (every
 * time stamp 1970-01-01): the same spec gives the same digests.
 */
export function oneFileImage({ file, runConfig, gzipLevel }: OneFileImageSpec): Image {
  const tar = Buffer.concat([tarFile(file.name, file.content, file.mode), Buffer.alloc(1024)]);
  const layerBytes = gzipSync(tar, { level: gzipLevel });
  const layerDiffId = sha256Digest(tar);
  const configBytes = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      created: "1970-01-01T00:00:00Z",
      config: runConfig,
      rootfs: { type: "layers", diff_ids: [layerDiffId] },
      history: [{ created: "1970-01-01T00:00:00Z", created_by: `COPY ${file.name} /` }],
    }),
  );
  return oneLayerImage(configBytes, layerBytes, layerDiffId);
}

/**
 * The image of one config and one gzipped layer (`layerDiffId`: the sha256
 * of the layer uncompressed), with a manifest in each format over the same
 * bytes; the blobs carry OCI media types.
 */
function oneLayerImage(configBytes: Buffer, layerBytes: Buffer, layerDiffId: string): Image {
  const blobs = new Map<string, Blob>();
  const manifests = {} as Record<ManifestFormat, Manifest>;
  const oci = MEDIA_TYPES.oci;
  const config = { digest: sha256Digest(configBytes), mediaType: oci.config, bytes: configBytes };
  const layer = { digest: sha256Digest(layerBytes), mediaType: oci.layer, bytes: layerBytes };
  blobs.set(config.digest, config);
  blobs.set(layer.digest, layer);
  for (const format of ["docker", "oci"] as const) {
    const types = MEDIA_TYPES[format];
    // Same bytes under both formats: only the descriptors' media types differ.
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: types.manifest,
        config: { mediaType: types.config, size: configBytes.length, digest: config.digest },
        layers: [{ mediaType: types.layer, size: layerBytes.length, digest: layer.digest }],
      }),
    );
    manifests[format] = { digest: sha256Digest(bytes), mediaType: types.manifest, bytes };
  }
  return { config, layer, layerDiffId, manifests, blobs };
}

/** Helm's OCI media types (helm.sh/helm/v3/pkg/registry/constants.go). */
export const HELM_MEDIA_TYPES = {
  config: "application/vnd.cncf.helm.config.v1+json",
  chart: "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
} as const;

export interface ChartArtifact {
  name: string;
  version: string;
  /** Chart.yaml's fields, as the config blob holds them. */
  config: Blob;
  /** The packaged chart (`helm package` output): a gzipped tar of `<name>/...`. */
  chart: Blob;
  manifest: Manifest;
}

/**
 * A Helm chart stored the way `helm push` stores it in an OCI registry (ECR
 * included): an OCI image manifest whose config is the chart's metadata and
 * whose one layer is the packaged chart. The chart renders one ConfigMap.
 */
export function buildChart(name: string, version: string): ChartArtifact {
  const metadata = { apiVersion: "v2", name, version, appVersion: version, type: "application" };
  const files: [string, string][] = [
    [
      "Chart.yaml",
      `apiVersion: v2\nname: ${name}\nversion: ${version}\nappVersion: "${version}"\ntype: application\n`,
    ],
    ["values.yaml", "message: hello from an OCI chart\n"],
    [
      "templates/configmap.yaml",
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  message: {{ .Values.message | quote }}\n",
    ],
  ];
  const tar = Buffer.concat([
    ...files.map(([path, content]) => tarFile(`${name}/${path}`, Buffer.from(content))),
    Buffer.alloc(1024),
  ]);
  const chartBytes = gzipSync(tar, { level: 9 });
  const configBytes = Buffer.from(JSON.stringify(metadata));
  const config = {
    digest: sha256Digest(configBytes),
    mediaType: HELM_MEDIA_TYPES.config,
    bytes: configBytes,
  };
  const chart = {
    digest: sha256Digest(chartBytes),
    mediaType: HELM_MEDIA_TYPES.chart,
    bytes: chartBytes,
  };
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.oci.manifest,
      config: { mediaType: config.mediaType, size: configBytes.length, digest: config.digest },
      layers: [{ mediaType: chart.mediaType, size: chartBytes.length, digest: chart.digest }],
      annotations: {
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.created": "1970-01-01T00:00:00Z",
      },
    }),
  );
  const manifest = {
    digest: sha256Digest(manifestBytes),
    mediaType: MEDIA_TYPES.oci.manifest,
    bytes: manifestBytes,
  };
  return { name, version, config, chart, manifest };
}
