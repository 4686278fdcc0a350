"""Generators and loaders of offline data, one module per kind (nothing is downloaded).

Import the module you need, e.g. ``from adaptlearn.data.arfima import simulate_arfima``; this
package imports nothing on its own so that each loader's dependencies stay optional.
"""
