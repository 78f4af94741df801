"""Quantitative MUAP analysis on the box (numpy only): a steady voluntary contraction
decomposed into motor units, each unit's standard measures, and the site's interpretation
against reference values. One job a module, each importing only those before it:

- :mod:`edge.muap.decomposition`: motor units and their firings (:func:`decompose`; also
  what the rest check's exact decomposition runs).
- :mod:`edge.muap.measures`: the measures of one averaged MUAP (:func:`measure`).
- :mod:`edge.muap.interpretation`: the site's summary and what it means against the
  reference values in ``edge/data/muap_reference.json``.
- :mod:`edge.muap.analysis`: the whole analysis of a recording (:func:`analyse`).

The report picture is a view (:mod:`edge.muap_report`), the live monitor a session
(:mod:`edge.muap_live`); neither is imported here.
"""
