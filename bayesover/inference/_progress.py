"""What `bo.sample` shows on stderr: phase lines and a live tqdm bar fed from the compiled scan.

Lines (`Progress`): `bayesover: C chain(s) on D device(s): <event> [seconds since start]` for
warm-up (started, done), a resume from a checkpoint, and every checkpoint written (`draws n/N`).

The live bar. `tqdm` draws it (as NumPyro and BlackJAX users know it) from inside the compiled
chunk program: with a bar, each chain's `lax.scan` over the draws of a chunk is cut into blocks
of `every = min(ceil(num_draws / UPDATES), chunk_size)` draws (first the `chunk_size % every`
left over, then an outer scan over blocks of an inner scan over draws), and after every block
the host gets one uint32 vector per chain: the chain's id, its draws done, the counts over the
block's kept draws of the sampler's boolean `progress_stats` (NUTS/HMC: `diverging`) and the
value at its last kept draw of the others (SG-MCMC: `step_size`). The bar shows draws n/N per
chain, draws/s per chain (tqdm's rate), the counts over the run (summed over chains) and the
other values averaged over chains. The counts cover every draw, not only the reported ones.
Without a bar (`progress=False`) the driver passes no `LiveArgs`: the program is the plain
scan, with no callback and no extra operation. With the bar every draw is computed by the same
operations, only in nested loops: tests/test_progress.py checks that the draws and statistics
equal those of `progress=False` bit for bit (NUTS, SGLD, CPU).

The host call is a `jax.pure_callback` with `vmap_method="expand_dims"`: under `vmap` it is
called once with every chain's row, where `jax.debug.callback` is unrolled into one call per
chain. It returns 0, which is added to the next block's draw indices: a pure callback whose
result is unused may be removed, and this data dependence keeps it, in order, without
changing an index. Why blocks, and not a `lax.cond(draw % every == 0, callback)` in every
iteration (NumPyro's progress bar) or a callback at every iteration (BlackJAX's, through
jaxtap, not a dependency here): a conditional holding a host callback costs every iteration,
taken or not, and a host call costs tens of microseconds, more on a loaded machine
(benchmarks/RESULTS.md, "Live progress bar", measures the placements). The block length is
static (it shapes the program), so with the bar on, a run with another `num_draws` and the
same `chunk_size` compiles a new chunk program.

Aggregation. Under `shard_map` the callback runs on every device, so a chain computed by
several devices (the `data` axis of a data-parallel mesh) reports once from each. The host
keeps, for each value of draws done, the first report of every chain id (the key data of the
chain's sampling key); once it holds all `num_chains`, every chain has passed it: the bar
moves there (the minimum over chains) and the counts are added. After every chunk the bar is
synced to the driver's count (`jax.effects_barrier` first), so the final bar shows exactly,
e.g., the sum of `ensemble.stats["diverging"]` (after a resume: of the draws made since).
Under `jax.distributed` every process compiles the same program and only process 0 prints;
it sees the reports of its own devices' chains, and after the first chunk waits for those
only. One live bar per process: concurrent `bo.sample` calls in threads share it.
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

from bayesover.inference._sharding import is_writer

UPDATES = 25  # reports per run, about (each costs a host call: benchmarks/progress.py)


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
    `one_draw(state, draw_index)` returns `(state, (draw, info))`; with `live`, the same draws
    in blocks (module docstring): first the `chunk_size % every` left over, then an outer scan
    over blocks of `every` of an inner scan over their draws, each block ending with a report.

    Every report returns 0 (`token`), which is added to the next block's draw indices: the
    data dependence keeps the callback (`jax.pure_callback`, which JAX and XLA may remove
    when its result is unused) in the program, in order, and changes no index."""
    draw_indices = first_draw + jnp.arange(chunk_size)
    if live is None:
        return jax.lax.scan(one_draw, state, draw_indices)
    every = min(live.every, chunk_size)
    blocks, rest = divmod(chunk_size, every)
    chain = jax.lax.bitcast_convert_type(jax.random.key_data(chain_key).ravel(), jnp.uint32)

    def block(carry, indices):
        state, token = carry
        indices = indices + token
        state, out = jax.lax.scan(one_draw, state, indices)
        token = _report(live.num_draws, chain, indices, jax.vmap(progress_stats)(out[1]))
        return (state, token), out

    carry, outs = (state, jnp.zeros((), jnp.int32)), []
    if rest:
        carry, out = block(carry, draw_indices[:rest])
        outs.append(out)
    carry, out = jax.lax.scan(block, carry, draw_indices[rest:].reshape(blocks, every))
    outs.append(jax.tree.map(lambda x: x.reshape(blocks * every, *x.shape[2:]), out))
    if rest:
        return carry[0], jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)
    return carry[0], outs[0]


def _report(num_draws: Array, chain: Array, indices: Array, stats: dict[str, Array]) -> Array:
    """One chain's report of the block of draws `indices` (those < `num_draws` are kept):
    [chain id..., draws done, counts of the boolean stats over the kept draws, values of the
    others at the last kept draw], bit-cast to one uint32 vector (a host call costs more with
    every operand). Under `vmap` the host is called once with every chain's vector
    (`vmap_method="expand_dims"`), not once per chain as `jax.debug.callback` would be."""
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
    return jax.pure_callback(
        partial(_receive, chain.shape[0], tuple(counted), tuple(shown)),
        jax.ShapeDtypeStruct((), jnp.int32),
        packed,
        vmap_method="expand_dims",
    )


def _receive(id_size: int, counted: tuple, shown: tuple, packed) -> np.ndarray:
    """The host side: hand every chain's report in `packed` (one row per chain) to the active
    bar; return the zeros the program waits for, whatever happens here."""
    packed = np.asarray(packed)
    bar = _active
    if bar is not None:
        try:
            for row in packed.reshape(-1, packed.shape[-1]):
                ints = row[id_size : id_size + 1 + len(counted)].view(np.int32)
                floats = row[id_size + 1 + len(counted) :].view(np.float32)
                bar.receive(
                    tuple(row[:id_size].tolist()),
                    int(ints[0]),
                    dict(zip(counted, ints[1:].tolist(), strict=True)),
                    dict(zip(shown, floats.tolist(), strict=True)),
                )
        except Exception as error:  # a display failure must not stop a run
            bar.failed = error
    return np.zeros(packed.shape[:-1], np.int32)


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
        self.enabled = enabled and is_writer()
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
        if _active is not None:  # left open by a run that raised
            _active.close()
            _active = None
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
