/**
 * Finding a libzmq to load, in this order, each step logged:
 *   1. `--zmq-lib` / `EDGEWISE_ZMQ_LIB` (explicit: a failure here is final);
 *   2. `EDGEWISE_PYZMQ_LIB`, set by the Python client that spawned the sidecar (pyzmq's own);
 *   3. pyzmq's bundled libzmq in the repository's `.venv` (what `tools/bootstrap.sh` installs);
 *   4. the npm `zeromq` package's prebuilt addon, which exports the `zmq_*` symbols;
 *   5. the system's libzmq (`libzmq.so.5`, `libzmq.5.dylib`, `libzmq.dll`).
 *
 * @module
 */
import type { Logger } from "./log.ts";
import { type Libzmq, openLibzmq } from "./zmq_ffi.ts";
import { listDir, venvPyzmq } from "../venv_libs.ts";

/** Where to look; the defaults read the process. */
export interface FindLibzmqOptions {
  /** `--zmq-lib`; else `EDGEWISE_ZMQ_LIB`. */
  explicit?: string;
  /** Environment lookup (default `Deno.env.get`). */
  env?: (k: string) => string | undefined;
  /** Repository root (default: two levels above this file). */
  root?: string;
  /** Skip libraries built without CURVE. */
  needCurve?: boolean;
  log?: Logger;
}

/** One place a library may come from. */
export interface Candidate {
  source: string;
  path: string;
}

/**
 * The candidates in discovery order (files that do not exist are left out, except the
 * explicit one and the system name, which the loader resolves).
 */
export function libzmqCandidates(options: FindLibzmqOptions = {}): Candidate[] {
  const env = options.env ?? ((k: string) => Deno.env.get(k));
  const root = options.root ?? new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const out: Candidate[] = [];
  const explicit = options.explicit ?? env("EDGEWISE_ZMQ_LIB");
  if (explicit) {
    return [{
      source: options.explicit ? "--zmq-lib" : "EDGEWISE_ZMQ_LIB",
      path: explicit,
    }];
  }
  const spawner = env("EDGEWISE_PYZMQ_LIB");
  if (spawner) {
    out.push({
      source: "pyzmq of the spawning Python (EDGEWISE_PYZMQ_LIB)",
      path: spawner,
    });
  }
  for (const path of venvPyzmq(`${root}/.venv`)) {
    out.push({ source: "pyzmq in .venv", path });
  }
  for (const dir of [`${root}/node_modules`, `${root}/tools/node_modules`]) {
    for (const path of npmAddons(dir)) {
      out.push({ source: "npm zeromq addon", path });
    }
  }
  const system = Deno.build.os === "darwin"
    ? "libzmq.5.dylib"
    : Deno.build.os === "windows"
    ? "libzmq.dll"
    : "libzmq.so.5";
  out.push({ source: "system", path: system });
  return out;
}

/** No candidate loaded; the message lists each one and why. */
export class LibzmqNotFound extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LibzmqNotFound";
  }
}

/**
 * Loads the first candidate that works.
 * @throws {LibzmqNotFound} naming every candidate tried and why each failed
 */
export function findLibzmq(
  options: FindLibzmqOptions = {},
): Libzmq & { source: string } {
  const log = options.log ?? (() => {});
  const tried: string[] = [];
  const candidates = libzmqCandidates(options);
  for (const c of candidates) {
    let why: string;
    try {
      const lib = loaded.get(c.path) ?? openLibzmq(c.path);
      loaded.set(c.path, lib);
      if (!options.needCurve || lib.curve) {
        log("info", "libzmq", {
          source: c.source,
          path: c.path,
          version: lib.version,
          curve: lib.curve,
        });
        return { ...lib, source: c.source };
      }
      why = "built without CURVE";
    } catch (e) {
      why = (e as Error).message.split("\n")[0];
    }
    log("debug", "libzmq_skipped", { source: c.source, path: c.path, why });
    tried.push(`  ${c.source}: ${c.path}: ${why}`);
    if (c.source === "--zmq-lib" || c.source === "EDGEWISE_ZMQ_LIB") break;
  }
  throw new LibzmqNotFound(
    `Cannot load libzmq${options.needCurve ? " with CURVE" : ""}; tried:\n${tried.join("\n")}\n` +
      "Run tools/bootstrap.sh (it installs pyzmq, which bundles libzmq, into .venv), or pass --zmq-lib PATH.",
  );
}

/** Libraries opened so far (kept open: sidecars in one process share them). */
const loaded = new Map<string, Libzmq>();

/** The `zeromq` package's prebuilt `.node` addons (several builds; the loader picks). */
function npmAddons(nodeModules: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    for (const n of listDir(dir)) {
      const p = `${dir}/${n}`;
      if (n.endsWith(".node")) out.push(p);
      else if (depth > 0 && !n.includes(".")) walk(p, depth - 1);
    }
  };
  for (
    const base of [
      `${nodeModules}/zeromq`,
      ...listDir(`${nodeModules}/.deno`).filter((n) => n.startsWith("zeromq@"))
        .map((n) => `${nodeModules}/.deno/${n}/node_modules/zeromq`),
    ]
  ) {
    // e.g. build/linux/x64/node/glibc-127/Release/addon.node (zeromq 6)
    walk(`${base}/prebuilds`, 6);
    walk(`${base}/build`, 6);
  }
  return out;
}
