"""MAP and deep ensembles on data-parallel meshes against one device, in one process with 4
forced host devices (the device count is fixed when JAX starts: a test runs this script).

    python tests/scripts/data_parallel_runs.py OUT.json

Writes, for each case, the largest |difference| from the same call on mesh (1, 1) and the
largest |value|: deep ensembles (4 members, 150 Adam steps) full batch and with minibatches of
32, on meshes (1, 4), (2, 2), (4, 1); `bo.sample(init="map")` + SGLD on (1, 4) and (2, 2); and
the mesh each ensemble records; the predictive (log_prob, mean, variance at the test points)
with the points split over 2 and 4 devices, and the devices its log_prob lives on.
"""

import json
import sys

import jax
import numpy as np
import optax

import bayesover as bo
from bayesover.models import regression_mlp


def flat(ensemble):
    leaves = [np.asarray(x) for x in jax.tree.leaves(ensemble.params)]
    return np.concatenate([x.reshape(*x.shape[:2], -1) for x in leaves], axis=-1)


def main(out):
    posterior = regression_mlp.build(0, width=8).posterior
    optimizer = optax.adam(1e-2)
    results = {"devices": len(jax.devices())}

    def deep(batch_size, mesh):
        return bo.deep_ensemble(
            posterior, 4, optimizer, 150, key=jax.random.key(1), batch_size=batch_size, mesh=mesh
        )

    def sgld_from_map(mesh):
        sampler = bo.SGLD(step_size=2e-5, batch_size=32)
        return bo.sample(
            posterior,
            sampler,
            key=jax.random.key(2),
            num_chains=4,
            num_warmup=10,
            num_draws=10,
            init="map",
            map_steps=100,
            progress=False,
            mesh=mesh,
        )

    cases = {f"deep_{b}": (lambda m, b=b: deep(b, m)) for b in (None, 32)}
    cases["sgld_map_init"] = sgld_from_map
    meshes = {"deep_None": [(1, 4), (2, 2), (4, 1)], "deep_32": [(1, 4), (2, 2), (4, 1)]}
    meshes["sgld_map_init"] = [(1, 4), (2, 2)]
    for name, run in cases.items():
        reference = flat(run((1, 1)))
        for mesh in meshes[name]:
            ensemble = run(mesh)
            results[f"{name}@{mesh[0]}x{mesh[1]}"] = {
                "max_difference": float(np.max(np.abs(flat(ensemble) - reference))),
                "max_value": float(np.max(np.abs(reference))),
                "mesh": dict(ensemble.config["mesh"]),
            }
    # the predictive with the test points split over 2 and 4 devices (the members replicated)
    problem = regression_mlp.build(0, width=8)
    ensemble = deep(32, (4, 1))
    x, y = problem.test.inputs, problem.test.targets
    one = ensemble.predict(x, batch_size=40)
    for devices in (2, 4):
        split = ensemble.predict(x, batch_size=40, mesh=devices)
        log_prob = split.log_prob(y)
        results[f"predict@{devices}"] = {
            "max_difference": max(
                float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in [
                    (log_prob, one.log_prob(y)),
                    (split.mean, one.mean),
                    (split.variance, one.variance),
                ]
            ),
            "max_value": float(np.max(np.abs(np.asarray(one.log_prob(y))))),
            "devices": len(log_prob.sharding.device_set),
        }
    with open(out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
