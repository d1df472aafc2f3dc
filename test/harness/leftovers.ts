/**
 * Runs after every integration file's own afterAll (setupFiles hooks are
 * outermost): any ECRPullSecret the file left behind is deleted and its
 * finalizer dropped. Files run one after another on one API server, and a
 * resource left Terminating would otherwise be inherited by the next file's
 * operator, whose finalizer passes then queue behind hundreds of strangers'.
 * Every removal is printed, so a leaking file shows in the log.
 */
import { afterAll, inject } from "vitest";
import type { ECRPullSecret } from "../../src/api/index.js";
import { GROUP, PLURAL, VERSION } from "../../src/api/index.js";
import { TOKEN_RECORD_SELECTOR } from "../../src/reconcile/token-records.js";
import { deleteResourceWithoutOperator, statusOf, testKube } from "./kube.js";

afterAll(async () => {
  const k = testKube(inject("controlPlane").kubeconfigPath);
  // Token records an operator kept outside the file's own namespaces (in
  // "default", for operators started without a namespace of their own): a
  // later file's operator of the same credentials source would take up a
  // token this file's AWS double issued.
  const records = await k.core.listSecretForAllNamespaces({ labelSelector: TOKEN_RECORD_SELECTOR });
  for (const s of records.items) {
    await k.core
      .deleteNamespacedSecret({
        namespace: s.metadata?.namespace ?? "",
        name: s.metadata?.name ?? "",
      })
      .catch((err: unknown) => {
        if (statusOf(err) !== 404) throw err;
      });
  }
  let items: ECRPullSecret[];
  try {
    const list = (await k.custom.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
    })) as { items: ECRPullSecret[] };
    items = list.items;
  } catch (err) {
    if (statusOf(err) === 404) return; // a test removed the CRD itself
    throw err;
  }
  const names = items.map((r) => r.metadata?.name).filter((n): n is string => !!n);
  if (names.length === 0) return;
  console.log(
    `left behind by this file, removed: ${names.length} ECRPullSecrets (${names.slice(0, 5).join(", ")}${names.length > 5 ? ", …" : ""})`,
  );
  for (let i = 0; i < names.length; i += 25) {
    await Promise.all(names.slice(i, i + 25).map((name) => deleteResourceWithoutOperator(k, name)));
  }
});
