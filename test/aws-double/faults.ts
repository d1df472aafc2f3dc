// Injected faults: hangs and delays before a request is read, refusals at
// authentication, throttling and 5xx after it, expired credentials in answers.
import type { CallLog } from "./calls.js";
import { HOUR_MS, type RequestContext, ServiceError } from "./protocol.js";
import type { AwsService, Fault, FaultHandle, FaultKind, FaultScope } from "./types.js";

interface ActiveFault {
  fault: Fault;
  service: AwsService | undefined;
  action: string | undefined;
  remaining: number | undefined;
}

/** The faults in force, and the requests hung on them. */
export class Faults {
  private active: ActiveFault[] = [];
  /** Woken whenever the fault list changes, so hung requests re-check. */
  private waiters = new Set<() => void>();

  /** Adds a fault for the calls `scope` names (all by default), `scope.times` times or until cleared. */
  inject(fault: Fault, scope: FaultScope = {}): FaultHandle {
    const active: ActiveFault = {
      fault,
      service: scope.service,
      action: scope.action,
      remaining: scope.times,
    };
    this.active.push(active);
    this.wake();
    return {
      fault,
      get remaining() {
        return active.remaining;
      },
      clear: () => this.remove(active),
    };
  }

  /** Clears every fault, or those of one service / kind. Hung requests are then answered. */
  clear(filter: { service?: AwsService; kind?: FaultKind } = {}): void {
    this.active = this.active.filter(
      (f) =>
        (filter.service !== undefined && f.service !== filter.service) ||
        (filter.kind !== undefined && f.fault.kind !== filter.kind),
    );
    this.wake();
  }

  /** Wakes every hung request to re-check (a fault changed, or the double is closing). */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const wake of waiters) wake();
  }

  /** True, and one use spent, when a fault of `kind` applies to this call. */
  consume(service: AwsService, action: string, kind: FaultKind): boolean {
    return this.matching(service, action, kind, true) !== undefined;
  }

  /**
   * Hang and delay happen before anything else, like a slow network would.
   * Returns false when the client left while waiting, or the double closed
   * (`isOpen` false); the call is then recorded in `log` with status 0.
   */
  async beforeRequest(ctx: RequestContext, isOpen: () => boolean, log: CallLog): Promise<boolean> {
    let clientGone = false;
    const onClose = (): void => {
      clientGone = !ctx.res.writableFinished;
      this.wake();
    };
    ctx.res.once("close", onClose);
    try {
      while (!clientGone && isOpen()) {
        if (this.matching(ctx.service, ctx.action, "hang", false) === undefined) break;
        await new Promise<void>((resolve) => this.waiters.add(resolve));
      }
      const delay = this.matching(ctx.service, ctx.action, "delay", true);
      if (delay !== undefined && delay.fault.kind === "delay" && !clientGone) {
        await sleepUnlessClosed(ctx, delay.fault.ms);
      }
    } finally {
      ctx.res.off("close", onClose);
    }
    if (clientGone || ctx.res.destroyed || !isOpen()) {
      // Record the request from the start of a hang too, so tests can count it.
      log.record(ctx, 0, "ClientClosedRequest");
      if (!ctx.res.destroyed) ctx.res.destroy();
      return false;
    }
    return true;
  }

  /** Throttling and 5xx come after authentication, as on the real services; throws ServiceError. */
  afterAuthentication(ctx: RequestContext): void {
    if (this.consume(ctx.service, ctx.action, "throttle")) {
      throw new ServiceError("throttling", "Rate exceeded");
    }
    if (this.consume(ctx.service, ctx.action, "error5xx")) {
      throw new ServiceError(
        "serverError",
        ctx.service === "sts" ? "Service is unavailable" : "Internal server error",
      );
    }
  }

  /** When credentials issued now expire: `lifetimeMs` ahead, or an hour ago under expiredTokens. */
  expiresFor(ctx: RequestContext, lifetimeMs: number): Date {
    if (this.consume(ctx.service, ctx.action, "expiredTokens")) {
      return new Date(Date.now() - HOUR_MS);
    }
    return new Date(Date.now() + lifetimeMs);
  }

  private remove(active: ActiveFault): void {
    this.active = this.active.filter((f) => f !== active);
    this.wake();
  }

  private matching(
    service: AwsService,
    action: string,
    kind: FaultKind,
    consume: boolean,
  ): ActiveFault | undefined {
    const found = this.active.find(
      (f) =>
        f.fault.kind === kind &&
        (f.service === undefined || f.service === service) &&
        (f.action === undefined || f.action === action) &&
        (f.remaining === undefined || f.remaining > 0),
    );
    if (found !== undefined && consume && found.remaining !== undefined) {
      found.remaining -= 1;
      if (found.remaining <= 0) this.remove(found);
    }
    return found;
  }
}

/** Waits `ms`, or less when the client hangs up. */
function sleepUnlessClosed(ctx: RequestContext, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    ctx.res.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
