// Per-ServiceAccount roles: IAM, not the operator, decides which
// ServiceAccount may pull with which role. The ECR token of a (role, region)
// is fetched once and shared, so every other ServiceAccount annotated with
// that role must show that the role's trust policy admits it too: its own
// token (TokenRequest) exchanged with AssumeRoleWithWebIdentity. The answer
// is remembered for the life of the session STS granted (a refusal for a
// short while), so this costs one STS call per ServiceAccount per session,
// and no ECR call.
import { AssumeRoleWithWebIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import type { OperatorError } from "../errors.js";
import {
  describeServiceAccount,
  type RequestServiceAccountToken,
  ROLE_SESSION_NAME,
  type ServiceAccountRef,
} from "./credentials.js";
import { classifyAwsError } from "./errors.js";
import { awsClientConfig } from "./token.js";

export interface Admission {
  ok: boolean;
  /** Why not, naming the ServiceAccount and the role. */
  error?: OperatorError;
}

interface Remembered extends Admission {
  until: number;
}

export interface RoleAdmissionsOptions {
  requestServiceAccountToken: RequestServiceAccountToken;
  timeoutMs: number;
  /** How long a refusal is believed before asking again. */
  refusalTtlMs: number;
  now?: () => number;
}

export class RoleAdmissions {
  private readonly answers = new Map<string, Remembered>();
  private readonly inflight = new Map<string, Promise<Admission>>();
  private readonly now: () => number;

  constructor(private readonly opts: RoleAdmissionsOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Whether the role's trust policy admits this ServiceAccount's token. */
  admit(
    serviceAccount: ServiceAccountRef,
    roleArn: string,
    audience: string,
    region: string,
  ): Promise<Admission> {
    const key = `${serviceAccount.namespace}/${serviceAccount.name}|${roleArn}|${audience}`;
    const known = this.answers.get(key);
    if (known && known.until > this.now()) return Promise.resolve(known);
    const running = this.inflight.get(key);
    if (running !== undefined) return running;
    const asking = this.ask(serviceAccount, roleArn, audience, region).then((answer) => {
      this.forgetExpired();
      this.answers.set(key, answer);
      this.inflight.delete(key);
      return answer;
    });
    this.inflight.set(key, asking);
    return asking;
  }

  /** Drops answers whose session ended: ServiceAccounts gone or re-annotated leave none behind. */
  private forgetExpired(): void {
    const now = this.now();
    for (const [key, answer] of this.answers) if (answer.until <= now) this.answers.delete(key);
  }

  private async ask(
    sa: ServiceAccountRef,
    roleArn: string,
    audience: string,
    region: string,
  ): Promise<Remembered> {
    const what = `role ${roleArn} assumed with the web identity of ${describeServiceAccount(sa)}`;
    // The proxy-aware agent, deadline and clock-corrected retry of every AWS client.
    const sts = new STSClient({ region, ...awsClientConfig(this.opts.timeoutMs) });
    try {
      const { token } = await this.opts.requestServiceAccountToken(sa, audience);
      const out = await sts.send(
        new AssumeRoleWithWebIdentityCommand({
          RoleArn: roleArn,
          RoleSessionName: ROLE_SESSION_NAME,
          WebIdentityToken: token,
        }),
      );
      const expires = out.Credentials?.Expiration?.getTime() ?? this.now() + 15 * 60_000;
      return { ok: true, until: expires };
    } catch (err) {
      return {
        ok: false,
        error: classifyAwsError(err, what, "admit the ServiceAccount to its role", sa),
        until: this.now() + this.opts.refusalTtlMs,
      };
    } finally {
      sts.destroy();
    }
  }
}
