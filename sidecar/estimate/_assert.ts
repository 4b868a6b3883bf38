/**
 * Stand-in for the few `@std/assert` functions the estimator tests use, with the same names
 * and signatures: jsr.io cannot be reached from this build machine, so `@std/assert` cannot be
 * resolved. Switch the tests' import back to "@std/assert" once it is cached.
 *
 * @module
 */

/** Error thrown by failed assertions. */
export class AssertionError extends Error {
  override name = "AssertionError";
}

/** Assert that `expr` is truthy. */
export function assert(
  expr: unknown,
  msg = "Expected expression to be truthy",
): asserts expr {
  if (!expr) throw new AssertionError(msg);
}

/** Assert `|actual − expected| ≤ tolerance` (default 1e-7). */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance = 1e-7,
  msg?: string,
): void {
  if (!(Math.abs(actual - expected) <= tolerance)) {
    throw new AssertionError(
      msg ??
        `Expected actual: "${actual}" to be close to "${expected}": delta "${
          Math.abs(actual - expected)
        }" is greater than "${tolerance}"`,
    );
  }
}

/** Assert strict equality of primitives, or equal JSON for plain data. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  const same = Object.is(actual, expected) ||
    JSON.stringify(actual) === JSON.stringify(expected);
  if (!same) {
    throw new AssertionError(
      msg ??
        `Values are not equal: ${JSON.stringify(actual)} vs ${
          JSON.stringify(expected)
        }`,
    );
  }
}

// deno-lint-ignore no-explicit-any
type ErrorClass = new (...args: any[]) => Error;

/** Assert that `fn` throws an instance of `cls` whose message includes `msgIncludes`. */
export function assertThrows(
  fn: () => unknown,
  cls?: ErrorClass,
  msgIncludes?: string,
): Error {
  try {
    fn();
  } catch (e) {
    check(e, cls, msgIncludes);
    return e as Error;
  }
  throw new AssertionError("Expected function to throw");
}

/** Async variant of {@linkcode assertThrows}. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  cls?: ErrorClass,
  msgIncludes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    check(e, cls, msgIncludes);
    return e as Error;
  }
  throw new AssertionError("Expected promise to reject");
}

function check(e: unknown, cls?: ErrorClass, msgIncludes?: string): void {
  if (cls && !(e instanceof cls)) {
    throw new AssertionError(
      `Expected error to be instance of "${cls.name}", got "${
        (e as Error)?.name
      }"`,
    );
  }
  if (msgIncludes && !String((e as Error)?.message).includes(msgIncludes)) {
    throw new AssertionError(
      `Expected error message to include "${msgIncludes}", got "${
        (e as Error)?.message
      }"`,
    );
  }
}
