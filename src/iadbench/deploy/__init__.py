"""Taking a benchmarked (model, product, rule) to the line: ``iadbench export`` and ``iadbench infer``.

- :mod:`iadbench.deploy.graph`: the explicit module that is exported (normalisation, the trained network with
  iadbench's corrections, the map at ``data.image_size``) and how it is traced into one graph.
- :mod:`iadbench.deploy.export`: writes the self-contained folder (graph, preprocessing as data, thresholds in the
  map's units, model card) from a built workspace.
- :mod:`iadbench.deploy.bundle`: the folder's layout, its checks and the preprocessing, readable without anomalib,
  DVC or a repository.
- :mod:`iadbench.deploy.runtime`: runs a folder's graph with the runtime of its format and writes what ``infer``
  promises (mask PNG, score, verdict, JSON lines).
"""
