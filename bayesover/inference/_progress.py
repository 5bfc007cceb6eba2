"""What `bo.sample` shows on stderr: phase lines and a live tqdm bar fed from the compiled scan.

Lines (`Progress`): `bayesover: C chain(s) on D device(s): <event> [seconds since start]` for
warm-up (started, done), a resume from a checkpoint, and every checkpoint written (`draws n/N`).

The live bar. `tqdm` draws it (as NumPyro and BlackJAX users know it) from inside the
compiled chunk program: with a bar, each chain's `lax.scan` over the draws of a chunk is cut
into blocks of `every = ceil(num_draws / UPDATES)` draws (an outer scan over blocks of an
inner scan over draws, then one shorter block for the rest of the chunk), and after every
block `jax.debug.callback` sends the host one uint32 vector: the chain's id, its draws done,
the counts over the block's kept draws of the sampler's boolean `progress_stats` (NUTS/HMC:
`diverging`) and the value at its last kept draw of the others (SG-MCMC: `step_size`). The
bar shows draws n/N per chain, draws/s per chain (tqdm's rate), the counts over the run
(summed over chains) and the other values averaged over chains. The counts cover every draw,
not only the reported ones. Without a bar (`progress=False`) the driver passes no `LiveArgs`:
the program is the plain scan, with no callback and no extra operation. With the bar every
draw is computed by the same operations, only in nested loops: tests/test_progress.py checks
that the draws and statistics equal those of `progress=False` bit for bit (NUTS, SGLD, CPU).

Why blocks, and not a `lax.cond(draw % every == 0, callback)` in every iteration (NumPyro's
progress bar) or a callback at every iteration (BlackJAX's, through jaxtap, which is not a
dependency): a conditional holding a host callback costs every iteration, taken or not, and
a host call costs tens of microseconds (benchmarks/RESULTS.md, "Live progress bar": on 2
CPU cores about 25 us per iteration for the cond, 300 for a callback per iteration of 4
chains, 4 for blocks of 40). The block length is static (it shapes the program), so a run
with another `num_draws` and the same `chunk_size` compiles a new chunk program when the bar
is on.

Aggregation. Under `vmap`, JAX unrolls a callback into one per chain (the chain id makes its
operand vary over chains: with unbatched operands it would fire once for all), and under
`shard_map` it fires on every device, so a chain computed by several devices (the `data`
axis of a data-parallel mesh) reports once from each. The host keeps, for each value of
draws done, the first report of every chain id (the key data of the chain's sampling key);
once it holds all `num_chains`, every chain has passed it: the bar moves there (the minimum
over chains) and the counts are added. After every chunk the bar is synced to the driver's
count (`jax.effects_barrier` first), so the final bar shows exactly, e.g., the sum of
`ensemble.stats["diverging"]` (after a resume: of the draws made since). One live bar per
process: concurrent `bo.sample` calls in threads share it.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

UPDATES = 50  # reports per run (and one at the end of every chunk)


class LiveArgs(eqx.Module):
    """The chunk program's live-bar inputs: report every `every` draws (a static field: it
    shapes the program, and stays out of the leaves that `shard_map` maps), of `num_draws`
    kept draws (traced)."""

    every: int = eqx.field(static=True)
    num_draws: Array


def live_args(num_draws: int, updates: int = UPDATES) -> LiveArgs:
    """`LiveArgs` for a run of `num_draws` draws reported about `updates` times."""
    return LiveArgs(max(1, math.ceil(num_draws / updates)), jnp.asarray(num_draws, jnp.int32))


# -- inside the compiled program ----------------------------------------------------------------


def scan_draws(
    one_draw: Callable,
    state: Any,
    first_draw: Array,
    chunk_size: int,
    live: LiveArgs | None,
    progress_stats: Callable,
    chain_key: Any,
):
    """`jax.lax.scan(one_draw, state, first_draw + arange(chunk_size))` for one chain, whose
    `one_draw(state, draw_index)` returns `(state, (draw, info))`; with `live`, the same scan
    cut into blocks of `every` draws (an outer scan over blocks, an inner one over draws, and
    a last shorter block), each block ending with a report to the host."""
    draw_indices = first_draw + jnp.arange(chunk_size)
    if live is None:
        return jax.lax.scan(one_draw, state, draw_indices)
    every = min(live.every, chunk_size)
    blocks, rest = divmod(chunk_size, every)
    chain = jax.lax.bitcast_convert_type(jax.random.key_data(chain_key).ravel(), jnp.uint32)

    def block(state, indices):
        state, out = jax.lax.scan(one_draw, state, indices)
        _report(live.num_draws, chain, indices, jax.vmap(progress_stats)(out[1]))
        return state, out

    state, out = jax.lax.scan(block, state, draw_indices[: blocks * every].reshape(blocks, -1))
    out = jax.tree.map(lambda x: x.reshape(blocks * every, *x.shape[2:]), out)
    if rest:
        state, last = block(state, draw_indices[blocks * every :])
        out = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out, last)
    return state, out


def _report(num_draws: Array, chain: Array, indices: Array, stats: dict[str, Array]) -> None:
    """One chain's report of a block of draws `indices` (of which those < `num_draws` are
    kept): [chain id..., draws done, counts of the boolean stats over the kept draws, values
    of the others at the last kept draw], bit-cast to one uint32 vector, as a callback costs
    about 15 us per operand on top of about 40 (measured on CPU)."""
    kept = indices < num_draws
    done = jnp.minimum(indices[-1] + 1, num_draws)
    last = jnp.clip(done - 1 - indices[0], 0, indices.shape[0] - 1)
    counted = [k for k, v in stats.items() if v.dtype == jnp.bool_]
    shown = [k for k in stats if k not in counted]
    ints = [done] + [jnp.sum(kept & stats[k]) for k in counted]
    floats = [stats[k][last] for k in shown]
    packed = jnp.concatenate(
        [
            chain,
            jax.lax.bitcast_convert_type(jnp.asarray(ints, jnp.int32), jnp.uint32),
            jax.lax.bitcast_convert_type(jnp.asarray(floats, jnp.float32), jnp.uint32),
        ]
    )
    jax.debug.callback(partial(_receive, chain.shape[0], tuple(counted), tuple(shown)), packed)


def _receive(id_size: int, counted: tuple, shown: tuple, packed) -> None:
    """The host side of the callback: unpack one chain's report for the active bar."""
    bar = _active
    if bar is None:
        return
    packed = np.asarray(packed)
    ints = packed[id_size : id_size + 1 + len(counted)].view(np.int32)
    floats = packed[id_size + 1 + len(counted) :].view(np.float32)
    bar.receive(
        tuple(packed[:id_size].tolist()),
        int(ints[0]),
        dict(zip(counted, ints[1:].tolist(), strict=True)),
        dict(zip(shown, floats.tolist(), strict=True)),
    )


