/**
 * Shared libraries that Python wheels bundle in the repository's `.venv` (what
 * `tools/bootstrap.sh` installs): pyzmq's libzmq, numpy's OpenBLAS. A sidecar started without
 * the Python client (`tools/deno task sidecar`) finds them here, as a spawned one is told.
 *
 * @module
 */

/** The repository root: one level above this file. */
export const REPO_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Sorted entry names of `dir` (none when it cannot be read). */
export function listDir(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** The site-packages folders of a virtual environment (POSIX `lib/pythonX.Y`, Windows `Lib`). */
export function sitePackages(venv: string): string[] {
  return [
    ...listDir(`${venv}/lib`).filter((n) => n.startsWith("python")).map((n) => `${venv}/lib/${n}/site-packages`),
    `${venv}/Lib/site-packages`,
  ];
}

/**
 * Files named like `name` in the folders `dirs` (relative to each site-packages) of `venv`.
 * @param name matches a file name, e.g. `/^libzmq.*\.so/`
 */
export function venvLibraries(venv: string, dirs: string[], name: RegExp): string[] {
  const out: string[] = [];
  for (const site of sitePackages(venv)) {
    for (const dir of dirs) {
      for (const n of listDir(`${site}/${dir}`)) if (name.test(n)) out.push(`${site}/${dir}/${n}`);
    }
  }
  return out;
}

/** numpy wheels put their OpenBLAS in `numpy.libs/` (Linux, Windows) or `numpy/.dylibs/` (macOS). */
export function venvNumpyBlas(venv = `${REPO_ROOT}/.venv`): string[] {
  return venvLibraries(venv, ["numpy.libs", "numpy/.dylibs"], /^libscipy_openblas.*\.(so(\.\d+)*|dylib|dll)$/);
}

/** pyzmq wheels put libzmq in `pyzmq.libs/` (Linux, Windows) or `zmq/.dylibs/` (macOS). */
export function venvPyzmq(venv = `${REPO_ROOT}/.venv`): string[] {
  return venvLibraries(venv, ["pyzmq.libs", "zmq/.dylibs"], /^libzmq.*\.(so(\.\d+)*|dylib|dll)$/);
}
