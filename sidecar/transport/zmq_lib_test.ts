import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { findLibzmq, LibzmqNotFound, libzmqCandidates } from "./zmq_lib.ts";

const real = findLibzmq().path;

/** A fake repository root with a pyzmq wheel's layout in .venv and an npm zeromq addon. */
function fakeRoot(): string {
  const root = Deno.makeTempDirSync({ prefix: "edgewise-zmqlib-" });
  Deno.mkdirSync(`${root}/.venv/lib/python3.11/site-packages/pyzmq.libs`, { recursive: true });
  Deno.writeTextFileSync(`${root}/.venv/lib/python3.11/site-packages/pyzmq.libs/libzmq-abc.so.5.2.5`, "not a library");
  Deno.writeTextFileSync(`${root}/.venv/lib/python3.11/site-packages/pyzmq.libs/libsodium-abc.so.26`, "");
  const addon = `${root}/node_modules/zeromq/build/linux/x64/node/glibc-127/Release`;
  Deno.mkdirSync(addon, { recursive: true });
  Deno.writeTextFileSync(`${addon}/addon.node`, "not an addon");
  return root;
}

Deno.test("libzmqCandidates() follows the documented order, and an explicit library stands alone", () => {
  const root = fakeRoot();
  const env = (k: string) => ({ EDGEWISE_PYZMQ_LIB: "/spawner/libzmq.so" } as Record<string, string>)[k];
  const c = libzmqCandidates({ root, env });
  assertEquals(c.map((x) => x.source), ["pyzmq of the spawning Python (EDGEWISE_PYZMQ_LIB)", "pyzmq in .venv", "npm zeromq addon", "system"]);
  assert(c[1].path.endsWith("pyzmq.libs/libzmq-abc.so.5.2.5") && c[2].path.endsWith(".node"));
  assertEquals(libzmqCandidates({ root, env, explicit: "/x/libzmq.so" }), [{ source: "--zmq-lib", path: "/x/libzmq.so" }]);
  const fromEnv = libzmqCandidates({ root, env: (k) => (k === "EDGEWISE_ZMQ_LIB" ? "/y.so" : undefined) });
  assertEquals(fromEnv, [{ source: "EDGEWISE_ZMQ_LIB", path: "/y.so" }]);
});

Deno.test("findLibzmq() skips candidates that do not load and logs each step", () => {
  const root = fakeRoot();
  const logged: [string, Record<string, unknown> | undefined][] = [];
  const lib = findLibzmq({ root, env: (k) => (k === "EDGEWISE_PYZMQ_LIB" ? real : undefined), log: (_l, e, f) => void logged.push([e, f]) });
  assertEquals(lib.path, real);
  assert(logged.some(([e, f]) => e === "libzmq" && f?.path === real));
  // the spawner's library gone: the fake .venv and addon fail, then the system's (absent here) too
  const err = (() => {
    try {
      findLibzmq({ root, env: (k) => (k === "EDGEWISE_PYZMQ_LIB" ? "/gone/libzmq.so" : undefined) });
    } catch (e) {
      return e;
    }
  })();
  if (err === undefined) return; // a system libzmq is installed: it loaded, which is right too
  assert(err instanceof LibzmqNotFound);
  for (const what of ["/gone/libzmq.so", "libzmq-abc.so.5.2.5", "glibc-127/Release/addon.node", "system", "tools/bootstrap.sh"]) {
    assert(err.message.includes(what), `${what} missing from: ${err.message}`);
  }
});

Deno.test("findLibzmq() stops at a --zmq-lib that does not load", () => {
  throws(() => findLibzmq({ explicit: "/nope/libzmq.so", root: fakeRoot() }), (e: Error) => e instanceof LibzmqNotFound && e.message.includes("--zmq-lib: /nope/libzmq.so") && !e.message.includes("system"));
});
