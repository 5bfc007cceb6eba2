"""`sample_runs.py` as one process of a `jax.distributed` run on this machine.

    python tests/scripts/distributed_runs.py SPEC.json PROCESS_ID NUM_PROCESSES PORT

Every process joins the coordinator at 127.0.0.1:PORT (process 0 serves it), with the CPU
collectives through gloo, then runs SPEC as `sample_runs.py` does (same keys, so the same
inputs in every process) and writes SPEC's "out" with ".p<PROCESS_ID>" before ".npz": each
process writes the draws it holds, which are all of them.
"""

import json
import sys
from pathlib import Path

import jax


def main(spec_path: str, process_id: int, num_processes: int, port: int) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        f"127.0.0.1:{port}", num_processes=num_processes, process_id=process_id
    )
    spec = json.loads(Path(spec_path).read_text())
    spec["out"] = spec["out"].removesuffix(".npz") + f".p{process_id}.npz"
    own = Path(spec_path).with_suffix(f".p{process_id}.json")
    own.write_text(json.dumps(spec))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import sample_runs

    sample_runs.main(str(own))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
