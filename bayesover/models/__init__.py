"""The ready model files that ship with the package, found by name by `bo.builders`.

Each is a model file (docs/model-files.md): `build(seed=0, **options) -> bo.Problem`.

- `regression_mlp`: a tanh MLP on scikit-learn's diabetes data (the command line's default);
- `classifier_mlp`: a tanh MLP on breast_cancer or digits;
- `linear_gaussian`: conjugate linear regression, with its exact posterior (`exact_posterior`);
- `teacher_student`: a student MLP on data labelled by a fixed teacher MLP.

They are importable as modules (`bayesover.models.linear_gaussian`), and `bayesover sample
NAME` / `bo.builders.load_problem(NAME)` find them by name before `./models/NAME.py`.
"""
