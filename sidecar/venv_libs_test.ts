import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { venvNumpyBlas, venvPyzmq } from "./venv_libs.ts";

/** A fake virtual environment with numpy's and pyzmq's wheel layouts (Linux and macOS). */
function fakeVenv(): string {
  const venv = Deno.makeTempDirSync({ prefix: "edgewise-venv-" });
  const site = `${venv}/lib/python3.11/site-packages`;
  for (const dir of ["numpy.libs", "numpy/.dylibs", "pyzmq.libs"]) Deno.mkdirSync(`${site}/${dir}`, { recursive: true });
  const files = [
    "numpy.libs/libscipy_openblas64_-ff651d7f.so",
    "numpy.libs/libgfortran-040039e1.so.5.0.0",
    "numpy/.dylibs/libscipy_openblas64_.dylib",
    "pyzmq.libs/libzmq-a1b2.so.5.2.5",
  ];
  for (const f of files) Deno.writeTextFileSync(`${site}/${f}`, "");
  return venv;
}

Deno.test("venvNumpyBlas() finds numpy's bundled OpenBLAS and nothing else of numpy's", () => {
  const venv = fakeVenv();
  const site = `${venv}/lib/python3.11/site-packages`;
  assertEquals(venvNumpyBlas(venv), [`${site}/numpy.libs/libscipy_openblas64_-ff651d7f.so`, `${site}/numpy/.dylibs/libscipy_openblas64_.dylib`]);
  assertEquals(venvPyzmq(venv), [`${site}/pyzmq.libs/libzmq-a1b2.so.5.2.5`]);
  assertEquals(venvNumpyBlas(`${venv}/absent`), []);
});

Deno.test("the repository's own .venv (tools/bootstrap.sh) has numpy's OpenBLAS", () => {
  // CI and the README's set-up install numpy there; a sidecar started by hand relies on it
  assert(venvNumpyBlas().length >= 1, "no libscipy_openblas in .venv: run tools/bootstrap.sh");
});
