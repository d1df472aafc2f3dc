// One small informer per credentials Secret in use (the operator default and
// each resource's, keys or an IAM Roles Anywhere certificate): a rotated key
// or a renewed certificate refetches the tokens of exactly the resources that
// use it, and token fetches read the Secret from the cache.
import type { ECRPullSecret } from "../api/index.js";
import { type CredentialSource, credentialsSecretOf } from "../aws/credential-source.js";
import type { SecretData, SecretRef } from "../aws/credentials.js";
import {
  defaultCredentialSource,
  type OperatorDefaults,
  resolveRegistries,
} from "../aws/registries.js";
import type { KubeClient } from "../kube/client.js";
import type { Informer } from "../kube/informer.js";
import type { Cached, Secret } from "../kube/types.js";
import type { Logger } from "../observability/logger.js";
import { credentialsSecretInformer } from "./informers.js";

export interface CredentialWatchersOptions {
  defaults: OperatorDefaults;
  /** The resources now (the informer's cache). */
  resources: () => Iterable<Cached<ECRPullSecret>>;
  /** A credentials Secret changed: drop the tokens of these credentials; returns who used them. */
  invalidate: (matches: (c: CredentialSource) => boolean) => string[];
  /** Resources to reconcile again. */
  enqueue: (names: Iterable<string>) => void;
}

export class CredentialWatchers {
  private readonly informers = new Map<string, Informer<Secret>>();
  /** Credentials Secret ("namespace/name") → the resources whose registries use it, as of sync(). */
  private users = new Map<string, Set<string>>();

  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
    private readonly opts: CredentialWatchersOptions,
  ) {}

  /** Watches every credentials Secret in use, and stops watching the others. */
  sync(): void {
    const { refs: wanted, users } = this.refs();
    this.users = users;
    for (const [key, informer] of this.informers) {
      if (!wanted.has(key)) {
        informer.stop();
        this.informers.delete(key);
      }
    }
    for (const [key, ref] of wanted) if (!this.informers.has(key)) this.watch(key, ref);
  }

  /** A credentials Secret's data from its informer (started on first use); null when absent. */
  async read(ref: SecretRef): Promise<SecretData | null> {
    const key = `${ref.namespace}/${ref.name}`;
    const informer = this.informers.get(key) ?? this.watch(key, ref);
    await informer.synced;
    const secret = informer.get(ref.namespace, ref.name);
    return secret ? (secret.data ?? {}) : null;
  }

  stop(): void {
    for (const i of this.informers.values()) i.stop();
  }

  /** Every credentials Secret in use (the operator default and each resource's), and who uses it. */
  private refs(): { refs: Map<string, SecretRef>; users: Map<string, Set<string>> } {
    const refs = new Map<string, SecretRef>();
    const users = new Map<string, Set<string>>();
    const add = (ref: SecretRef | undefined, user?: string) => {
      if (!ref) return;
      const key = `${ref.namespace}/${ref.name}`;
      refs.set(key, ref);
      if (user === undefined) return;
      const set = users.get(key) ?? new Set<string>();
      set.add(user);
      users.set(key, set);
    };
    add(credentialsSecretOf(defaultCredentialSource(this.opts.defaults)));
    for (const r of this.opts.resources()) {
      try {
        for (const t of resolveRegistries(r.spec, this.opts.defaults)) {
          add(credentialsSecretOf(t.source.credentials), r.metadata.name);
        }
      } catch {
        // An invalid spec is reported by its reconcile.
      }
    }
    return { refs, users };
  }

  private watch(key: string, ref: SecretRef): Informer<Secret> {
    const informer = credentialsSecretInformer(this.kube, ref);
    informer.on((event, obj, old) => {
      if (event === "update" && JSON.stringify(obj.data ?? {}) === JSON.stringify(old?.data ?? {}))
        return;
      if (!informer.hasSynced) return;
      // Rotated (or created, or deleted) keys: refetch now for every resource
      // that uses them, and for no other.
      const told = this.opts.invalidate((c) => {
        const used = credentialsSecretOf(c);
        return used?.namespace === ref.namespace && used.name === ref.name;
      });
      this.log.info(
        { secret: key, resources: told },
        "credentials Secret changed; refetching tokens",
      );
      this.opts.enqueue(told);
      // Its users without a token entry yet (they failed for want of this Secret).
      this.opts.enqueue(this.users.get(key) ?? []);
    });
    this.informers.set(key, informer);
    informer.start();
    return informer;
  }
}
