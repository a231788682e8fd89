"""SegAD: segment statistics of anomaly maps and a boosted random forest (Baitieva, Hurych, Besnier, Bernard,
"Supervised Anomaly Detection for Complex Industrial Images", CVPR 2024, arXiv:2405.04953).

Per image, per segment of a static segmentation of the product and per detector, four statistics of the detector's
anomaly map (99.5 % quantile, skewness, kurtosis, mean) are fed to an XGBoost boosted random forest (BRF) that
outputs the image score. The BRF learns from images the detectors never trained on (split ``brf``): their good
images, and either real anomalous "shots" or synthetic disturbances of the good ones (one-class, the paper's §5.1).

- :mod:`iadbench.segad.segments` — the segments (whole image, K×K grid, or ``<product>/segments.png``);
- :mod:`iadbench.segad.features` — the statistics;
- :mod:`iadbench.segad.disturb` — the synthetic disturbances;
- :mod:`iadbench.segad.brf` — the classifier.

The ``segad_features`` and ``segad`` stages (:mod:`iadbench.stages.segad_features`, :mod:`iadbench.stages.segad`)
read the maps and features and write the files.
"""
