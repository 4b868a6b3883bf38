"""Launch a function on ``world`` CPU ranks (``torch.multiprocessing``, spawn, gloo) for the
distributed tests, and read what each rank wrote.

Each rank runs ``fn(rank, world, out_dir, *args)`` in a fresh process after
``init_process_group("gloo")`` on a free local port, and writes its findings to
``out_dir/rank{r}.json`` (plain JSON: floats, lists, strings). A rank that exits without
writing (killed on purpose) simply has no file.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sidecar import free_port  # noqa: E402


def _entry(rank: int, world: int, port: int, out_dir: str, fn: Callable[..., Any], args: tuple) -> None:
    import torch
    import torch.distributed as dist

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        result = fn(rank, world, out_dir, *args)
    except BaseException:
        result = {"error": traceback.format_exc()}
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result, default=float))
    # peers may be gone (the kill test): no destroy_process_group, which would wait for them
    os._exit(0)


def run_ranks(world: int, fn: Callable[..., Any], out_dir: Path, *args: Any, timeout: float = 240) -> list[Any]:
    """Runs ``fn`` on ``world`` ranks; returns each rank's JSON (None for a rank that wrote none).

    Raises:
        AssertionError: a rank reported an exception, or the ranks did not end within ``timeout``.
    """
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(r, world, port, str(out_dir), fn, args), daemon=True)
             for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    alive = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert not alive, f"ranks {alive} still running after {timeout} s"
    results = []
    for r in range(world):
        f = Path(out_dir, f"rank{r}.json")
        results.append(json.loads(f.read_text()) if f.exists() else None)
    errors = [f"rank {r}:\n{res['error']}" for r, res in enumerate(results) if isinstance(res, dict) and "error" in res]
    assert not errors, "\n".join(errors)
    return results
