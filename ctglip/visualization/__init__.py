"""Plots and visualisation backends (matplotlib imported lazily in ``plots``)."""
