// Lets plain Node run the project's TypeScript scripts without a build:
// Node strips the types, and this hook maps the `.js` import specifiers
// (NodeNext style) to the `.ts` files beside them.
import { registerHooks } from "node:module";

registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (err) {
      if (specifier.startsWith(".") && specifier.endsWith(".js")) {
        return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
      }
      throw err;
    }
  },
});