_active: LiveBar | None = None


# -- on the host ----------------------------------------------------------------------------------


class LiveBar:
    """The tqdm bar and the aggregation of the per-chain reports (module docstring)."""

    def __init__(self, num_draws: int, num_chains: int, draws_done: int, desc: str):
        from tqdm.auto import tqdm  # noqa: PLC0415  (imported only when a bar is shown)

        self.num_chains = num_chains
        self.lock = threading.Lock()
        # draws done -> chain id -> (counts, values): reports not yet received from every chain
        self.pending: dict[int, dict[tuple, tuple[dict[str, int], dict[str, float]]]] = {}
        self.finished: set[int] = set()  # draws done, reported by every chain
        self.seen: set[tuple] = set()  # the chain ids that reported
        self.totals: dict[str, int] = {}
        self.current: dict[str, float] = {}
        self.failed: BaseException | None = None
        self.bar = tqdm(
            total=num_draws,
            initial=draws_done,
            desc=desc,
            unit="draw",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=True,
        )

    def receive(
        self, chain: tuple, done: int, counts: dict[str, int], current: dict[str, float]
    ) -> None:
        """One chain's report: it has made `done` draws; `counts` over its draws since its
        previous report. A copy of a report already received (same chain id: the devices of
        a data axis) is ignored."""
        try:
            with self.lock:
                if done in self.finished:
                    return
                self.seen.add(chain)
                reports = self.pending.setdefault(done, {})
                reports.setdefault(chain, (counts, current))
                if len(reports) < self.num_chains:
                    return
                del self.pending[done]
                self.finished.add(done)
                for chain_counts, _ in reports.values():
                    for k, v in chain_counts.items():
                        self.totals[k] = self.totals.get(k, 0) + v
                values = [r[1] for r in reports.values()]
                self.current = {k: sum(v[k] for v in values) / len(values) for k in current}
                self._show(done)
        except Exception as error:  # a display failure must not stop a run
            self.failed = error

    def _show(self, draws: int) -> None:
        parts = [f"{k}={v}" for k, v in self.totals.items()]
        parts += [f"{k}={v:.3g}" for k, v in self.current.items()]
        self.bar.set_postfix_str(", ".join(parts), refresh=False)
        if draws > self.bar.n:
            self.bar.update(draws - self.bar.n)

    def sync(self, draws_done: int) -> None:
        """After a chunk: every callback of it has run (`jax.effects_barrier`); the bar shows
        exactly `draws_done`. A process of a multi-process run sees the reports of its own
        devices' chains only: from then on it waits for those."""
        jax.effects_barrier()
        with self.lock:
            if self.seen and len(self.seen) < self.num_chains:
                self.num_chains = len(self.seen)
                self.pending.clear()
            self._show(draws_done)

    def write(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


class Progress:
    """The lines and the live bar of one `bo.sample` run (module docstring).

    `live`: the `LiveArgs` for the chunk program, or None when `enabled` is False.
    """

    def __init__(self, enabled: bool, num_draws: int, num_chains: int, num_devices: int):
        # every process compiles the same program (`live`); only process 0 prints
        self.enabled = enabled and jax.process_index() == 0
        self.num_draws, self.num_chains = num_draws, num_chains
        self.start = time.perf_counter()
        self.prefix = f"bayesover: {num_chains} chain(s) on {num_devices} device(s)"
        self.live = live_args(num_draws) if enabled else None  # the same on every process
        self.bar: LiveBar | None = None

    def _print(self, text: str) -> None:
        if not self.enabled:
            return
        line = f"{self.prefix}: {text} [{time.perf_counter() - self.start:.1f} s]"
        if self.bar is not None:
            self.bar.write(line)  # above the bar, which is redrawn below it
        else:
            print(line, file=sys.stderr, flush=True)

    def _start_bar(self, draws_done: int) -> None:
        global _active
        if self.enabled and draws_done < self.num_draws:
            desc = f"sampling {self.num_chains} chain(s)"
            self.bar = _active = LiveBar(self.num_draws, self.num_chains, draws_done, desc)

    def warmup_started(self, num_warmup: int) -> None:
        self._print(f"initial positions and warm-up of {num_warmup} steps ...")

    def warmup_done(self, num_warmup: int) -> None:
        self._print(f"warm-up of {num_warmup} steps done")
        self._start_bar(0)

    def resumed(self, draws_done: int) -> None:
        self._print(f"resumed from checkpoint at draw {draws_done}/{self.num_draws}")
        self._start_bar(draws_done)

    def checkpoint_saved(self, draws_done: int) -> None:
        self._print(f"checkpoint written at draws {draws_done}/{self.num_draws}")

    def chunk_done(self, draws_done: int) -> None:
        """Sync the bar to `draws_done`; close it after the last chunk."""
        global _active
        if self.bar is None:
            return
        self.bar.sync(draws_done)
        if draws_done >= self.num_draws:
            self.bar.close()
            if self.bar.failed is not None:
                self._print(f"the live progress bar failed: {self.bar.failed!r}")
            if _active is self.bar:
                _active = None
            self.bar = None
