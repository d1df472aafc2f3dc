import type { LabelSelector, LabelSelectorRequirement } from "../api/index.js";
import { operatorError } from "../errors.js";

// Kubernetes label-selector semantics (metav1.LabelSelectorAsSelector): every
// matchLabels entry and every matchExpressions requirement must hold.

function requirementHolds(r: LabelSelectorRequirement, labels: Record<string, string>): boolean {
  const values = r.values ?? [];
  const has = Object.hasOwn(labels, r.key);
  switch (r.operator) {
    case "In":
    case "NotIn": {
      if (values.length === 0) {
        throw operatorError("InvalidSpec", "selector", {
          reason: `operator ${r.operator} on key ${JSON.stringify(r.key)} needs at least one value`,
        });
      }
      const inValues = has && values.includes(labels[r.key] as string);
      return r.operator === "In" ? inValues : !inValues;
    }
    case "Exists":
    case "DoesNotExist":
      if (values.length > 0) {
        throw operatorError("InvalidSpec", "selector", {
          reason: `operator ${r.operator} on key ${JSON.stringify(r.key)} takes no values`,
        });
      }
      return r.operator === "Exists" ? has : !has;
    default:
      // The schema's enum keeps these out; an object from elsewhere may not.
      throw operatorError("InvalidSpec", "selector", {
        reason: `unknown operator ${JSON.stringify((r as { operator: unknown }).operator)}; use In, NotIn, Exists or DoesNotExist`,
      });
  }
}

/**
 * Whether `labels` satisfy `selector`. An empty selector (`{}`) matches
 * everything; an absent one matches nothing. NotIn and DoesNotExist hold when
 * the key is absent. Throws InvalidSelector on a malformed requirement.
 */
export function matchesSelector(
  selector: LabelSelector | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (selector === undefined) return false;
  const have = labels ?? {};
  // Evaluate every requirement, not only up to the first miss, so that a
  // malformed one is reported whatever the labels are.
  let all = true;
  for (const r of selector.matchExpressions ?? []) {
    if (!requirementHolds(r, have)) all = false;
  }
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!Object.hasOwn(have, key) || have[key] !== value) all = false;
  }
  return all;
}
