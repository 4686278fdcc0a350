"""Experiments, one module each, registered with :func:`adaptlearn.core.register`.

Every module here is imported by :func:`adaptlearn.core.registry.load_all`; experiments are the
only place that wires method families to data, plots and reports.
"""
