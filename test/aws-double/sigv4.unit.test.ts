import { describe, expect, it } from "vitest";
import {
  canonicalRequest,
  expectedSignature,
  parseAuthorization,
  type SignedRequest,
  sha256Hex,
  uriEscape,
} from "./sigv4.js";

// The worked example from the AWS SigV4 documentation (IAM ListUsers).
const request: SignedRequest = {
  method: "GET",
  url: "/?Action=ListUsers&Version=2010-05-08",
  headers: [
    ["Host", "iam.amazonaws.com"],
    ["Content-Type", "application/x-www-form-urlencoded; charset=utf-8"],
    ["X-Amz-Date", "20150830T123600Z"],
  ],
  body: Buffer.alloc(0),
};
const authorization =
  "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, " +
  "SignedHeaders=content-type;host;x-amz-date, " +
  "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

describe("SigV4 verifier", () => {
  it("parses the Authorization header", () => {
    expect(parseAuthorization(authorization)).toEqual({
      accessKeyId: "AKIDEXAMPLE",
      date: "20150830",
      region: "us-east-1",
      service: "iam",
      signedHeaders: ["content-type", "host", "x-amz-date"],
      signature: "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
    });
    expect(parseAuthorization("Basic abc")).toBeUndefined();
    expect(parseAuthorization("AWS4-HMAC-SHA256 Credential=a/b/c")).toBeUndefined();
  });

  it("reproduces the documented canonical request and signature", () => {
    const auth = parseAuthorization(authorization);
    if (auth === undefined) throw new Error("failed to parse the example header");
    expect(sha256Hex(canonicalRequest(request, auth.signedHeaders))).toBe(
      "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59",
    );
    expect(
      expectedSignature(
        request,
        auth,
        "20150830T123600Z",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      ),
    ).toBe(auth.signature);
    expect(expectedSignature(request, auth, "20150830T123600Z", "other")).not.toBe(auth.signature);
  });

  it("escapes the way SigV4 does", () => {
    expect(uriEscape("a b*c(d)!'~")).toBe("a%20b%2Ac%28d%29%21%27~");
  });
});
