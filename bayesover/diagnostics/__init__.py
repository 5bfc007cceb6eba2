"""Diagnostics: the ArviZ DataTree of a run, the verdict table and the HTML report."""

# `import arviz` leaves `numpyro` in sys.modules as a lazy module (arviz_base uses lazy_loader);
# a later first `import numpyro.distributions` then leaves that package without its submodule
# attributes and `numpyro.factor` raises AttributeError. Importing NumPyro before ArviZ, here
# where ArviZ enters, keeps the order right however the modules are reached.
import numpyro as _numpyro  # noqa: F401
