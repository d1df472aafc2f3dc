// The double's call log: one record per answered (or abandoned) request.
import type { RequestContext } from "./protocol.js";
import type { CallFilter, CallRecord } from "./types.js";

/** Every call the double saw, in arrival-of-answer order. */
export class CallLog {
  private readonly log: CallRecord[] = [];

  /** Records a call with what the request taught us; `status` 0 when the client left. */
  record(ctx: RequestContext, status: number, errorCode?: string): void {
    const call: CallRecord = { service: ctx.service, action: ctx.action, time: Date.now(), status };
    if (ctx.region !== undefined) call.region = ctx.region;
    if (ctx.accessKeyId !== undefined) call.accessKeyId = ctx.accessKeyId;
    if (ctx.principalArn !== undefined) call.principalArn = ctx.principalArn;
    if (errorCode !== undefined) call.errorCode = errorCode;
    if (ctx.roleArn !== undefined) call.roleArn = ctx.roleArn;
    if (ctx.roleSessionName !== undefined) call.roleSessionName = ctx.roleSessionName;
    if (ctx.externalId !== undefined) call.externalId = ctx.externalId;
    if (ctx.sessionTags !== undefined) call.sessionTags = ctx.sessionTags;
    if (ctx.subject !== undefined) call.subject = ctx.subject;
    this.log.push(call);
  }

  /** A copy of the records, all or those matching every field of `filter` (or the predicate). */
  calls(filter?: CallFilter): CallRecord[] {
    if (filter === undefined) return [...this.log];
    if (typeof filter === "function") return this.log.filter(filter);
    const entries = Object.entries(filter) as [keyof CallRecord, unknown][];
    return this.log.filter((call) => entries.every(([k, v]) => call[k] === v));
  }

  /** Forgets every record. */
  reset(): void {
    this.log.length = 0;
  }
}
