// What AWS and the network answer, turned into the condition reasons and
// messages that say what to fix, with nothing key-shaped let through.
import { describe, expect, it } from "vitest";
import { type ErrorCode, operatorError } from "../errors.js";
import { awsErrorCode, classifyAwsError, scrub } from "./errors.js";

const source = "the keys in Secret ops/aws";
const step = "get an ECR token in us-east-1";

/** An error shaped as the AWS SDK throws them. */
function sdkError(name: string, message: string, status?: number): Error {
  return Object.assign(new Error(message), {
    name,
    ...(status ? { $metadata: { httpStatusCode: status } } : {}),
  });
}

describe("classifyAwsError", () => {
  it.each<[string, Error, ErrorCode, string]>([
    [
      "no credentials at all",
      sdkError("CredentialsProviderError", "Could not load credentials from any providers"),
      "CredentialsInvalid",
      `failed to ${step}: no AWS credentials from ${source} (Could not load credentials from any providers); set spec.credentials.secretRef`,
    ],
    [
      "keys AWS does not know",
      sdkError(
        "UnrecognizedClientException",
        "The security token included in the request is invalid",
        400,
      ),
      "CredentialsInvalid",
      `failed to ${step}: AWS refused ${source} (UnrecognizedClientException); replace them with valid keys or fix the identity`,
    ],
    [
      "STS refusing the role",
      sdkError("AccessDenied", "User is not authorized to perform: sts:AssumeRole", 403),
      "RoleNotAssumable",
      `failed to ${step} with ${source}: access denied (User is not authorized to perform: sts:AssumeRole); check the role's trust policy and externalId`,
    ],
    [
      "ECR refusing the principal",
      sdkError(
        "AccessDeniedException",
        "not authorized to perform: ecr:GetAuthorizationToken",
        400,
      ),
      "AccessDenied",
      `failed to ${step}: access denied for ${source} (not authorized to perform: ecr:GetAuthorizationToken); allow ecr:GetAuthorizationToken in its IAM policy`,
    ],
    [
      "a web identity token refused",
      sdkError("InvalidIdentityToken", "No OpenIDConnect provider found"),
      "RoleNotAssumable",
      `failed to ${step}: STS refused the web identity token of ${source} (No OpenIDConnect provider found)`,
    ],
    [
      "an endpoint that does not resolve",
      Object.assign(new Error("getaddrinfo ENOTFOUND api.ecr.nowhere-1.amazonaws.com"), {
        code: "ENOTFOUND",
      }),
      "RegionUnknown",
      `failed to ${step}: the AWS endpoint could not be reached (ENOTFOUND); check the region`,
    ],
    [
      "throttling (a form the token cache tells apart)",
      sdkError("ThrottlingException", "Rate exceeded", 400),
      "TokenRefreshFailed",
      `failed to ${step} with ${source}: AWS throttled the call (ThrottlingException (HTTP 400): Rate exceeded); retried after the SDK's back-off`,
    ],
    [
      "anything else",
      sdkError("ServerException", "Internal server error", 500),
      "TokenRefreshFailed",
      `failed to ${step} with ${source}: ServerException (HTTP 500): Internal server error`,
    ],
  ])("%s", (_, err, code, message) => {
    const e = classifyAwsError(err, source, step);
    expect(e.code).toBe(code);
    expect(e.message.startsWith(message), e.message).toBe(true);
    expect(e.cause).toBe(err);
  });

  it("passes an error already from the catalogue through unchanged", () => {
    const e = operatorError("CredentialsSecretNotFound", "notFound", {
      namespace: "ops",
      name: "aws",
    });
    expect(classifyAwsError(e, source, step)).toBe(e);
  });

  it("never lets a secret key or an access key ID into the message", () => {
    const secretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const e = classifyAwsError(
      sdkError("SomethingOdd", `key ${secretKey} of AKIAIOSFODNN7EXAMPLE`),
      source,
      step,
    );
    expect(e.message).not.toContain(secretKey);
    expect(e.message).not.toContain("AKIAIOSFODNN7EXAMPLE");
    expect(e.message).toContain("[redacted]");
    expect(e.message).toContain("AKIA…");
  });
});

describe("awsErrorCode", () => {
  it("names the exception, else the Node error code, else Unknown", () => {
    expect(awsErrorCode(sdkError("ExpiredTokenException", "x"))).toBe("ExpiredTokenException");
    expect(awsErrorCode(Object.assign(new Error("x"), { code: "ECONNRESET" }))).toBe("ECONNRESET");
    expect(awsErrorCode(new Error("x"))).toBe("Unknown");
    expect(awsErrorCode("a string")).toBe("Unknown");
  });
});

describe("scrub", () => {
  it("cuts long messages to 300 characters", () => {
    expect(scrub("x ".repeat(400))).toHaveLength(300);
  });
});
