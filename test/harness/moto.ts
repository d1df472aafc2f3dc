// moto's server (a third-party AWS emulator from PyPI, installed into
// .cache/venv by scripts/setup.sh) as a second AWS endpoint: an independent
// check of the wire format against something this project did not write.
// A small pass-through proxy in front of it records every request, so tests
// can count the AWS calls the operator makes (moto keeps no call log).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { join } from "node:path";
import { repoRoot, waitFor } from "./controlplane.js";

export const motoServerBin = join(repoRoot, ".cache/venv/bin/moto_server");

export interface MotoCall {
  /** Epoch milliseconds when the request arrived. */
  time: number;
  method: string;
  path: string;
  /** X-Amz-Target (JSON protocols: ECR), or the Action of a query request (STS). */
  action: string;
  status: number;
}

export interface Moto {
  /** The proxy in front of moto: what the operator's AWS_ENDPOINT_URL points at. */
  url: string;
  /** moto itself, bypassing the call log. */
  directUrl: string;
  calls(filter?: (c: MotoCall) => boolean): MotoCall[];
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
    await res.arrayBuffer();
    return res.status < 500;
  } catch {
    return false;
  }
}

/** Starts `moto_server` on a free loopback port and waits until it answers. */
export async function startMoto(): Promise<Moto> {
  if (!existsSync(motoServerBin)) {
    throw new Error(
      `failed to start moto: ${motoServerBin} is missing; run \`bash scripts/setup.sh\` to install moto[server] into .cache/venv`,
    );
  }
  const port = await freePort();
  const directUrl = `http://127.0.0.1:${port}`;
  const output: string[] = [];
  const proc: ChildProcess = spawn(motoServerBin, ["-H", "127.0.0.1", "-p", String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PYTHONUNBUFFERED: "1" },
  });
  const keep = (chunk: Buffer) => {
    output.push(chunk.toString("utf8"));
    if (output.length > 200) output.shift();
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  try {
    await waitFor(
      `moto_server on ${directUrl}`,
      async () => {
        if (proc.exitCode !== null) {
          throw new Error(
            `failed to start moto: it exited with ${proc.exitCode}: ${output.join("")}`,
          );
        }
        return (await answers(directUrl)) ? true : undefined;
      },
      { timeoutMs: 30_000 },
    );
  } catch (err) {
    proc.kill("SIGKILL");
    throw err;
  }

  const log: MotoCall[] = [];
  const proxy: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const target = req.headers["x-amz-target"];
      const action =
        (typeof target === "string" ? target : undefined) ??
        new URLSearchParams(body.toString("utf8")).get("Action") ??
        "";
      const call: MotoCall = {
        time: Date.now(),
        method: req.method ?? "GET",
        path: req.url ?? "/",
        action,
        status: 0,
      };
      log.push(call);
      const upstream = request(
        `${directUrl}${req.url ?? "/"}`,
        { method: req.method, headers: req.headers },
        (up) => {
          call.status = up.statusCode ?? 0;
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on("error", (err) => {
        call.status = 502;
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(`failed to reach moto: ${err.message}`);
      });
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", () => resolve()));
  const proxyPort = (proxy.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${proxyPort}`,
    directUrl,
    calls: (filter) => (filter ? log.filter(filter) : [...log]),
    async stop() {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
