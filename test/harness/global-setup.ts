// Starts one control plane for the whole integration run (or uses the cluster
// named by KUBECONFIG) and hands its coordinates to every test file.
import type { TestProject } from "vitest/node";
import { ensureBuilt } from "./build.js";
import { startControlPlane } from "./controlplane.js";
import { installCrd, testKube } from "./kube.js";

export interface ControlPlaneInfo {
  kubeconfigPath: string;
  /** Empty when the tests run against an existing cluster. */
  auditLogPath: string;
  server: string;
  existingCluster: boolean;
  /** The API server's client CA (`--client-ca-file`), for certificate tests; empty on an existing cluster. */
  clientCaCertPath: string;
  clientCaKeyPath: string;
  /** The directory of the control plane's files (service-account key, certs); empty on an existing cluster. */
  dir: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    controlPlane: ControlPlaneInfo;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Tests that run the executable need dist/, whichever file runs first.
  await ensureBuilt();
  const existing = process.env.KUBECONFIG;
  if (existing) {
    project.provide("controlPlane", {
      kubeconfigPath: existing,
      auditLogPath: "",
      server: "",
      existingCluster: true,
      clientCaCertPath: "",
      clientCaKeyPath: "",
      dir: "",
    });
    await installCrd(testKube(existing));
    return async () => {};
  }
  const started = Date.now();
  const cp = await startControlPlane({ progress: (line) => console.log(`[controlplane] ${line}`) });
  console.log(`[controlplane] up in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  await installCrd(testKube(cp.kubeconfigPath));
  project.provide("controlPlane", {
    kubeconfigPath: cp.kubeconfigPath,
    auditLogPath: cp.auditLogPath,
    server: cp.server,
    existingCluster: false,
    clientCaCertPath: cp.clientCa.certPath,
    clientCaKeyPath: cp.clientCa.keyPath,
    dir: cp.dir,
  });
  return async () => {
    await cp.stop();
  };
}
