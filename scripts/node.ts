// `npm run node [-- --kubeconfig-out PATH]`: the control plane plus one real
// node (containerd, kubelet, the CNI bridge), the AWS double and a registry
// double serving images under 111122223333.dkr.ecr.us-east-1.amazonaws.com,
// with the ECRPullSecret CRD installed, until Ctrl-C. Root and Linux only;
// build first with `bash scripts/build-node.sh` (setup.sh does).
import { existsSync } from "node:fs";
import { copyFile, readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { AwsDouble } from "../test/aws-double/index.js";
import { startControlPlane } from "../test/harness/controlplane.js";
import { installCrd, testKube } from "../test/harness/kube.js";
import {
  ECR_HOST,
  NODE_IP,
  NODE_REPOSITORIES,
  nodeWorldUnavailable,
  startNode,
} from "../test/harness/node.js";

const { values } = parseArgs({ options: { "kubeconfig-out": { type: "string" } } });
const unavailable = nodeWorldUnavailable();
if (unavailable) {
  console.error(`npm run node: ${unavailable}`);
  process.exit(1);
}
const started = Date.now();
const aws = new AwsDouble();
// On loopback: the operator's Pod runs on the host network and reaches it there.
const { url: awsUrl } = await aws.start();
const cp = await startControlPlane({ progress: (line) => console.log(line) });
await installCrd(testKube(cp.kubeconfigPath));
const node = await startNode({
  cp,
  validatePassword: (password, at) => aws.isValidPassword(password, at),
  progress: (line) => console.log(line),
});
// The AWS double for the operator's Pod, and its image when setup built it.
const awsForPods = await node.expose(Number(new URL(awsUrl).port));
const image = resolve(".cache/image/operator.tar");
const imageTag = existsSync(`${image}.tag`) ? (await readFile(`${image}.tag`, "utf8")).trim() : "";
if (imageTag) await node.importImage(image);
let kubeconfig = cp.kubeconfigPath;
if (values["kubeconfig-out"]) {
  kubeconfig = resolve(values["kubeconfig-out"]);
  await copyFile(cp.kubeconfigPath, kubeconfig);
}
console.log(`kubeconfig: ${kubeconfig}`);
console.log(`AWS double: ${awsUrl} (from Pods: http://${awsForPods})`);
if (imageTag) {
  const [repository, tag] = imageTag.split(":");
  console.log(
    `operator image ${imageTag} loaded; try: .cache/helm/helm install ecr deploy/helm/ecr-creds-refresher --kubeconfig ${kubeconfig} -n ecr-system --create-namespace --set image.repository=${repository} --set image.tag=${tag} --set image.pullPolicy=Never --set aws.region=us-east-1 --set verifyRegistry=false --set extraEnv[0].name=AWS_ENDPOINT_URL --set extraEnv[0].value=http://${awsForPods}`,
  );
}
console.log(`node: ${NODE_IP} on its own bridge`);
console.log(`registry double: ${node.registry.url}, served to the node as ${ECR_HOST}`);
console.log(`images: ${NODE_REPOSITORIES.map((r) => node.imageRef(r)).join(", ")}`);
console.log(`ready in ${((Date.now() - started) / 1000).toFixed(1)}s (Ctrl-C stops it)`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log("stopping the node and the control plane…");
  let code = 0;
  // Each step runs whatever the one before it did.
  for (const step of [() => node.stop(), () => cp.stop(), () => aws.close()]) {
    try {
      await step();
    } catch (err) {
      console.error(String(err), err instanceof AggregateError ? err.errors.map(String) : "");
      code = 1;
    }
  }
  process.exit(code);
};
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
