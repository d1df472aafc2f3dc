// `npm run controlplane [-- --kubeconfig-out PATH]`: a local Kubernetes
// control plane (etcd, kube-apiserver, kube-controller-manager) with the
// ECRPullSecret CRD installed, until Ctrl-C.
import { copyFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { startControlPlane } from "../test/harness/controlplane.js";
import { installCrd, testKube } from "../test/harness/kube.js";

const { values } = parseArgs({ options: { "kubeconfig-out": { type: "string" } } });
const cp = await startControlPlane({ progress: (line) => console.log(line) });
await installCrd(testKube(cp.kubeconfigPath));
let kubeconfig = cp.kubeconfigPath;
if (values["kubeconfig-out"]) {
  kubeconfig = resolve(values["kubeconfig-out"]);
  await copyFile(cp.kubeconfigPath, kubeconfig);
}
console.log(`kubeconfig: ${kubeconfig}`);
console.log(`try: kubectl --kubeconfig ${kubeconfig} get namespaces`);
console.log("ready (Ctrl-C stops it)");

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log("stopping the control plane…");
  await cp.stop();
  process.exit(0);
};
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
