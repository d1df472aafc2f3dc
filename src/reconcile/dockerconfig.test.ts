import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeAuthorizationToken } from "../aws/authorization-token.js";
import { isOperatorError } from "../errors.js";
import {
  buildDockerConfigJson,
  type DockerConfigEntry,
  parseDockerConfigJson,
} from "./dockerconfig.js";

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString("base64");

/** Asserts `f` throws the catalogue's `form` and that the message quotes none of `secrets`. */
function expectCodedWithout(
  f: () => unknown,
  form: "malformedToken" | "malformedDockerConfig",
  secrets: string[],
) {
  try {
    f();
  } catch (e) {
    expect(isOperatorError(e, "TokenRefreshFailed"), String(e)).toBe(true);
    expect((e as { form?: string }).form).toBe(form);
    const err = e as Error;
    for (const s of secrets) {
      // Very short strings occur in any message by chance.
      if (s.length >= 6) {
        expect(err.message).not.toContain(s);
        expect(String(err.cause ?? "")).not.toContain(s);
      }
    }
    return;
  }
  expect.unreachable("expected an error");
}

describe("decodeAuthorizationToken", () => {
  it("splits an ECR token at the first colon", () => {
    expect(decodeAuthorizationToken(b64("AWS:eyJwYXlsb2FkIjoi"))).toEqual({
      username: "AWS",
      password: "eyJwYXlsb2FkIjoi",
    });
    expect(decodeAuthorizationToken(b64("AWS:a:b"))).toEqual({ username: "AWS", password: "a:b" });
    expect(decodeAuthorizationToken(b64("AWS:pässwört"))).toEqual({
      username: "AWS",
      password: "pässwört",
    });
  });

  it.each([
    ["empty", ""],
    ["no colon", b64("AWSsecretpassword")],
    ["empty password", b64("AWS:")],
    ["empty user", b64(":secretpassword")],
    ["not base64", "AWS:secretpassword"],
    ["missing padding", b64("AWS:secretpasswor").replace(/=+$/, "")],
    ["url-safe alphabet", b64("AWS:??>>??>>").replace(/\+/g, "-").replace(/\//g, "_")],
    ["whitespace", ` ${b64("AWS:secretpassword")}`],
    [
      "line break",
      `${b64("AWS:secretpassword").slice(0, 8)}\n${b64("AWS:secretpassword").slice(8)}`,
    ],
    ["non-canonical trailing bits", "QUI6YR=="],
    ["invalid UTF-8", b64(new Uint8Array([0x41, 0x3a, 0xff, 0xfe, 0x70, 0x61, 0x73, 0x73]))],
  ])("rejects a token with %s as MalformedToken", (_, token) => {
    expectCodedWithout(() => decodeAuthorizationToken(token), "malformedToken", [
      token,
      "secretpassword",
    ]);
  });

  const user = fc.string({ minLength: 1, maxLength: 8 }).filter((s) => !s.includes(":"));
  const password = fc.string({ minLength: 1, maxLength: 40 });

  it("decodes what base64 of user:password encodes", () => {
    fc.assert(
      fc.property(user, password, (u, p) => {
        fc.pre(Buffer.from(`${u}:${p}`).toString() === `${u}:${p}`); // lone surrogates do not survive UTF-8
        expect(decodeAuthorizationToken(b64(`${u}:${p}`))).toEqual({ username: u, password: p });
      }),
    );
  });

  it("rejects broken tokens without ever quoting the token or the password", () => {
    const secret = fc.string({ minLength: 6, maxLength: 40 }).filter((s) => !s.includes(":"));
    const broken = fc.oneof(
      secret.map((p) => ({ token: b64(p), password: p })), // no colon
      secret.map((p) => ({
        token: `${b64(`AWS:${p}`).slice(0, 6)}!${b64(`AWS:${p}`).slice(7)}`,
        password: p,
      })), // corrupted
      secret.map((p) => ({ token: `AWS:${p}`, password: p })), // not base64 at all
      secret.map((p) => ({ token: `${b64(`AWS:${p}`)}\n`, password: p })), // trailing junk
      secret.map((p) => ({ token: b64(`AWS:${p}`).slice(1), password: p })), // truncated
      fc
        .uint8Array({ minLength: 1, maxLength: 20 })
        .map((bytes) => Buffer.concat([Buffer.from("AWS:\xff", "latin1"), bytes]))
        .map((buf) => ({
          token: buf.toString("base64"),
          password: buf.subarray(4).toString("latin1"),
        })),
    );
    fc.assert(
      fc.property(broken, ({ token, password: p }) => {
        expectCodedWithout(() => decodeAuthorizationToken(token), "malformedToken", [token, p]);
      }),
    );
  });

  it("either decodes or throws MalformedToken on any string, never quoting it", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 40 }), fc.base64String({ maxLength: 40 })),
        (token) => {
          try {
            const { username, password } = decodeAuthorizationToken(token);
            expect(b64(`${username}:${password}`)).toBe(token);
          } catch (e) {
            expect(isOperatorError(e, "TokenRefreshFailed")).toBe(true);
            if (token.length >= 6) expect((e as Error).message).not.toContain(token);
          }
        },
      ),
    );
  });
});

