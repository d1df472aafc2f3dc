import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import { describe, expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));
const nodeBinary = resolve(here, "../../node_modules/.bin/node");

describe("AWS double CLI", () => {
  it("starts from a JSON config under plain Node and is steerable over /_double/", async () => {
    const dir = await mkdtemp(join(tmpdir(), "aws-double-cli-"));
    const configPath = join(dir, "double.json");
    const identity = {
      accessKeyId: "AKIACLI000000000001",
      secretAccessKey: "cli-secret",
      accountId: "444455556666",
      arn: "arn:aws:iam::444455556666:user/cli",
    };
    await writeFile(configPath, JSON.stringify({ identities: [identity] }));
    const child = spawn(
      nodeBinary,
      [join(here, "main.ts"), "--config", configPath, "--token-lifetime", "30m"],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    try {
      const line = await new Promise<string>((resolveLine, reject) => {
        child.stdout.once("data", (chunk: Buffer) => resolveLine(chunk.toString()));
        child.once("exit", (code) => reject(new Error(`aws-double main exited with ${code}`)));
      });
      const { url, containerCredentialsUrl } = JSON.parse(line) as {
        url: string;
        containerCredentialsUrl: string;
      };
      expect(containerCredentialsUrl).toBe(`${url}/pod-identity/credentials`);
      const ecr = new ECRClient({
        endpoint: url,
        region: "eu-north-1",
        credentials: identity,
        maxAttempts: 1,
      });
      const before = Date.now();
      const out = await ecr.send(new GetAuthorizationTokenCommand({}));
      const data = out.authorizationData?.[0];
      expect(data?.proxyEndpoint).toBe("https://444455556666.dkr.ecr.eu-north-1.amazonaws.com");
      expect(Math.abs((data?.expiresAt?.getTime() ?? 0) - before - 30 * 60_000)).toBeLessThan(
        5_000,
      );
      const password = Buffer.from(data?.authorizationToken ?? "", "base64")
        .toString()
        .slice(4);

      const admin = (method: string, path: string, body?: unknown) =>
        fetch(`${url}/_double/${path}`, {
          method,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      expect(await (await admin("POST", "validate-password", { password })).json()).toEqual({
        valid: true,
      });
      expect(await (await admin("POST", "validate-password", { password: "nope" })).json()).toEqual(
        {
          valid: false,
        },
      );
      await admin("POST", "faults", { kind: "throttle", service: "ecr", times: 1 });
      await expect(ecr.send(new GetAuthorizationTokenCommand({}))).rejects.toMatchObject({
        name: "ThrottlingException",
      });
      const calls = (await (await admin("GET", "calls")).json()) as { status: number }[];
      expect(calls.map((c) => c.status)).toEqual([200, 400]);
    } finally {
      child.kill("SIGTERM");
      await rm(dir, { recursive: true, force: true });
    }
  });
});
