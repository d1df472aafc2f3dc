// The ECR authorization token: base64("user:password"), as GetAuthorizationToken
// returns it. Nothing here may put a token or a password into an error: errors
// reach logs, Events and status.
import { operatorError } from "../errors.js";

export interface RegistryCredentials {
  username: string;
  password: string;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Splits base64("user:password") into its parts: strict (canonical) base64,
 * valid UTF-8, a non-empty user before the first colon and a non-empty
 * password after it. Throws TokenRefreshFailed (malformedToken), naming only what is wrong.
 */
export function decodeAuthorizationToken(token: string): RegistryCredentials {
  const bad = (reason: string) => operatorError("TokenRefreshFailed", "malformedToken", { reason });
  if (token.length === 0) throw bad("it is empty");
  const bytes = Buffer.from(token, "base64");
  // Node's decoder skips characters outside the alphabet and tolerates missing
  // padding; only a token that re-encodes to itself is strict base64.
  if (bytes.toString("base64") !== token) throw bad("it is not valid base64");
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    // No cause: the decoder's error adds nothing and must not carry bytes.
    throw bad("it does not decode to UTF-8 text");
  }
  const colon = text.indexOf(":");
  if (colon < 0) throw bad('it has no ":" between user name and password');
  if (colon === 0) throw bad("its user name is empty");
  if (colon === text.length - 1) throw bad("its password is empty");
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}
