import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { load } from "js-yaml";
import { describe, expect, it } from "vitest";
import { CRD_DIR, CRD_PATH, renderAll, TYPES_PATH } from "../../scripts/gen-api.js";
import * as api from "./tenant-schema.js";

const root = resolve(import.meta.dirname, "../..");

describe("generated API files", () => {
  it.each(renderAll(api).map((f) => [f.path, f.content]))(
    "%s is up to date (run: node scripts/gen-api.ts)",
    async (path, content) => {
      const onDisk = await readFile(resolve(root, path), "utf8").catch(() => "");
      expect(onDisk, `${path} is stale: run node scripts/gen-api.ts`).toBe(content);
    },
  );

  it("writes the CRD YAML that reads back as crdManifest()", async () => {
    const yaml = await readFile(resolve(root, CRD_PATH), "utf8");
    expect(load(yaml)).toEqual(JSON.parse(JSON.stringify(api.crdManifest())));
  });

  it("writes each kind's CRD YAML that reads back as its manifest, named after its plural", async () => {
    const files = api.crdManifests();
    expect(files.map((f) => f.file)).toEqual([
      "ecrcreds.io_ecrpullsecrets.yaml",
      "ecrcreds.io_clusterecrcredentialsources.yaml",
      "ecrcreds.io_ecrpullsecretclaims.yaml",
    ]);
    for (const { file, manifest } of files) {
      const yaml = await readFile(resolve(root, CRD_DIR, file), "utf8");
      expect(load(yaml), file).toEqual(JSON.parse(JSON.stringify(manifest)));
    }
  });

  it("names every interface the brief lists", async () => {
    const ts = await readFile(resolve(root, TYPES_PATH), "utf8");
    for (const name of [
      "ECRPullSecret",
      "ECRPullSecretSpec",
      "ECRPullSecretStatus",
      "CredentialsSpec",
      "SecretReference",
      "RegistrySpec",
      "LabelSelector",
      "LabelSelectorRequirement",
      "Condition",
      "NamespaceCounts",
      "NamespaceFailure",
      "ClusterECRCredentialSource",
      "ClusterECRCredentialSourceSpec",
      "SourceNamespaceCondition",
      "ECRPullSecretClaim",
      "ECRPullSecretClaimSpec",
      "SourceReference",
      "ClaimCredentialsSpec",
      "ClusterECRCredentialSourceList",
      "ECRPullSecretClaimList",
    ]) {
      expect(ts).toContain(`export interface ${name} {`);
    }
  });
});