describe("buildDockerConfigJson", () => {
  it("writes sorted hosts with username, password and auth in that order", () => {
    const json = buildDockerConfigJson([
      { host: "222222222222.dkr.ecr.eu-west-1.amazonaws.com", username: "AWS", password: "p2" },
      { host: "111111111111.dkr.ecr.us-east-1.amazonaws.com", username: "AWS", password: "p1" },
    ]);
    expect(json).toBe(
      `{"auths":{"111111111111.dkr.ecr.us-east-1.amazonaws.com":{"username":"AWS","password":"p1","auth":"${b64("AWS:p1")}"},` +
        `"222222222222.dkr.ecr.eu-west-1.amazonaws.com":{"username":"AWS","password":"p2","auth":"${b64("AWS:p2")}"}}}`,
    );
    expect(buildDockerConfigJson([])).toBe('{"auths":{}}');
  });

  it("collapses a host listed twice with the same credentials and refuses different ones", () => {
    const e = { host: "public.ecr.aws", username: "AWS", password: "p" };
    expect(buildDockerConfigJson([e, e])).toBe(buildDockerConfigJson([e]));
    try {
      buildDockerConfigJson([e, { ...e, password: "other-secret" }]);
      expect.unreachable();
    } catch (err) {
      expect(isOperatorError(err, "InvalidSpec")).toBe(true);
      expect((err as { form?: string }).form).toBe("registryListedTwice");
      expect((err as Error).message).not.toContain("other-secret");
    }
  });

  const host = fc.oneof(
    fc.constantFrom("public.ecr.aws", "__proto__", "constructor"),
    fc
      .tuple(
        fc.stringMatching(/^[0-9]{12}$/),
        fc.constantFrom("us-east-1", "eu-west-1", "cn-north-1"),
      )
      .map(([a, r]) => `${a}.dkr.ecr.${r}.amazonaws.com`),
  );
  const entries = fc.uniqueArray(
    fc.record({
      host,
      username: fc.string({ minLength: 1, maxLength: 6 }).filter((s) => !s.includes(":")),
      password: fc.string({ minLength: 1, maxLength: 30 }),
    }),
    { selector: (e) => e.host, maxLength: 5 },
  );

  it("round-trips through parseDockerConfigJson", () => {
    fc.assert(
      fc.property(entries, (es) => {
        const parsed = parseDockerConfigJson(buildDockerConfigJson(es));
        expect(Object.keys(parsed).sort()).toEqual(es.map((e) => e.host).sort());
        for (const e of es) {
          expect(Object.hasOwn(parsed, e.host)).toBe(true);
          const got = parsed[e.host];
          // Lone surrogates become U+FFFD in UTF-8; compare what UTF-8 keeps.
          const keep = (s: string) => Buffer.from(s).toString();
          expect(got).toEqual({ username: keep(e.username), password: keep(e.password) });
        }
      }),
    );
  });

  it("is deterministic whatever the order of its input", () => {
    fc.assert(
      fc.property(entries, fc.infiniteStream(fc.nat()), (es, rnd) => {
        const shuffled = [...es];
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = rnd.next().value % (i + 1);
          [shuffled[i], shuffled[j]] = [
            shuffled[j] as DockerConfigEntry,
            shuffled[i] as DockerConfigEntry,
          ];
        }
        expect(buildDockerConfigJson(shuffled)).toBe(buildDockerConfigJson(es));
      }),
    );
  });
});

describe("parseDockerConfigJson", () => {
  it("prefers auth over username and password, as the Docker CLI does", () => {
    const json = JSON.stringify({
      auths: {
        a: { auth: b64("AWS:from-auth"), username: "x", password: "y" },
        b: { username: "u", password: "p" },
      },
    });
    expect(parseDockerConfigJson(json)).toEqual({
      a: { username: "AWS", password: "from-auth" },
      b: { username: "u", password: "p" },
    });
  });

  it.each([
    ["not JSON", '{"auths": {"h": {"password": "secretpassword"'],
    ["no auths", '{"h": {"username": "u", "password": "secretpassword"}}'],
    ["auths not an object", '{"auths": ["secretpassword"]}'],
    ["entry not an object", '{"auths": {"h": "secretpassword"}}'],
    ["entry without credentials", '{"auths": {"h": {"username": "secretpassword"}}}'],
    ["bad auth", `{"auths": {"h": {"auth": "${b64("secretpassword")}"}}}`],
  ])("rejects %s as MalformedDockerConfig without quoting it", (_, json) => {
    expectCodedWithout(() => parseDockerConfigJson(json), "malformedDockerConfig", [
      json,
      "secretpassword",
    ]);
  });
});
